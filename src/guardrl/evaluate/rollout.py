"""Controlled rollouts on held-out seeds with the vectorized simulator."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from guardrl.envs import Episodes, Tables, simulate
from guardrl.envs.vector import Policy
from guardrl.evaluate.metrics import Estimate, bootstrap

Simulate = Callable[[Policy, int, np.random.Generator], Episodes]
"""``simulate(policy, n_episodes, rng)``: run episodes to their end (vectorized SafeGrid or a gymnasium env)."""


@dataclass(frozen=True)
class EvalConfig:
    """How policies are evaluated."""

    n_episodes: int = 1500
    """Rollout episodes per policy, split evenly over ``seeds`` (>= 1000 separates a 3% from a 6% hazard)."""
    seeds: tuple[int, ...] = (10_001, 10_002, 10_003)
    """Held-out rollout seeds; they must differ from the collection seed."""
    n_bootstrap: int = 2000
    """Bootstrap resamples for each confidence interval."""
    confidence: float = 0.95
    """Confidence level of the intervals."""
    bootstrap_seed: int = 0
    """Seed of the bootstrap resampling."""
    mismatch_ok: float = 0.10
    """Logged-action mismatch below this is ok."""
    mismatch_red: float = 0.20
    """Logged-action mismatch above this is a red flag (between the two: caution)."""

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("evaluate.seeds: list at least one held-out seed")
        if self.n_episodes < len(self.seeds):
            raise ValueError("evaluate.n_episodes must be at least the number of seeds")


@dataclass(frozen=True)
class RolloutResult:
    """Per-episode outcomes of one policy over all seeds, with bootstrap summaries."""

    returns: NDArray[np.float64]
    lengths: NDArray[np.int64]
    hazard: NDArray[np.bool_]
    goal: NDArray[np.bool_]
    seed_of_episode: NDArray[np.int64]
    summary: dict[str, Estimate] = field(default_factory=dict)
    flagged_steps: int = 0
    """Steps where ``step_check`` returned True (e.g. an unsupported action), over ``total_steps``."""
    total_steps: int = 0

    def per_seed(self) -> dict[str, dict[str, float]]:
        out = {}
        for seed in np.unique(self.seed_of_episode):
            m = self.seed_of_episode == seed
            out[str(int(seed))] = {
                "return": float(self.returns[m].mean()),
                "hazard_rate": float(self.hazard[m].mean()),
                "goal_rate": float(self.goal[m].mean()),
                "n_episodes": int(m.sum()),
            }
        return out


def rollout(
    sim: Tables | Simulate,
    policies: list[tuple[Policy, float]],
    cfg: EvalConfig,
    step_check: Callable[[NDArray[np.float32], NDArray[np.int64]], NDArray[np.bool_]] | None = None,
) -> RolloutResult:
    """Roll out a policy (or an episode-level mixture of ``(policy, fraction)`` pairs) on every seed.

    ``step_check(observations, actions)`` is applied to every step the policies take (for instance "is this
    action unsupported by the logs here?"); the result counts the steps it flags. ``sim`` is SafeGrid's
    dynamics tables or any :data:`Simulate` function (e.g. ``GymSimulator.simulate``).
    """
    run_episodes: Simulate
    if isinstance(sim, Tables):
        tables = sim

        def run_tables(policy: Policy, n: int, rng: np.random.Generator) -> Episodes:
            return simulate(tables, policy, n, rng)

        run_episodes = run_tables
    else:
        run_episodes = sim
    flagged = total = 0
    per_seed = np.full(len(cfg.seeds), cfg.n_episodes // len(cfg.seeds))
    per_seed[: cfg.n_episodes % len(cfg.seeds)] += 1
    parts: dict[str, list[NDArray]] = {"returns": [], "lengths": [], "hazard": [], "goal": [], "seed": []}
    for seed, n_seed in zip(cfg.seeds, per_seed, strict=True):
        counts = [int(round(frac * n_seed)) for _, frac in policies]
        counts[-1] = int(n_seed) - sum(counts[:-1])
        children = np.random.SeedSequence(seed).spawn(len(policies))
        for (policy, _), count, child in zip(policies, counts, children, strict=True):
            if count <= 0:
                continue
            eps = run_episodes(policy, count, np.random.default_rng(child))
            parts["returns"].append(eps.returns)
            parts["lengths"].append(eps.lengths)
            parts["hazard"].append(eps.hazard)
            parts["goal"].append(eps.goal)
            parts["seed"].append(np.full(count, seed))
            if step_check is not None:
                flagged += int(step_check(eps.obs[eps.valid], eps.actions[eps.valid]).sum())
                total += int(eps.valid.sum())
    returns = np.concatenate(parts["returns"])
    lengths = np.concatenate(parts["lengths"])
    hazard = np.concatenate(parts["hazard"])
    goal = np.concatenate(parts["goal"])
    summary = bootstrap(
        {"return": returns, "length": lengths, "hazard_rate": hazard, "goal_rate": goal},
        cfg.n_bootstrap,
        cfg.confidence,
        np.random.default_rng(cfg.bootstrap_seed),
    )
    return RolloutResult(returns, lengths, hazard, goal, np.concatenate(parts["seed"]), summary, flagged, total)
