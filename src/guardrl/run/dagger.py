"""DAgger (Ross, Gordon & Bagnell, AISTATS 2011): run the learner, have an expert label the states it visits,
aggregate, retrain. Here on SafeGrid with a simulator, or from labels people posted to the policy server.

Iteration ``i`` (1, 2, ...) rolls out the mixture that, at every step, takes the expert's action with
probability ``beta_i = beta_decay ** i`` and the current learner's otherwise (the paper's beta_1 = 1, pure expert,
is the demonstrations the run starts from). Of the states the mixture visited, ``labels_per_iteration`` are sent
to the expert (states not labelled before first), their labels join the aggregate, and BC is retrained on all
of it. The label budget is ``iterations * labels_per_iteration``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from guardrl._io import atomic_write_json
from guardrl.config import to_dict
from guardrl.data.behaviour import uniform_policy
from guardrl.envs import Tables, evaluate_exact, evaluate_greedy, simulate, solve_optimal
from guardrl.envs.dynamics import obs_to_states
from guardrl.envs.gym_env import load_callable
from guardrl.errors import ConfigError, RunError
from guardrl.evaluate.metrics import normalized_score
from guardrl.progress import make_progress
from guardrl.run.context import RunContext
from guardrl.train.config import LEARNERS, learner_kind

Expert = Callable[[NDArray[np.float32], NDArray[np.int64]], NDArray[np.int64]]
"""An expert labels observations at the given time steps with actions."""


@dataclass(frozen=True)
class DaggerConfig:
    """The DAgger loop (``guardrl dagger``)."""

    iterations: int = 5
    labels_per_iteration: int = 100
    """Expert labels per iteration: the budget is ``iterations * labels_per_iteration``."""
    episodes_per_iteration: int = 50
    """Episodes the mixture plays per iteration; the labelled states are drawn from theirs."""
    beta_decay: float = 0.5
    """beta_i = beta_decay ** i: the chance that the expert, not the learner, acts at a step of iteration i."""
    validation_episodes: int = 200
    """Every round's learner plays this many episodes alone (no labels asked) and the one with the highest mean
    return is kept, as Ross et al. pick the best policy on validation; 0 keeps the last round's. Chosen on
    development seeds 100-102, where the last round's retrain sometimes fell below BC."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.validation_episodes < 0:
            raise ConfigError(f"dagger.validation_episodes must be >= 0, got {self.validation_episodes}")
        if self.iterations < 1 or self.labels_per_iteration < 1 or self.episodes_per_iteration < 1:
            raise ConfigError("dagger: iterations, labels_per_iteration and episodes_per_iteration must be >= 1")
        if not 0.0 <= self.beta_decay < 1.0:
            raise ConfigError(f"dagger.beta_decay must lie in [0, 1), got {self.beta_decay}")


def optimal_expert(tables: Tables) -> Expert:
    """SafeGrid's exact planner: the optimal action at (state, step), by dynamic programming."""
    optimal, _ = solve_optimal(tables)
    table = optimal.probs.argmax(axis=-1)  # (T, S): deterministic

    def expert(obs: NDArray[np.float32], steps: NDArray[np.int64]) -> NDArray[np.int64]:
        t = np.minimum(np.asarray(steps), table.shape[0] - 1)
        return table[t, obs_to_states(tables.layout, obs)].astype(np.int64)

    return expert


def load_expert(spec: str, tables: Tables) -> Expert:
    """``optimal`` (SafeGrid's exact planner) or ``package.module:function`` with the :data:`Expert` signature."""
    if spec == "optimal":
        return optimal_expert(tables)
    fn = load_callable(spec, "dagger --expert")
    return lambda obs, steps: np.asarray(fn(obs, steps), dtype=np.int64)


class ExactScorer:
    """Exact values (dynamic programming) of a greedy policy, its action in every cell, with the normalized score
    (0 = uniform random, 100 = the exact optimum)."""

    def __init__(self, tables: Tables):
        self.tables = tables
        self.random_return = evaluate_exact(uniform_policy(tables)).expected_return
        self.optimal_return = solve_optimal(tables)[1].expected_return

    def __call__(self, greedy: Callable[[NDArray[np.float32]], NDArray[np.int64]]) -> dict[str, float]:
        out = evaluate_greedy(self.tables, greedy).to_dict()
        out["normalized_score"] = normalized_score(out["expected_return"], self.random_return, self.optimal_return)
        return out


@dataclass
class DaggerResult:
    learner: Any
    """The chosen round's :class:`~guardrl.train.TrainResult`: the last round's (BC on the whole aggregate), or
    the best on validation episodes (``validation_episodes``)."""
    history: list[dict[str, Any]]
    """Per round (0 = the demonstrations alone): labels so far, beta, and the learner's exact values."""
    observations: NDArray[np.float32]
    actions: NDArray[np.int64]
    """The aggregate the last learner was trained on."""


