"""D4RL's HDF5 layout, read and written with h5py alone (reading it executes no code).

One file holds flat arrays over all transitions: ``observations`` (N, d), ``actions`` (N, k), ``rewards`` (N,),
``terminals`` (N,) and ``timeouts`` (N,), and often ``next_observations`` (N, d). Episodes are the runs of rows
up to each terminal or timeout. guardrl also writes ``infos/cost``, ``infos/success`` and ``infos/propensity``
and reads them back when present (D4RL's own files have none of them: costs 0, success false, propensity
unknown). The action box is not in the layout: it is an argument, checked on every row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from guardrl._io import atomic_write
from guardrl.data.dataset import Dataset, check_continuous_actions
from guardrl.data.hdf5 import open_hdf5
from guardrl.errors import GuardrlError

REQUIRED = ("observations", "actions", "rewards", "terminals", "timeouts")


class D4RLFormatError(GuardrlError, ValueError):
    """An HDF5 file that is not in D4RL's layout; the message names the file, the entry and the row."""


def export_d4rl(ds: Dataset, path: Path) -> Path:
    """Write ``ds`` (continuous actions) in D4RL's layout, atomically."""
    if not ds.is_continuous:
        raise D4RLFormatError(f"{path}: D4RL's layout is for continuous actions; export discrete logs as hdf5")

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as h5:
            h5.create_dataset("observations", data=ds.observations.astype(np.float32))
            h5.create_dataset("next_observations", data=ds.next_observations.astype(np.float32))
            h5.create_dataset("actions", data=ds.actions.astype(np.float32))
            h5.create_dataset("rewards", data=ds.rewards.astype(np.float32))
            h5.create_dataset("terminals", data=ds.terminations)
            h5.create_dataset("timeouts", data=ds.truncations)
            h5.create_dataset("infos/cost", data=ds.costs)
            h5.create_dataset("infos/success", data=ds.successes)
            h5.create_dataset("infos/propensity", data=ds.propensities)

    atomic_write(Path(path), write)
    return Path(path)


def import_d4rl(path: Path, action_low: float | list[float] = -1.0, action_high: float | list[float] = 1.0) -> Dataset:
    """Read a D4RL-layout file; every entry and row is checked before anything is built. ``action_low`` and
    ``action_high`` bound the actions (a number for every dimension, or one per dimension)."""
    path = Path(path)
    with open_hdf5(path, D4RLFormatError) as h5:
        for key in REQUIRED:
            if key not in h5 or not isinstance(h5[key], h5py.Dataset):
                raise D4RLFormatError(f"{path}: missing array '{key}' (D4RL's layout has {', '.join(REQUIRED)})")
        arrays: dict[str, Any] = {key: np.asarray(h5[key][()]) for key in REQUIRED}
        for key in ("next_observations", "infos/cost", "infos/success", "infos/propensity"):
            arrays[key] = np.asarray(h5[key][()]) if key in h5 else None
    obs, act = arrays["observations"], arrays["actions"]
    n = len(obs)
    if n == 0 or obs.ndim != 2:
        raise D4RLFormatError(f"{path}: 'observations' must be a non-empty (N, d) array, got shape {obs.shape}")
    act = act.reshape(n, 1) if act.ndim == 1 else act
    for key, value in arrays.items():
        if value is not None and len(value) != n:
            raise D4RLFormatError(f"{path}: '{key}' has {len(value)} rows, 'observations' {n}")
    k = act.shape[1]
    low = np.broadcast_to(np.asarray(action_low, dtype=np.float64), (k,))
    high = np.broadcast_to(np.asarray(action_high, dtype=np.float64), (k,))
    try:
        check_continuous_actions(act, (tuple(low.tolist()), tuple(high.tolist())), f"{path}: 'actions'")
    except ValueError as exc:
        raise D4RLFormatError(str(exc)) from None
    for key in ("observations", "rewards", "next_observations"):
        if arrays[key] is None:
            continue
        bad = ~np.isfinite(arrays[key].astype(np.float64)).reshape(n, -1).all(axis=1)
        if bad.any():
            raise D4RLFormatError(f"{path}: '{key}' row {int(np.argmax(bad))} is NaN or infinite")
    terminals, timeouts = arrays["terminals"].astype(bool).reshape(n), arrays["timeouts"].astype(bool).reshape(n)
    both = np.flatnonzero(terminals & timeouts)
    if len(both):
        raise D4RLFormatError(f"{path}: row {both[0]} is both terminal and timeout (an episode ends one way)")
    ends = terminals | timeouts
    if not ends[-1]:
        last = int(np.flatnonzero(ends)[-1]) + 1 if ends.any() else 0
        raise D4RLFormatError(
            f"{path}: rows {last}..{n - 1} end with neither a terminal nor a timeout (an unfinished episode); "
            "cut them off or mark the last row a timeout"
        )
    episode = np.concatenate([[0], np.cumsum(ends[:-1])]).astype(np.int64)
    starts = np.flatnonzero(np.concatenate([[True], ends[:-1]]))
    steps = np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n)))
    nxt = arrays["next_observations"]
    if nxt is None:  # the next row's observation within an episode; an episode's last row: its own
        nxt = np.concatenate([obs[1:], obs[-1:]])
        nxt[ends] = obs[ends]
    costs = arrays["infos/cost"]
    success = arrays["infos/success"]
    propensity = arrays["infos/propensity"]
    try:
        return Dataset(
            episode_ids=episode, steps=steps.astype(np.int64), observations=obs.astype(np.float32),
            actions=act.astype(np.float32), rewards=arrays["rewards"].astype(np.float64).reshape(n),
            costs=np.zeros(n) if costs is None else costs.astype(np.float64).reshape(n),
            terminations=terminals, truncations=timeouts,
            successes=np.zeros(n, dtype=bool) if success is None else success.astype(bool).reshape(n),
            propensities=np.full(n, np.nan) if propensity is None else propensity.astype(np.float64).reshape(n),
            next_observations=nxt.astype(np.float32), n_actions=0,
            provenance={"source": "import", "file": str(path), "format": "d4rl (hdf5)", "rows": n},
            action_bounds=(tuple(low.tolist()), tuple(high.tolist())),
        )  # fmt: skip
    except ValueError as exc:
        raise D4RLFormatError(f"{path}: {exc}") from None
