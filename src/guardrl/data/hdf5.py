"""HDF5 in d3rlpy's dataset format (``MDPDataset.dump`` / ``ReplayBuffer.load``, format version 2.1), read and
written with h5py alone.

The file holds ``columns`` (observations, actions, rewards, terminated), ``num_episodes``, ``version`` and per
episode ``observations_<i>`` (T, d), ``actions_<i>`` (T, 1), ``rewards_<i>`` (T, 1) and ``terminated_<i>`` (a
scalar: 1.0 when the episode ended in the task, 0.0 when it was cut off, d3rlpy's timeout). The format has no
costs, propensities, success flags or next observations: on import they become 0, NaN (unknown), false and the
next row's observation (an episode's last row: its own). Unlike d3rlpy's pickled ``.d3`` files, reading HDF5
executes no code.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from guardrl._io import atomic_write
from guardrl.data.dataset import Dataset
from guardrl.errors import GuardrlError

D3RLPY_FORMAT_VERSION = "2.1"
COLUMNS = ("observations", "actions", "rewards", "terminated")


class HDF5FormatError(GuardrlError, ValueError):
    """An HDF5 file that is not in d3rlpy's dataset format; the message names the file and entry."""


def export_hdf5(ds: Dataset, path: Path) -> Path:
    """Write ``ds`` as a d3rlpy-format HDF5 file (atomically)."""
    path = Path(path)
    starts = ds.episode_starts
    bounds = list(starts) + [len(ds)]

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as h5:
            h5.create_dataset("columns", data=list(COLUMNS))
            h5.create_dataset("num_episodes", data=len(starts))
            for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
                h5.create_dataset(f"observations_{i}", data=ds.observations[a:b].astype(np.float32))
                h5.create_dataset(f"actions_{i}", data=ds.actions[a:b].astype(np.int64)[:, None])
                h5.create_dataset(f"rewards_{i}", data=ds.rewards[a:b].astype(np.float32)[:, None])
                h5.create_dataset(f"terminated_{i}", data=float(ds.terminations[b - 1]))
            h5.create_dataset("version", data=D3RLPY_FORMAT_VERSION)

    atomic_write(path, write)
    return path


def open_hdf5(path: Path, error: type[Exception]) -> h5py.File:
    """``path`` opened read-only, or ``error`` naming the file when it is missing or not HDF5."""
    if not path.is_file():
        raise error(f"{path}: no such file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise error(f"{path}: not an HDF5 file ({exc})") from None


def import_hdf5(path: Path, n_actions: int) -> Dataset:
    """Read a d3rlpy-format HDF5 file; every entry is checked before anything is built."""
    path = Path(path)
    with open_hdf5(path, HDF5FormatError) as h5:
        for key in ("columns", "num_episodes", "version"):
            if key not in h5:
                hint = "; a D4RL-layout file? pass --format d4rl" if "observations" in h5 and "actions" in h5 else ""
                raise HDF5FormatError(f"{path}: missing entry '{key}' (not d3rlpy's dataset format{hint})")
        version = h5["version"][()]
        version = version.decode() if isinstance(version, bytes) else str(version)
        if version != D3RLPY_FORMAT_VERSION:
            raise HDF5FormatError(f"{path}: d3rlpy dataset format version {version}, expected {D3RLPY_FORMAT_VERSION}")
        n_eps = int(h5["num_episodes"][()])
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "act", "rew", "term", "trunc", "ep", "step")}
        for i in range(n_eps):
            for key in COLUMNS:
                if f"{key}_{i}" not in h5:
                    raise HDF5FormatError(f"{path}: missing entry '{key}_{i}' (episode {i})")
            obs = np.asarray(h5[f"observations_{i}"][()], dtype=np.float32)
            act = np.asarray(h5[f"actions_{i}"][()]).reshape(-1)
            rew = np.asarray(h5[f"rewards_{i}"][()], dtype=np.float64).reshape(-1)
            T = len(obs)
            if obs.ndim != 2 or len(act) != T or len(rew) != T or T == 0:
                raise HDF5FormatError(f"{path}: episode {i}: observations, actions and rewards differ in length "
                                      f"({len(obs)}, {len(act)}, {len(rew)}) or are empty")  # fmt: skip
            if not np.isfinite(obs).all() or not np.isfinite(rew).all():
                raise HDF5FormatError(f"{path}: episode {i}: NaN or infinite observations or rewards")
            if (act != np.round(act)).any() or (act < 0).any() or (act >= n_actions).any():
                raise HDF5FormatError(f"{path}: episode {i}: actions must be integers in [0, {n_actions})")
            terminated = bool(float(h5[f"terminated_{i}"][()]) > 0.5)
            flags = np.zeros(T, dtype=bool)
            parts["obs"].append(obs)
            parts["act"].append(act.astype(np.int64))
            parts["rew"].append(rew)
            parts["term"].append(np.where(np.arange(T) == T - 1, terminated, flags))
            parts["trunc"].append(np.where(np.arange(T) == T - 1, not terminated, flags))
            parts["ep"].append(np.full(T, i, dtype=np.int64))
            parts["step"].append(np.arange(T, dtype=np.int64))
    if n_eps == 0:
        raise HDF5FormatError(f"{path}: no episodes")
    widths = {o.shape[1] for o in parts["obs"]}
    if len(widths) > 1:
        raise HDF5FormatError(f"{path}: observation widths differ between episodes: {sorted(widths)}")
    obs = np.concatenate(parts["obs"])
    term, trunc = np.concatenate(parts["term"]), np.concatenate(parts["trunc"])
    nxt = np.empty_like(obs)
    nxt[:-1] = obs[1:]
    last = term | trunc
    nxt[last] = obs[last]
    n = len(obs)
    return Dataset(
        episode_ids=np.concatenate(parts["ep"]), steps=np.concatenate(parts["step"]), observations=obs,
        actions=np.concatenate(parts["act"]), rewards=np.concatenate(parts["rew"]), costs=np.zeros(n),
        terminations=term, truncations=trunc, successes=np.zeros(n, dtype=bool), propensities=np.full(n, np.nan),
        next_observations=nxt, n_actions=n_actions,
        provenance={"source": "import", "file": str(path), "format": "hdf5 (d3rlpy 2.1)", "rows": n},
    )  # fmt: skip