def _query(
    obs: NDArray[np.float32], labelled: set[tuple[float, ...]], budget: int, rng: np.random.Generator
) -> NDArray:
    """Indices of ``budget`` visited steps to label: one per distinct state not labelled before, in random order,
    then (if the budget is larger) random repeats."""
    keys = [tuple(row) for row in obs.tolist()]
    first: dict[tuple[float, ...], int] = {}
    for i in rng.permutation(len(keys)):
        first.setdefault(keys[i], int(i))
    new = [i for k, i in first.items() if k not in labelled]
    picks = [int(i) for i in rng.permutation(np.asarray(new, dtype=np.int64))][:budget]
    if len(picks) < budget:
        rest = np.setdiff1d(np.arange(len(keys)), picks)
        picks += rng.choice(rest, size=min(budget - len(picks), len(rest)), replace=False).tolist()
    return np.asarray(picks, dtype=np.int64)


class _Mixture:
    """At every step and in every episode, the expert's action with probability ``beta``, else the learner's."""

    def __init__(self, expert: Expert, learner: Callable[[NDArray[np.float32]], NDArray[np.int64]], beta: float):
        self.expert, self.learner, self.beta = expert, learner, beta

    def __call__(
        self, obs: NDArray[np.float32], steps: NDArray[np.int64], rng: np.random.Generator
    ) -> NDArray[np.int64]:
        mine = np.asarray(self.learner(obs), dtype=np.int64)
        return np.where(rng.random(len(obs)) < self.beta, self.expert(obs, steps), mine)


def run_dagger(
    tables: Tables,
    observations: NDArray[np.floating],
    actions: NDArray[np.integer],
    expert: Expert,
    fit: Callable[[NDArray[np.float32], NDArray[np.int64], int], Any],
    cfg: DaggerConfig,
    show_progress: bool = False,
) -> DaggerResult:
    """DAgger from the demonstrations ``(observations, actions)``; ``fit(obs, actions, seed)`` trains the learner
    (BC) and returns an object with ``predict(obs) -> actions``."""
    rng = np.random.default_rng([cfg.seed, 17])
    agg_obs = np.asarray(observations, dtype=np.float32)
    agg_act = np.asarray(actions, dtype=np.int64)
    labelled: set[tuple[float, ...]] = set()
    exact = ExactScorer(tables)
    learner = fit(agg_obs, agg_act, cfg.seed)
    learners = [learner]
    history: list[dict[str, Any]] = [{"round": 0, "beta": None, "labels": 0, "transitions": len(agg_act),
                "exact": exact(learner.predict)}]  # fmt: skip
    with make_progress(show_progress) as progress:
        task = progress.add_task("dagger", total=cfg.iterations)
        for i in range(1, cfg.iterations + 1):
            beta = cfg.beta_decay**i
            mixture = _Mixture(expert, learner.predict, beta)
            eps = simulate(tables, mixture, cfg.episodes_per_iteration, np.random.default_rng([cfg.seed, i]))
            valid = eps.valid
            visited, steps = eps.obs[valid].astype(np.float32), eps.steps[valid]
            pick = _query(visited, labelled, cfg.labels_per_iteration, rng)
            new_obs, new_act = visited[pick], expert(visited[pick], steps[pick])
            labelled |= {tuple(row) for row in new_obs.tolist()}
            agg_obs, agg_act = np.concatenate([agg_obs, new_obs]), np.concatenate([agg_act, new_act])
            learner = fit(agg_obs, agg_act, cfg.seed + i)
            learners.append(learner)
            labels = history[-1]["labels"] + len(pick)
            history.append({"round": i, "beta": beta, "labels": labels, "transitions": len(agg_act),
                            "exact": exact(learner.predict)})  # fmt: skip
            progress.advance(task)
    chosen = len(learners) - 1
    if cfg.validation_episodes:
        for r, h in enumerate(history):
            greedy = _Mixture(expert, learners[r].predict, beta=0.0)
            eps = simulate(tables, greedy, cfg.validation_episodes, np.random.default_rng([cfg.seed, 1000 + r]))
            h["validation_return"] = float(eps.returns.mean())
        chosen = int(np.argmax([h["validation_return"] for h in history]))
    for r, h in enumerate(history):
        h["chosen"] = r == chosen
    return DaggerResult(learners[chosen], history, agg_obs, agg_act)


