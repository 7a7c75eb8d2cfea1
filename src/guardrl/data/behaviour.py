"""Behaviour policies that generate logs: the tutorial's constrained controller, and the dataset regimes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from guardrl.envs import N_ACTIONS, TablePolicy, Tables, solve_optimal
from guardrl.envs.layouts import DOWN, LEFT, RIGHT, UP


def greedy_safe_probs(tables: Tables) -> np.ndarray:
    """(S, A) noise-free constrained controller.

    Preferred moves reduce the distance to the goal. The controller picks uniformly among preferred moves
    whose intended cell is not a hazard; if every preferred move is a hazard, uniformly among all moves whose
    intended cell is safe (it never steps into a hazard on purpose while a safe move exists).
    """
    layout = tables.layout
    size = layout.size
    s = np.arange(layout.n_states)
    x, y = s % size, s // size
    gx, gy = layout.goal
    preferred = np.zeros((layout.n_states, N_ACTIONS), dtype=bool)
    preferred[:, RIGHT] = x < gx
    preferred[:, LEFT] = x > gx
    preferred[:, DOWN] = y < gy
    preferred[:, UP] = y > gy
    safe = ~tables.hazard[tables.next_state]
    choice = preferred & safe
    none_left = ~choice.any(axis=1)
    choice[none_left] = safe[none_left]
    none_left = ~choice.any(axis=1)
    choice[none_left] = True  # boxed in by hazards (or at the goal, which is never acted in)
    return choice / choice.sum(axis=1, keepdims=True)


def epsilon_mix(probs: np.ndarray, epsilon: float) -> np.ndarray:
    """With probability epsilon take a uniformly random action instead."""
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
    return (1.0 - epsilon) * probs + epsilon / probs.shape[-1]


def constrained_policy(tables: Tables, epsilon: float) -> TablePolicy:
    """The tutorial's behaviour policy: the constrained controller with epsilon-uniform noise."""
    probs = epsilon_mix(greedy_safe_probs(tables), epsilon)[None]
    return TablePolicy(tables, probs, name=f"constrained(eps={epsilon})")


def uniform_policy(tables: Tables) -> TablePolicy:
    return TablePolicy(tables, np.full((1, tables.layout.n_states, N_ACTIONS), 1.0 / N_ACTIONS), name="random")


def optimal_noisy_policy(tables: Tables, epsilon: float) -> TablePolicy:
    """The exact optimal policy with epsilon-uniform noise (an 'expert' logger)."""
    opt, _ = solve_optimal(tables)
    return TablePolicy(tables, epsilon_mix(opt.probs, epsilon), name=f"optimal(eps={epsilon})")


@dataclass(frozen=True)
class Component:
    """A share of a dataset's episodes logged by one policy."""

    fraction: float
    base: str  # "constrained" | "optimal" | "uniform"
    epsilon: float

    def policy(self, tables: Tables) -> TablePolicy:
        if self.base == "constrained":
            return constrained_policy(tables, self.epsilon)
        if self.base == "optimal":
            return optimal_noisy_policy(tables, self.epsilon)
        if self.base == "uniform":
            return uniform_policy(tables)
        raise ValueError(f"unknown behaviour base policy {self.base!r}")


REGIMES: dict[str, tuple[Component, ...]] = {
    "safe": (Component(1.0, "constrained", 0.22),),
    "noisy": (Component(1.0, "constrained", 0.6),),
    "mixed": (Component(0.3, "uniform", 1.0), Component(0.7, "constrained", 0.22)),
    "expert": (Component(1.0, "optimal", 0.05),),
}
"""Dataset regimes in the spirit of D4RL. ``safe`` is the tutorial's; ``noisy`` makes the logged action
disagree with the best one about 45% of the time; ``mixed`` is 30% uniform-random episodes and 70% ``safe``;
``expert`` is the exact optimal policy with 5% noise."""
