"""Support of continuous (observation, action) pairs: how far a pair lies from the logged ones.

Counting visits per (state, action), as the discrete audit does, means nothing for continuous actions. Here each
observation feature and action dimension is standardized with the logs' own spread, a pair's distance is the
distance to its ``k``-th nearest logged pair, and the threshold is the ``quantile`` of the logged pairs' own
``k``-th neighbour distances (each pair left out of its own neighbours): a pair farther than that from the
logs is farther than nearly every logged pair is from the rest, and is called unsupported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from guardrl.data.dataset import Dataset


@dataclass(frozen=True)
class ContinuousSupportConfig:
    k: int = 5
    """The neighbour whose distance counts (1 is the nearest)."""
    quantile: float = 0.99
    """Of the logged pairs' own k-th neighbour distances: the support threshold."""

    def __post_init__(self) -> None:
        if self.k < 1 or not 0.5 <= self.quantile < 1.0:
            raise ValueError(f"support: k must be >= 1 and quantile in [0.5, 1), got {self.k}, {self.quantile}")


class ContinuousSupport:
    """Distances of (observation, action) pairs to the logged pairs of a continuous-action dataset."""

    def __init__(self, ds: Dataset, cfg: ContinuousSupportConfig | None = None):
        if not ds.is_continuous:
            raise ValueError("ContinuousSupport is for continuous actions; discrete logs use the audit's counts")
        self.cfg = cfg or ContinuousSupportConfig()
        if len(ds) <= self.cfg.k:
            raise ValueError(f"support: {len(ds)} logged transitions, need more than k = {self.cfg.k}")
        pairs = np.concatenate([ds.observations, ds.actions], axis=1).astype(np.float64)
        self.mean = pairs.mean(axis=0)
        spread = pairs.std(axis=0)
        self.scale = np.where(spread > 1e-9, spread, 1.0)
        self.obs_dim = ds.obs_dim
        scaled = (pairs - self.mean) / self.scale
        self._tree = cKDTree(scaled)
        own, _ = self._tree.query(scaled, k=self.cfg.k + 1)  # the first neighbour is the pair itself
        self.threshold = float(np.quantile(own[:, -1], self.cfg.quantile))

    def distance(self, obs: NDArray[np.floating], actions: NDArray[np.floating]) -> NDArray[np.float64]:
        """(n,) distance of each pair to its k-th nearest logged pair, in standardized units."""
        pairs = np.concatenate([np.asarray(obs, np.float64).reshape(len(obs), -1),
                                np.asarray(actions, np.float64).reshape(len(obs), -1)], axis=1)  # fmt: skip
        d, _ = self._tree.query((pairs - self.mean) / self.scale, k=self.cfg.k)
        return np.asarray(d if d.ndim == 1 else d[:, -1], dtype=np.float64)

    def supported(self, obs: NDArray[np.floating], actions: NDArray[np.floating]) -> NDArray[np.bool_]:
        """(n,) whether each pair lies within the threshold of the logs."""
        return np.asarray(self.distance(obs, actions) <= self.threshold)
