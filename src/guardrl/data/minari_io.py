"""Minari datasets stored locally (no remote hub): export a guardrl dataset with Minari's own API, import one back.

Minari keeps ``observations`` with one more row than actions (the final observation) and per-step ``infos``
whose first row belongs to the reset. guardrl writes its costs, propensities and success flags as the infos
``cost``, ``propensity`` and ``is_success`` (the reset row is 0 / NaN / false), so a round trip is exact.
Observation spaces: a flat ``Box``, or ``Discrete`` (one-hot encoded on import). Action spaces: ``Discrete``, or
a flat, bounded ``Box`` (continuous actions; each checked inside it). Minari is an optional extra:
``pip install "guardrl[minari]"``.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from guardrl.data.dataset import Dataset, check_continuous_actions
from guardrl.errors import GuardrlError


class MinariError(GuardrlError, ValueError):
    """A Minari dataset that cannot be imported or written; the message names the dataset and episode."""


def _minari() -> Any:
    try:
        import minari
    except ImportError:
        raise MinariError('Minari is not installed: pip install "guardrl[minari]"') from None
    return minari


@contextlib.contextmanager
def _root(root: Path | None) -> Iterator[None]:
    """Point Minari at ``root`` (its ``MINARI_DATASETS_PATH``) for the duration of a call."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    if root is not None:
        os.environ["MINARI_DATASETS_PATH"] = str(Path(root).resolve())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Minari warns about missing reference scores etc.
            yield
    finally:
        if root is not None:
            if old is None:
                os.environ.pop("MINARI_DATASETS_PATH", None)
            else:
                os.environ["MINARI_DATASETS_PATH"] = old


def export_minari(ds: Dataset, dataset_id: str, root: Path | None = None, description: str = "") -> str:
    """Create the local Minari dataset ``dataset_id`` (e.g. ``guardrl/safegrid/safe-v0``) from ``ds``."""
    minari = _minari()
    import gymnasium as gym
    from minari.data_collector import EpisodeBuffer

    starts = list(ds.episode_starts)
    ends = starts[1:] + [len(ds)]
    buffers = []
    for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
        buffers.append(
            EpisodeBuffer(
                id=i,
                observations=np.concatenate([ds.observations[a:b], ds.next_observations[b - 1 : b]]),
                actions=ds.actions[a:b],
                rewards=ds.rewards[a:b].tolist(),
                terminations=ds.terminations[a:b].tolist(),
                truncations=ds.truncations[a:b].tolist(),
                infos={
                    "cost": np.concatenate([[0.0], ds.costs[a:b]]),
                    "propensity": np.concatenate([[np.nan], ds.propensities[a:b]]),
                    "is_success": np.concatenate([[False], ds.successes[a:b]]),
                },
            )
        )
    low = np.minimum(ds.observations.min(axis=0), ds.next_observations.min(axis=0))
    high = np.maximum(ds.observations.max(axis=0), ds.next_observations.max(axis=0))
    with _root(root):
        try:
            minari.create_dataset_from_buffers(
                dataset_id, buffers, env=None, algorithm_name="guardrl export",
                action_space=_action_space(ds),
                observation_space=gym.spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32),
                description=description or f"guardrl dataset ({ds.provenance.get('regime', 'imported')})",
                data_format="hdf5",
            )  # fmt: skip
        except ValueError as exc:
            raise MinariError(f"minari dataset {dataset_id!r}: {exc}") from None
    return dataset_id


def _action_space(ds: Dataset) -> Any:
    import gymnasium as gym

    if ds.action_bounds is None:
        return gym.spaces.Discrete(ds.n_actions)
    low, high = (np.asarray(b, dtype=np.float32) for b in ds.action_bounds)
    return gym.spaces.Box(low, high, dtype=np.float32)


