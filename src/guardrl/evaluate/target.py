"""A policy as off-policy evaluation sees it: greedy actions, or action probabilities, over observations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from guardrl.envs import sample_actions


@dataclass(frozen=True)
class TargetPolicy:
    """A policy to evaluate: its greedy action, and whether it is deterministic (then softened for IS)."""

    name: str
    greedy: Callable[[NDArray[np.float32]], NDArray[np.int64]]
    probs_fn: Callable[[NDArray[np.float32]], NDArray[np.float64]] | None = None
    """Action probabilities for a stochastic policy; ``None`` means deterministic ``greedy``."""

    def probs(self, obs: NDArray[np.float32], n_actions: int, epsilon: float) -> NDArray[np.float64]:
        if self.probs_fn is not None:
            return np.asarray(self.probs_fn(obs), dtype=np.float64)
        onehot = np.eye(n_actions)[np.asarray(self.greedy(obs), dtype=np.int64)]
        return (1.0 - epsilon) * onehot + epsilon / n_actions

    def act(self, obs: NDArray[np.float32], rng: np.random.Generator, n_actions: int) -> NDArray[np.int64]:
        """The action FQE backs up: greedy, or a draw from a stochastic policy."""
        if self.probs_fn is None:
            return np.asarray(self.greedy(obs), dtype=np.int64)
        return sample_actions(self.probs(obs, n_actions, 0.0), rng)