def expert_demonstrations(
    tables: Tables, expert: Expert, n_labels: int, rng: np.random.Generator
) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """``n_labels`` (state, expert action) pairs from the expert's own episodes: BC's use of the same budget."""
    obs_parts: list[NDArray[np.float32]] = []
    act_parts: list[NDArray[np.int64]] = []
    total = 0

    policy = _Mixture(expert, lambda obs: np.zeros(len(obs), dtype=np.int64), beta=1.0)  # the expert alone
    while total < n_labels:
        eps = simulate(tables, policy, 20, rng)
        obs, act = eps.obs[eps.valid].astype(np.float32), eps.actions[eps.valid]
        obs_parts.append(obs)
        act_parts.append(act)
        total += len(act)
    return np.concatenate(obs_parts)[:n_labels], np.concatenate(act_parts)[:n_labels]


# ---------------------------------------------------------------- in a run folder


def _fit_for(ctx: RunContext) -> Callable[[NDArray[np.float32], NDArray[np.int64], int], Any]:
    from guardrl.train import ObsBounds, fit_bc

    bounds = ObsBounds(*ctx.obs_bounds())
    n_actions = ctx.dataset.n_actions
    return lambda obs, act, seed: fit_bc(
        obs, act, n_actions, ctx.cfg.train, bounds, seed, grid_size=ctx.grid_size, state_table=ctx.state_table
    )


def _export(ctx: RunContext, name: str, learner: Any, record: dict[str, Any]) -> dict[str, Any]:
    """The learner exported like the run's own policies (TorchScript, ONNX, action scores, model card), and the
    record of how it was trained in ``dagger/<name>.json``."""
    from guardrl.run.stages import model_card
    from guardrl.train import export_policy, export_scores

    if learner_kind(name) in LEARNERS:
        raise RunError(f"--name {name!r} is a learner's name; choose another name for the DAgger policy")
    folder = ctx.folder
    files = export_policy(learner.algo, folder.policies, name)
    files["scores"], kind = export_scores(learner.algo, folder.policies, name)
    card = model_card("bc", ctx, files)
    card.update(policy=name, scores={"file": files["scores"].name, "kind": kind}, imitation=record)
    atomic_write_json(folder.card(name), card)
    atomic_write_json(folder.dagger(name), record)
    return record


def dagger_in_run(
    ctx: RunContext, cfg: DaggerConfig, expert_spec: str = "optimal", name: str = "dagger", show_progress: bool = False
) -> dict[str, Any]:
    """DAgger on a SafeGrid run: the run's logs are the demonstrations, ``expert_spec`` labels the states the
    learner visits in the simulator; the policy is exported into the run as ``name``."""
    if not ctx.is_safegrid:
        raise RunError(f"guardrl dagger --expert needs SafeGrid's simulator; this run uses {ctx.env_name}. "
                       "Label deferred states through the server and use --from-labels instead")  # fmt: skip
    expert = load_expert(expert_spec, ctx.tables)
    ds = ctx.dataset
    result = run_dagger(ctx.tables, ds.observations, ds.actions, expert, _fit_for(ctx), cfg, show_progress)
    record = {"source": "simulator", "expert": expert_spec, "config": to_dict(cfg),
              "label_budget": cfg.iterations * cfg.labels_per_iteration, "rounds": result.history,
              "dataset_sha256": ds.content_hash()}  # fmt: skip
    return _export(ctx, name, result.learner, record)


def labels_in_run(
    ctx: RunContext,
    observations: NDArray[np.floating],
    actions: NDArray[np.integer],
    source: str,
    name: str = "dagger",
    tokens: list[str] | None = None,
    ignored: int = 0,
) -> dict[str, Any]:
    """BC on the run's logs plus people's labels (from the server's queue); exported into the run as ``name``.
    ``tokens``: the labeller token id of each label; ``ignored``: labels left out (not from a labeller token)."""
    ds = ctx.dataset
    if len(actions) == 0:
        why = f" ({ignored} label(s) in it were not posted with a labeller token)" if ignored else ""
        raise RunError(f"{source}: no labels from a labeller token yet{why}; post some with POST /labels first")
    obs = np.concatenate([ds.observations.astype(np.float32), np.asarray(observations, dtype=np.float32)])
    act = np.concatenate([ds.actions.astype(np.int64), np.asarray(actions, dtype=np.int64)])
    learner = _fit_for(ctx)(obs, act, ctx.cfg.train.seed)
    record: dict[str, Any] = {"source": source, "expert": "people (labels posted to the server)",
                              "labels": int(len(actions)), "transitions": int(len(act)),
                              "labels_by_token": dict(Counter(tokens or [])), "labels_ignored": int(ignored),
                              "dataset_sha256": ds.content_hash()}  # fmt: skip
    if ctx.is_safegrid:
        record["exact"] = ExactScorer(ctx.tables)(learner.predict)
    return _export(ctx, name, learner, record)
