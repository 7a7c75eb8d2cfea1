"""D4RL-style MuJoCo datasets made here, deterministically from a seed.

Kinds, as D4RL names them: ``random`` (uniform actions), ``medium`` (the medium actor), ``expert`` (the expert
actor), ``medium-expert`` (half the steps from each) and ``medium-replay`` (the checkpoints before the medium one,
in training order, an equal share of the steps each: what SAC's replay buffer held when it reached the medium
level). Actions are sampled from the actors' own Gaussians, and their density is logged as the propensity.
Every episode runs to its end (a fall terminates and costs 1; the 1,000-step limit truncates), so a dataset holds
at least the steps asked for, in whole episodes.
"""

from __future__ import annotations

import numpy as np

import guardrl
from guardrl.data.collect import concat, episodes_to_dataset
from guardrl.data.dataset import Dataset
from guardrl.envs.mujoco import (
    ACTION_DIMS,
    LEVELS,
    N_ENVS,
    TASKS,
    ActorSet,
    MujocoError,
    action_box,
    actor_set,
    simulate_mujoco,
    uniform_policy,
)

KINDS = LEVELS


def collect_mujoco(task: str, kind: str, n_steps: int, seed: int, actors: ActorSet | None = None) -> Dataset:
    """A ``kind`` dataset (see :data:`KINDS`) of at least ``n_steps`` transitions of ``task``, seeded by ``seed``
    (each part with its own child of ``SeedSequence(seed)``); ``actors``: other checkpoints than the shipped."""
    if kind not in KINDS:
        raise MujocoError(f"unknown dataset kind {kind!r}; choose one of {list(KINDS)}")
    if n_steps < 1:
        raise MujocoError(f"n_steps must be at least 1, got {n_steps}")
    actors = actor_set(task) if actors is None and kind != "random" else actors
    plan: list[tuple[str | None, int]]
    if kind == "random":
        plan = [(None, n_steps)]
    elif kind == "medium":
        plan = [(actors.medium, n_steps)]  # type: ignore[union-attr]
    elif kind == "expert":
        plan = [(actors.expert, n_steps)]  # type: ignore[union-attr]
    elif kind == "medium-expert":
        plan = [(actors.medium, n_steps - n_steps // 2), (actors.expert, n_steps // 2)]  # type: ignore[union-attr]
    else:
        assert actors is not None
        early = actors.files[: max(1, actors.medium_index)]
        shares = np.diff(np.linspace(0, n_steps, len(early) + 1).round().astype(int))
        plan = [(f, int(s)) for f, s in zip(early, shares, strict=True)]
    box = action_box(task)
    children = np.random.SeedSequence(seed).spawn(len(plan))
    parts, next_id = [], 0
    for (name, steps), child in zip(plan, children, strict=True):
        rng = np.random.default_rng(child)
        policy = uniform_policy(ACTION_DIMS[task]) if name is None else actors.actor(name).sample  # type: ignore[union-attr]
        logged = 0
        while logged < steps:  # whole episodes until the share is reached
            eps, logp = simulate_mujoco(task, policy, N_ENVS, rng)
            part = episodes_to_dataset(eps, np.exp(logp), next_id, 0, action_bounds=box)
            next_id += len(eps.lengths)
            parts.append(part)
            logged += len(part)
    provenance = {
        "environment": TASKS[task], "task": task, "kind": kind, "n_steps": n_steps, "seed": seed,
        "actors": [name for name, _ in plan], "guardrl": guardrl.__version__,
        "note": "gymnasium v5 MuJoCo data, made here: scores normalized with D4RL's v2 constants are indicative",
    }  # fmt: skip
    return concat(parts, provenance)
