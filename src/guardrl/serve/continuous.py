"""The guard for policies with continuous actions (a SafeNav run): act, or defer when the (observation, action)
pair the policy proposes lies outside the logged support.

Support is :class:`~guardrl.data.continuous_support.ContinuousSupport`: the distance from the proposed pair to
its k-th nearest logged pair, in the logs' standardized units, against the logs' own 99th percentile of that
distance. A pair beyond it is ``out_of_support``; the other discrete reasons (a close call between action scores,
an action logged too rarely in an exact state) have no continuous counterpart and never fire here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from guardrl.data.continuous_support import ContinuousSupport
from guardrl.serve.guard import REASONS, Decisions

Box = tuple[tuple[float, ...], tuple[float, ...]]

DIVERGENCE = 0.05
"""Shadow mode: the policy's action diverges from production's when a dimension differs by more than this
share of the box's width on it."""


class ContinuousGuard:
    """Act / defer for a continuous policy ``act`` (observations (N, d) -> actions (N, k) in the box)."""

    def __init__(self, act: Any, support: ContinuousSupport, bounds: Box):
        self.act, self.support = act, support
        self.low, self.high = np.asarray(bounds[0], np.float64), np.asarray(bounds[1], np.float64)

    def greedy(self, obs: NDArray[np.floating]) -> NDArray[np.float64]:
        """The policy's action, without the guard's check (for a fallback policy)."""
        return np.clip(np.asarray(self.act(np.asarray(obs, np.float32)), np.float64), self.low, self.high)

    def decide(self, obs: NDArray[np.floating]) -> Decisions:
        actions = self.greedy(obs)
        distance = self.support.distance(obs, actions)
        far = distance > self.support.threshold
        reasons = np.zeros((len(actions), len(REASONS)), dtype=bool)
        reasons[:, REASONS.index("out_of_support")] = far
        return Decisions(actions, far, reasons, distance, np.zeros(len(actions), np.int64))  # type: ignore[arg-type]

    def diverged(self, policy_action: NDArray[np.float64], production_action: NDArray[np.float64]) -> bool:
        """Whether two actions differ by more than :data:`DIVERGENCE` of the box's width in some dimension."""
        return bool((np.abs(policy_action - production_action) > DIVERGENCE * (self.high - self.low)).any())


def check_action(value: Any, name: str, bounds: Box, error: Any) -> list[float]:
    """A continuous action a client sent (field ``name``): a list of finite numbers, one per dimension, inside
    the box; anything else raises ``error(message)`` naming the field, the dimension and the bound."""
    low, high = bounds
    if not isinstance(value, (list, tuple)) or len(value) != len(low):
        raise error(f"{name}: expected a list of {len(low)} numbers (the action box's dimensions)")
    out = []
    for j, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise error(f"{name}[{j}]: expected a number")
        try:
            x = float(v)
        except OverflowError:
            raise error(f"{name}[{j}]: an integer entry is too large for a number") from None
        if not np.isfinite(x):
            raise error(f"{name}[{j}]: NaN or infinite values are not allowed")
        if not low[j] <= x <= high[j]:
            raise error(f"{name}[{j}]: {x:g} is outside its bounds [{low[j]:g}, {high[j]:g}]")
        out.append(x)
    return out