def _box_bounds(dataset_id: str, space: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
    if low.ndim != 1 or not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise MinariError(f"minari dataset {dataset_id!r}: action space {space} is not a flat, bounded Box")
    return tuple(low.tolist()), tuple(high.tolist())


def import_minari(dataset_id: str, root: Path | None = None) -> Dataset:
    """Read a local Minari dataset with a ``Discrete`` or flat bounded ``Box`` action space into a
    :class:`Dataset`; a continuous action outside the box is refused naming its episode and step."""
    minari = _minari()
    import gymnasium as gym

    with _root(root):
        try:
            data = minari.load_dataset(dataset_id)
        except (FileNotFoundError, ValueError) as exc:
            raise MinariError(f"minari dataset {dataset_id!r}: {exc}") from None
        bounds = None
        if isinstance(data.action_space, gym.spaces.Box):
            bounds = _box_bounds(dataset_id, data.action_space)
        elif not isinstance(data.action_space, gym.spaces.Discrete):
            raise MinariError(
                f"minari dataset {dataset_id!r}: action space {data.action_space} is neither Discrete nor a Box"
            )
        space = data.observation_space
        if isinstance(space, gym.spaces.Discrete):

            def encode(o: np.ndarray) -> np.ndarray:
                return np.eye(int(space.n), dtype=np.float32)[np.asarray(o, dtype=np.int64) - int(space.start)]
        elif isinstance(space, gym.spaces.Box) and len(space.shape) == 1:

            def encode(o: np.ndarray) -> np.ndarray:
                return np.asarray(o, dtype=np.float32)
        else:
            raise MinariError(f"minari dataset {dataset_id!r}: observation space {space} is not a flat Box or Discrete")
        cols: dict[str, list[np.ndarray]] = {}
        for k, ep in enumerate(data.iterate_episodes()):
            obs = encode(ep.observations)
            T = len(ep.actions)
            if len(obs) != T + 1:
                raise MinariError(f"minari dataset {dataset_id!r}: episode {ep.id} has {len(obs)} observations "
                                  f"for {T} actions (expected {T + 1})")  # fmt: skip
            infos = ep.infos or {}

            def info(key: str, fill: float, dtype: Any, infos: dict = infos, T: int = T) -> np.ndarray:
                values = infos.get(key)
                return np.full(T, fill, dtype) if values is None else np.asarray(values, dtype)[1 : T + 1]

            parts = {
                "episode_ids": np.full(T, ep.id if ep.id is not None else k, np.int64),
                "steps": np.arange(T, dtype=np.int64),
                "observations": obs[:-1],
                "next_observations": obs[1:],
                "actions": _episode_actions(dataset_id, ep, T, bounds),
                "rewards": np.asarray(ep.rewards, np.float64),
                "terminations": np.asarray(ep.terminations, bool),
                "truncations": np.asarray(ep.truncations, bool),
                "costs": info("cost", 0.0, np.float64),
                "propensities": info("propensity", np.nan, np.float64),
                "successes": info("is_success", False, bool),
            }
            for key, value in parts.items():
                cols.setdefault(key, []).append(value)
    if not cols:
        raise MinariError(f"minari dataset {dataset_id!r}: no episodes")
    arrays: dict[str, Any] = {k: np.concatenate(v) for k, v in cols.items()}
    return Dataset(
        **arrays,
        n_actions=0 if bounds is not None else int(data.action_space.n),  # type: ignore[union-attr]
        action_bounds=bounds,
        provenance={"source": "import", "format": "minari", "dataset_id": dataset_id},
    )


def _episode_actions(dataset_id: str, ep: Any, T: int, bounds: Any) -> np.ndarray:
    if bounds is None:
        return np.asarray(ep.actions, np.int64).reshape(T)
    actions = np.asarray(ep.actions, np.float32).reshape(T, len(bounds[0]))
    try:
        check_continuous_actions(actions, bounds, f"minari dataset {dataset_id!r}: episode {ep.id}")
    except ValueError as exc:  # its rows are the episode's steps
        raise MinariError(str(exc).replace(": row ", ": step ", 1)) from None
    return actions
