"""Reference policies of a run, built once and shared by evaluation, off-policy evaluation and the gate.

On SafeGrid: the behaviour policy (when guardrl logged the data, so it is known), uniform random, the exact
optimum and a hazard-seeking policy, each with its exact values. On a gymnasium env: the user's behaviour
policy (when it logged the data) and uniform random. A logs-only run has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from guardrl.data.behaviour import REGIMES, uniform_policy
from guardrl.envs import TablePolicy, evaluate_exact, hazard_seeking_policy, solve_optimal, stationary
from guardrl.envs.gym_env import SampledBehaviour
from guardrl.envs.gym_env import uniform_policy as gym_uniform_policy
from guardrl.evaluate.target import TargetPolicy
from guardrl.run.context import RunContext


@dataclass(frozen=True)
class Reference:
    """One reference policy: how it is rolled out, how OPE sees it, and its exact values if known."""

    name: str
    mixture: list[tuple[Any, float]]
    """``(policy, share of episodes)`` pairs rolled out together (one pair unless the logs mixed policies)."""
    target: TargetPolicy | None = None
    """The policy as a function of the observation, for OPE; None where it is not one (a gym behaviour)."""
    exact: dict[str, float] | None = None
    """Exact expected return, hazard and goal probability and length (SafeGrid)."""


@dataclass(frozen=True)
class References:
    """The run's references in table order, and the anchors of the normalized score."""

    items: dict[str, Reference]
    optimal_return: float | None = None
    random_return: float | None = None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.items.values())


def build_references(ctx: RunContext) -> References:
    """The references of ``ctx``'s run (see the module docstring)."""
    if ctx.logs_only:  # no simulator: no policy other than the learned ones can be checked
        return References({})
    return _safegrid(ctx) if ctx.is_safegrid else _gym(ctx)


def table_target(policy: TablePolicy, deterministic: bool) -> TargetPolicy:
    """A stationary table policy as an OPE target over (x, y) observations."""

    def probs(obs: np.ndarray) -> np.ndarray:
        return policy.action_probs(obs, np.zeros(len(obs), dtype=np.int64))

    def greedy(obs: np.ndarray) -> np.ndarray:
        return np.argmax(probs(obs), axis=1)

    return TargetPolicy(policy.name, greedy, None if deterministic else probs)


def _safegrid(ctx: RunContext) -> References:
    tables = ctx.tables
    refs: dict[str, Reference] = {}
    optimal, optimal_values = solve_optimal(tables)
    if ctx.cfg.collect.dataset is None:  # imported logs: the behaviour policy is not known
        mixture = [(c.policy(tables), c.fraction) for c in REGIMES[ctx.cfg.collect.regime]]
        mixed = np.sum([f * stationary(p).probs for p, f in mixture], axis=0)
        per_step = TablePolicy(tables, mixed, name="behaviour")
        parts = [(evaluate_exact(p).to_dict(), f) for p, f in mixture]
        exact = {k: sum(v[k] * f for v, f in parts) for k in parts[0][0]}  # episode-level mixture
        refs["behaviour"] = Reference("behaviour", mixture, table_target(per_step, False), exact)
    for policy, deterministic in (
        (uniform_policy(tables), False),
        (stationary(optimal), True),  # row 0 of the optimum: same exact values
        (hazard_seeking_policy(tables), True),
    ):
        refs[policy.name] = Reference(
            policy.name, [(policy, 1.0)], table_target(policy, deterministic), evaluate_exact(policy).to_dict()
        )
    return References(
        refs,
        optimal_return=optimal_values.expected_return,
        random_return=refs["random"].exact["expected_return"] if refs["random"].exact else None,
    )


def _gym(ctx: RunContext) -> References:
    sim = ctx.simulator
    refs: dict[str, Reference] = {}
    if ctx.cfg.collect.behaviour is not None and ctx.cfg.collect.dataset is None:
        refs["behaviour"] = Reference("behaviour", [(SampledBehaviour(ctx.behaviour_fn(), sim), 1.0)])
    refs["random"] = Reference("random", [(gym_uniform_policy(sim.n_actions), 1.0)])
    return References(refs, optimal_return=ctx.cfg.env.optimal_return)
