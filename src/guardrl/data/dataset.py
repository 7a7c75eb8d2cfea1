"""Logged datasets: flat transition arrays with episode boundaries, saved as Parquet + JSON metadata.

On-disk format (a directory):

* ``transitions.parquet``: one row per transition, in episode order, with columns ``episode_id`` (int64),
  ``step`` (int64, 0-based within the episode), ``obs_0..obs_{d-1}`` (float32), ``action`` (int64; continuous
  actions: ``action_0..action_{k-1}``, float32),
  ``reward`` (float64), ``cost`` (float64), ``terminated`` (bool), ``truncated`` (bool), ``success`` (bool),
  ``propensity`` (float64, the behaviour policy's probability of the logged action; NaN if unknown),
  ``next_obs_0..next_obs_{d-1}`` (float32).
* ``metadata.json``: ``format_version``, ``n_actions``, ``obs_dim`` and ``provenance`` (who logged it, with
  which policy, regime and seeds); for continuous actions also ``action_space``: ``{"type": "box", "low": [...],
  "high": [...]}`` (and ``n_actions`` 0).

Termination (the episode really ended: hazard or goal) and truncation (the step limit cut it) are separate
columns; an episode's last row has exactly one of them set.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from guardrl._arrays import unique_rows
from guardrl._io import atomic_write_dir
from guardrl.errors import GuardrlError

FORMAT_VERSION = 1
TRANSITIONS_FILE = "transitions.parquet"
METADATA_FILE = "metadata.json"


@dataclass(frozen=True)
class Episode:
    """One logged episode (views into the dataset's arrays)."""

    observations: NDArray[np.float32]
    actions: NDArray[Any]
    rewards: NDArray[np.float64]
    costs: NDArray[np.float64]
    terminations: NDArray[np.bool_]
    truncations: NDArray[np.bool_]
    propensities: NDArray[np.float64]
    next_observations: NDArray[np.float32]

    @property
    def length(self) -> int:
        return int(self.actions.shape[0])


ARRAY_FIELDS = (
    "episode_ids", "steps", "observations", "actions", "rewards", "costs", "terminations", "truncations",
    "successes", "propensities", "next_observations",
)  # fmt: skip
"""The per-transition arrays of a :class:`Dataset`, in storage order."""


@dataclass(frozen=True)
class Dataset:
    """Transitions of many episodes, stored flat in episode order (arrays of length n)."""

    episode_ids: NDArray[np.int64]
    steps: NDArray[np.int64]
    observations: NDArray[np.float32]  # (n, d)
    actions: NDArray[Any]
    """(n,) int64 action indices, or (n, k) float32 for continuous actions (``action_bounds`` set)."""
    rewards: NDArray[np.float64]
    costs: NDArray[np.float64]
    terminations: NDArray[np.bool_]
    truncations: NDArray[np.bool_]
    successes: NDArray[np.bool_]
    propensities: NDArray[np.float64]
    next_observations: NDArray[np.float32]  # (n, d)
    n_actions: int
    """Discrete actions: their count. Continuous actions: 0."""
    provenance: dict[str, Any] = field(default_factory=dict)
    action_bounds: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    """Continuous actions: the box's (low, high) per action dimension; None for discrete actions."""

    def __post_init__(self) -> None:
        n = self.actions.shape[0]
        for name in (f for f in ARRAY_FIELDS if f not in ("observations", "next_observations", "actions")):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"dataset: {name} has shape {getattr(self, name).shape}, expected ({n},)")
        if self.observations.shape[0] != n or self.next_observations.shape != self.observations.shape:
            raise ValueError("dataset: observations and next_observations must have one row per transition")
        if self.action_bounds is not None:
            check_continuous_actions(self.actions, self.action_bounds, "dataset")
            if self.n_actions != 0:
                raise ValueError(f"dataset: continuous actions need n_actions 0, got {self.n_actions}")
            return
        if self.actions.shape != (n,):
            raise ValueError(f"dataset: actions has shape {self.actions.shape}, expected ({n},)")
        if n and (self.actions.min() < 0 or self.actions.max() >= self.n_actions):
            raise ValueError(f"dataset: actions must lie in [0, {self.n_actions})")

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[1])

    @property
    def is_continuous(self) -> bool:
        """The actions are vectors in a box (``action_bounds``), not indices."""
        return self.action_bounds is not None

    @property
    def action_dim(self) -> int:
        """Width of a continuous action (1 for discrete actions, which are one index)."""
        return len(self.action_bounds[0]) if self.action_bounds is not None else 1

    @cached_property
    def episode_starts(self) -> NDArray[np.int64]:
        """Index of each episode's first transition (computed once: the dataset's arrays do not change)."""
        if len(self) == 0:
            return np.zeros(0, dtype=np.int64)
        change = np.flatnonzero(np.diff(self.episode_ids)) + 1
        return np.concatenate([[0], change]).astype(np.int64)

    @cached_property
    def observation_rows(self) -> tuple[NDArray[np.float32], NDArray[np.int64], NDArray[np.int64]]:
        """The distinct rows among the observations and next observations (float32, sorted), and which of them
        each observation and each next observation is. A policy evaluated over the logs needs only the distinct
        rows: on a grid, hundreds instead of millions."""
        n = len(self)
        both = np.concatenate([self.observations, self.next_observations]).astype(np.float32)
        rows, inverse = unique_rows(both, return_inverse=True)
        inverse = inverse.reshape(-1)
        return rows, inverse[:n], inverse[n:]

    @property
    def distinct_observations(self) -> NDArray[np.float32]:
        """The distinct observation rows (not next observations), sorted as ``np.unique(axis=0)`` sorts them."""
        rows, at_obs, _ = self.observation_rows
        return rows[np.flatnonzero(np.bincount(at_obs, minlength=len(rows)))]

    def over_observations(self, f: Callable[[NDArray[np.float32]], Any], next_obs: bool = False) -> NDArray[Any]:
        """``f(observations)`` (or of the next observations), evaluated once per distinct row where rows repeat."""
        rows, at_obs, at_next = self.observation_rows
        if 2 * len(rows) > len(self):
            return np.asarray(f((self.next_observations if next_obs else self.observations).astype(np.float32)))
        return np.asarray(f(rows))[at_next if next_obs else at_obs]

    @property
    def n_episodes(self) -> int:
        return int(self.episode_starts.shape[0])

    @property
    def episode_ends(self) -> NDArray[np.bool_]:
        """True on each episode's last transition."""
        return self.terminations | self.truncations

    def observation_range(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per-feature (low, high) over observations and next observations, for input scaling; a constant
        feature gets ``high = low + 1`` so that scaling never divides by zero."""
        both = np.concatenate([self.observations, self.next_observations])
        low, high = both.min(axis=0).astype(np.float64), both.max(axis=0).astype(np.float64)
        return low, np.where(high > low, high, low + 1.0)

    def episode_returns(self) -> NDArray[np.float64]:
        return np.add.reduceat(self.rewards, self.episode_starts) if len(self) else np.zeros(0)

    def episodes(self) -> Iterator[Episode]:
        bounds = list(self.episode_starts) + [len(self)]
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            yield Episode(
                observations=self.observations[a:b],
                actions=self.actions[a:b],
                rewards=self.rewards[a:b],
                costs=self.costs[a:b],
                terminations=self.terminations[a:b],
                truncations=self.truncations[a:b],
                propensities=self.propensities[a:b],
                next_observations=self.next_observations[a:b],
            )

    def content_hash(self) -> str:
        """SHA-256 over the transition arrays: the dataset's identity in configs and model cards."""
        h = hashlib.sha256()
        for name in ARRAY_FIELDS:
            h.update(np.ascontiguousarray(getattr(self, name)).tobytes())
        return h.hexdigest()

    def to_table(self) -> pa.Table:
        cols: dict[str, Any] = {"episode_id": self.episode_ids, "step": self.steps}
        for j in range(self.obs_dim):
            cols[f"obs_{j}"] = self.observations[:, j]
        if self.is_continuous:
            cols.update({f"action_{j}": self.actions[:, j] for j in range(self.action_dim)})
        else:
            cols["action"] = self.actions
        cols.update(
            reward=self.rewards,
            cost=self.costs,
            terminated=self.terminations,
            truncated=self.truncations,
            success=self.successes,
            propensity=self.propensities,
        )
        for j in range(self.obs_dim):
            cols[f"next_obs_{j}"] = self.next_observations[:, j]
        return pa.table(cols)

    def metadata(self) -> dict[str, Any]:
        out = {
            "format_version": FORMAT_VERSION,
            "n_actions": self.n_actions,
            "obs_dim": self.obs_dim,
            "n_transitions": len(self),
            "n_episodes": self.n_episodes,
            "sha256": self.content_hash(),
            "provenance": self.provenance,
        }
        if self.action_bounds is not None:
            out["action_space"] = {
                "type": "box",
                "low": list(self.action_bounds[0]),
                "high": list(self.action_bounds[1]),
            }
        return out

    def save(self, path: Path, overwrite: bool = False) -> Path:
        """Write the dataset directory atomically (nothing is left behind if writing fails)."""

        def fill(tmp: Path) -> None:
            pq.write_table(self.to_table(), tmp / TRANSITIONS_FILE)
            (tmp / METADATA_FILE).write_text(json.dumps(self.metadata(), indent=2) + "\n", encoding="utf-8")

        atomic_write_dir(Path(path), fill, overwrite=overwrite)
        return Path(path)


class DatasetError(GuardrlError, ValueError):
    """A dataset file is missing or malformed; the message names the file and field."""


def load_dataset(path: Path) -> Dataset:
    """Load a dataset directory written by :meth:`Dataset.save`."""
    path = Path(path)
    meta_path, table_path = path / METADATA_FILE, path / TRANSITIONS_FILE
    for p in (meta_path, table_path):
        if not p.is_file():
            raise DatasetError(f"{p}: missing (a dataset directory holds {METADATA_FILE} and {TRANSITIONS_FILE})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{meta_path}: not valid JSON ({exc})") from None
    for key in ("format_version", "n_actions", "obs_dim"):
        if key not in meta:
            raise DatasetError(f"{meta_path}: missing field {key!r}")
    if meta["format_version"] != FORMAT_VERSION:
        raise DatasetError(f"{meta_path}: format_version {meta['format_version']} is not {FORMAT_VERSION}")
    try:
        table = pq.ParquetFile(table_path)
        names = table.schema_arrow.names
    except (pa.ArrowInvalid, OSError) as exc:
        raise DatasetError(f"{table_path}: cannot be read as Parquet ({exc})") from None
    d = int(meta["obs_dim"])
    bounds = _box_bounds(meta.get("action_space"), meta_path)

    def col(name: str, dtype: Any) -> NDArray:
        # one column at a time: the whole table decoded at once doubled the memory of ten million transitions
        if name not in names:
            raise DatasetError(f"{table_path}: missing column {name!r}")
        try:
            column = table.read(columns=[name]).column(0)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DatasetError(f"{table_path}: column {name!r} cannot be read ({exc})") from None
        return column.to_numpy(zero_copy_only=False).astype(dtype, copy=False)

    try:
        ds = Dataset(
            episode_ids=col("episode_id", np.int64),
            steps=col("step", np.int64),
            observations=np.stack([col(f"obs_{j}", np.float32) for j in range(d)], axis=1),
            actions=(
                np.stack([col(f"action_{j}", np.float32) for j in range(len(bounds[0]))], axis=1)
                if bounds is not None
                else col("action", np.int64)
            ),
            rewards=col("reward", np.float64),
            costs=col("cost", np.float64),
            terminations=col("terminated", np.bool_),
            truncations=col("truncated", np.bool_),
            successes=col("success", np.bool_),
            propensities=col("propensity", np.float64),
            next_observations=np.stack([col(f"next_obs_{j}", np.float32) for j in range(d)], axis=1),
            n_actions=int(meta["n_actions"]),
            provenance=meta.get("provenance", {}),
            action_bounds=bounds,
        )
    except ValueError as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{table_path}: {exc}") from None
    if "sha256" in meta and meta["sha256"] != ds.content_hash():
        raise DatasetError(f"{table_path}: content does not match the sha256 recorded in {meta_path}")
    pa.default_memory_pool().release_unused()  # the decoding buffers, which Arrow's pool would keep
    return ds


def _box_bounds(space: Any, where: Path) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    if space is None:
        return None
    try:
        if space["type"] != "box":
            raise KeyError("type")
        low, high = tuple(float(v) for v in space["low"]), tuple(float(v) for v in space["high"])
    except (KeyError, TypeError, ValueError):
        raise DatasetError(f"{where}: action_space must be {{'type': 'box', 'low': [...], 'high': [...]}}") from None
    return low, high


def check_continuous_actions(
    actions: NDArray[Any], bounds: tuple[tuple[float, ...], tuple[float, ...]], where: str, first_row: int = 0
) -> None:
    """Raise ``ValueError`` naming the first row and column of ``actions`` (n, k) that is not finite or lies
    outside the box ``bounds`` (low, high); also when the box itself is malformed."""
    low, high = np.asarray(bounds[0], dtype=np.float64), np.asarray(bounds[1], dtype=np.float64)
    if low.ndim != 1 or low.shape != high.shape or len(low) == 0:
        raise ValueError(f"{where}: action bounds need one low and one high per action dimension")
    if not (np.isfinite(low).all() and np.isfinite(high).all() and (low < high).all()):
        raise ValueError(f"{where}: action bounds must be finite with low < high, got {low.tolist()}, {high.tolist()}")
    a = np.asarray(actions)
    if a.ndim != 2 or a.shape[1] != len(low):
        raise ValueError(f"{where}: continuous actions must have shape (n, {len(low)}), got {a.shape}")
    bad = ~np.isfinite(a) | (a < low) | (a > high)
    if bad.any():
        row, j = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(
            f"{where}: row {first_row + row} action_{j} = {float(a[row, j])!r} is outside its bounds "
            f"[{low[j]:g}, {high[j]:g}] ({int(bad.any(axis=1).sum())} row(s) in all)"
        )
