"""Import real decision logs (CSV, Parquet) into the guardrl dataset format, validated row by row.

The log schema: one row per transition, rows of an episode contiguous and in step order.

====================  =========================================================================================
column (default name) meaning
====================  =========================================================================================
``episode_id``        integer episode id
``step``              0-based step within the episode: 0, 1, 2, ... without gaps or repeats
observation           ``obs_0 .. obs_{d-1}`` (numeric columns sharing ``obs_prefix``), or one list column
``action``            integer in ``[0, n_actions)``
``reward``            finite number
``terminated``        true on the last row of an episode that ended in the task (goal, crash, ...)
``truncated``         true on the last row of an episode cut off by a time limit; never both flags on one row
``cost`` (optional)   safety cost of the step (e.g. 1.0 on a hazard); 0 when the column is absent
``propensity`` (opt.) behaviour probability of the logged action, in [0, 1]; NaN (unknown) when absent
``success`` (opt.)    true where the task succeeded; false when absent
====================  =========================================================================================

Column names are configurable through :class:`LogSchema`. The next observation of a transition is the next row's
observation; for an episode's last row it is its own observation (a terminal row never bootstraps; a truncated
one then bootstraps from where it stopped).

Files are read in chunks (Parquet row groups / batches, CSV blocks), so a large log is never held as text. Any
problem stops the import with an :class:`ImportValidationError` that names the file, the row (1-based data row,
with episode and step where known) and the column; nothing is written until the whole file has passed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from guardrl.data.dataset import Dataset

FORMATS = ("csv", "parquet")


class ImportValidationError(ValueError):
    """A log that cannot be imported; the message names the file, row and column."""


@dataclass(frozen=True)
class LogSchema:
    """Column names of a decision log (see the module docstring)."""

    episode_id: str = "episode_id"
    step: str = "step"
    action: str = "action"
    reward: str = "reward"
    terminated: str = "terminated"
    truncated: str = "truncated"
    cost: str = "cost"
    propensity: str = "propensity"
    success: str = "success"
    obs_prefix: str = "obs_"
    """Observation feature columns are ``<prefix>0``, ``<prefix>1``, ... (numbered from 0)."""
    obs_column: str = "obs"
    """Used instead when there are no prefixed columns: one list-valued observation column."""


@dataclass
class _Carry:
    """What the previous chunk ended with, for checks across chunk boundaries."""

    rows: int = 0
    episode: int | None = None
    step: int = -1
    ended: bool = True
    seen: set[int] | None = None
    obs_dim: int | None = None


def _batches(path: Path, fmt: str, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    try:
        if fmt == "parquet":
            yield from pq.ParquetFile(path).iter_batches(batch_size=chunk_rows)
        else:
            reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 24))
            yield from reader
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise ImportValidationError(f"{path}: cannot be read as {fmt}: {exc}") from None


def import_log(
    path: Path,
    fmt: str,
    n_actions: int,
    schema: LogSchema | None = None,
    unended_as_truncated: bool = False,
    chunk_rows: int = 1_000_000,
) -> Dataset:
    """Read and validate a log file into a :class:`Dataset` (not yet saved)."""
    path = Path(path)
    schema = schema or LogSchema()
    if fmt not in FORMATS:
        raise ImportValidationError(f"{path}: unknown format {fmt!r}; choose one of {list(FORMATS)}")
    if not path.is_file():
        raise ImportValidationError(f"{path}: no such file")
    if n_actions < 1:
        raise ImportValidationError(f"n_actions must be at least 1, got {n_actions}")
    parts: dict[str, list[np.ndarray]] = {}
    carry = _Carry(seen=set())
    obs_cols: list[str] | None = None
    for batch in _batches(path, fmt, chunk_rows):
        if batch.num_rows == 0:
            continue
        if obs_cols is None:
            obs_cols = _obs_columns(path, batch.schema.names, schema)
        chunk = _validate_chunk(path, batch, schema, obs_cols, n_actions, carry)
        for key, value in chunk.items():
            parts.setdefault(key, []).append(value)
        carry.rows += batch.num_rows
    if carry.rows == 0:
        raise ImportValidationError(f"{path}: empty file (no rows)")
    if not carry.ended:
        if not unended_as_truncated:
            raise ImportValidationError(
                f"{path}: row {carry.rows} (episode {carry.episode}, step {carry.step}): the file ends inside an "
                "episode with no terminated/truncated flag; pass --unended-as-truncated to treat it as truncated"
            )
        parts["truncated"][-1] = parts["truncated"][-1].copy()
        parts["truncated"][-1][-1] = True
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    return _to_dataset(arrays, n_actions, path, fmt)


def _obs_columns(path: Path, names: list[str], schema: LogSchema) -> list[str]:
    required = [schema.episode_id, schema.step, schema.action, schema.reward, schema.terminated, schema.truncated]
    missing = [c for c in required if c not in names]
    prefixed = sorted((c for c in names if c.startswith(schema.obs_prefix) and c[len(schema.obs_prefix) :].isdigit()),
                      key=lambda c: int(c[len(schema.obs_prefix) :]))  # fmt: skip
    if not prefixed and schema.obs_column not in names:
        missing.append(f"{schema.obs_prefix}0.. or {schema.obs_column}")
    if missing:
        raise ImportValidationError(f"{path}: missing column(s) {missing}; columns present: {names}")
    expected = [f"{schema.obs_prefix}{i}" for i in range(len(prefixed))]
    if prefixed and prefixed != expected:
        raise ImportValidationError(f"{path}: observation columns must be numbered from 0 without gaps, got {prefixed}")
    return prefixed


def _where(path: Path, row0: int, i: int, ep: np.ndarray | None, st: np.ndarray | None) -> str:
    where = f"{path}: row {row0 + i + 1}"
    if ep is not None and st is not None:
        where += f" (episode {int(ep[i])}, step {int(st[i])})"
    return where


def _numeric(path: Path, batch: pa.RecordBatch, col: str, row0: int, integer: bool = False) -> np.ndarray:
    arr = batch.column(batch.schema.get_field_index(col))
    t = arr.type
    ok = pa.types.is_integer(t) or (not integer and pa.types.is_floating(t)) or pa.types.is_boolean(t)
    if integer and pa.types.is_floating(t):
        values = arr.to_numpy(zero_copy_only=False)
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ImportValidationError(
                f"{path}: row {row0 + i + 1}, column '{col}': expected an integer, got {values[i]!r}"
            )
        return values.astype(np.int64)
    if not ok:
        values = arr.to_pylist()
        for i, v in enumerate(values):
            try:
                float(v)
            except (TypeError, ValueError):
                kind = "an integer" if integer else "a number"
                raise ImportValidationError(
                    f"{path}: row {row0 + i + 1}, column '{col}': expected {kind}, got {v!r}"
                ) from None
        raise ImportValidationError(f"{path}: column '{col}': expected numbers, got type {t}")
    if arr.null_count:
        nulls = arr.is_null().to_numpy(zero_copy_only=False)
        if integer or pa.types.is_boolean(t):
            i = int(np.flatnonzero(nulls)[0])
            raise ImportValidationError(f"{path}: row {row0 + i + 1}, column '{col}': missing value")
        return np.where(nulls, np.nan, arr.fill_null(0).to_numpy(zero_copy_only=False)).astype(np.float64)
    out = arr.to_numpy(zero_copy_only=False)
    return out.astype(np.int64) if integer else out.astype(np.float64)


def _flag(path: Path, batch: pa.RecordBatch, col: str, row0: int) -> np.ndarray:
    arr = batch.column(batch.schema.get_field_index(col))
    if pa.types.is_boolean(arr.type) and not arr.null_count:
        return arr.to_numpy(zero_copy_only=False).astype(bool)
    values = _numeric(path, batch, col, row0, integer=True)
    bad = (values != 0) & (values != 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ImportValidationError(
            f"{path}: row {row0 + i + 1}, column '{col}': expected true/false or 0/1, got {values[i]}"
        )
    return values.astype(bool)


def _validate_chunk(
    path: Path,
    batch: pa.RecordBatch,
    schema: LogSchema,
    obs_cols: list[str],
    n_actions: int,
    carry: _Carry,
) -> dict[str, np.ndarray]:
    row0 = carry.rows
    names = batch.schema.names
    ep = _numeric(path, batch, schema.episode_id, row0, integer=True)
    st = _numeric(path, batch, schema.step, row0, integer=True)

    def fail(mask: np.ndarray, col: str, what: str) -> None:
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            raise ImportValidationError(f"{_where(path, row0, i, ep, st)}, column '{col}': {what}")

    # observations
    obs_field = batch.schema.field(schema.obs_column) if schema.obs_column in names else None
    if not obs_cols and obs_field is not None and not pa.types.is_list(obs_field.type):
        obs_cols = [schema.obs_column]  # one scalar column: a one-feature observation (e.g. a discrete state)
    if obs_cols:
        obs = np.stack([_numeric(path, batch, c, row0) for c in obs_cols], axis=1)
        for j, c in enumerate(obs_cols):
            fail(~np.isfinite(obs[:, j]), c, "NaN or infinite observation")
    else:
        col = batch.column(batch.schema.get_field_index(schema.obs_column))
        values = col.to_pylist()
        widths = np.array([len(v) if isinstance(v, (list, tuple)) else -1 for v in values])
        fail(widths < 0, schema.obs_column, "expected a list of numbers")
        first = carry.obs_dim if carry.obs_dim is not None else int(widths[0])
        fail(widths != first, schema.obs_column, f"observation width differs from the first row's ({first})")
        try:
            obs = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise ImportValidationError(
                f"{path}: column '{schema.obs_column}': observation lists must hold numbers"
            ) from None
        fail(~np.isfinite(obs).all(axis=1), schema.obs_column, "NaN or infinite observation")
    carry.obs_dim = int(obs.shape[1])

    actions = _numeric(path, batch, schema.action, row0, integer=True)
    fail((actions < 0) | (actions >= n_actions), schema.action, f"action outside [0, {n_actions})")
    rewards = _numeric(path, batch, schema.reward, row0)
    fail(~np.isfinite(rewards), schema.reward, "NaN or infinite reward")
    term = _flag(path, batch, schema.terminated, row0)
    trunc = _flag(path, batch, schema.truncated, row0)
    fail(term & trunc, schema.terminated, "both terminated and truncated")
    costs = _numeric(path, batch, schema.cost, row0) if schema.cost in names else np.zeros(len(ep))
    if schema.cost in names:
        fail(~np.isfinite(costs), schema.cost, "NaN or infinite cost")
    if schema.propensity in names:
        prop = batch.column(batch.schema.get_field_index(schema.propensity))
        props = prop.to_numpy(zero_copy_only=False).astype(np.float64) if prop.null_count == 0 else np.array(
            [np.nan if v is None else v for v in prop.to_pylist()], dtype=np.float64)  # fmt: skip
        fail((props < 0) | (props > 1), schema.propensity, "propensity outside [0, 1]")
    else:
        props = np.full(len(ep), np.nan)
    success = _flag(path, batch, schema.success, row0) if schema.success in names else np.zeros(len(ep), bool)

    # episode structure, continuing from the previous chunk
    first_ep = carry.episode if carry.episode is not None else int(ep[0]) - 1  # the file's first row starts one
    prev_ep = np.concatenate([[first_ep], ep[:-1]])
    prev_st = np.concatenate([[carry.step], st[:-1]])
    prev_end = np.concatenate([[carry.ended], (term | trunc)[:-1]])
    new_ep = ep != prev_ep
    continues = "the episode continues after a row flagged terminated/truncated (an end flag before its last row)"
    fail(~new_ep & prev_end, schema.terminated, continues)
    unended = new_ep & ~prev_end & (np.arange(len(ep)) + row0 > 0)
    if unended.any():
        before = int(prev_ep[np.flatnonzero(unended)[0]])
        fail(unended, schema.episode_id, f"episode {before} ended without a terminated/truncated flag on its last row")
    fail(new_ep & (st != 0), schema.step, "an episode must start at step 0")
    fail(~new_ep & (st == prev_st), schema.step, "step duplicated")
    fail(~new_ep & (st < prev_st), schema.step, "steps out of order")
    fail(~new_ep & (st > prev_st + 1), schema.step, "gap in steps (a step is missing)")
    starts = ep[new_ep]
    assert carry.seen is not None
    again = [e for e in starts.tolist() if e in carry.seen]
    if again or len(set(starts.tolist())) != len(starts):
        dup = again[0] if again else next(e for e in starts.tolist() if starts.tolist().count(e) > 1)
        i = int(np.flatnonzero(new_ep & (ep == dup))[-1])
        raise ImportValidationError(
            f"{_where(path, row0, i, ep, st)}, column '{schema.episode_id}': episode {dup} appears again; "
            "rows of an episode must be contiguous"
        )
    carry.seen.update(starts.tolist())
    carry.episode, carry.step, carry.ended = int(ep[-1]), int(st[-1]), bool((term | trunc)[-1])
    return {"episode_ids": ep, "steps": st, "observations": obs.astype(np.float32), "actions": actions,
            "rewards": rewards, "costs": costs, "terminated": term, "truncated": trunc, "successes": success,
            "propensities": props}  # fmt: skip


def _to_dataset(a: dict[str, np.ndarray], n_actions: int, path: Path, fmt: str) -> Dataset:
    n = len(a["episode_ids"])
    next_obs = np.empty_like(a["observations"])
    next_obs[:-1] = a["observations"][1:]
    last = a["terminated"] | a["truncated"]
    next_obs[last] = a["observations"][last]  # an episode's last row: its own observation
    provenance: dict[str, Any] = {"source": "import", "file": str(path), "format": fmt, "rows": n}
    return Dataset(
        episode_ids=a["episode_ids"],
        steps=a["steps"],
        observations=a["observations"],
        actions=a["actions"],
        rewards=a["rewards"],
        costs=a["costs"],
        terminations=a["terminated"],
        truncations=a["truncated"],
        successes=a["successes"],
        propensities=a["propensities"],
        next_observations=next_obs,
        n_actions=n_actions,
        provenance=provenance,
    )


def export_log(ds: Dataset, path: Path, fmt: str) -> Path:
    """Write ``ds`` as a log in the import schema (``obs_<i>`` columns), atomically; ``import_log`` reads it back."""
    from guardrl._io import atomic_write

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {list(FORMATS)}")
    cols: dict[str, Any] = {"episode_id": ds.episode_ids, "step": ds.steps}
    for j in range(ds.obs_dim):
        cols[f"obs_{j}"] = ds.observations[:, j]
    cols.update({"action": ds.actions, "reward": ds.rewards, "terminated": ds.terminations,
                 "truncated": ds.truncations, "cost": ds.costs, "propensity": ds.propensities,
                 "success": ds.successes})  # fmt: skip
    table = pa.table(cols)

    def write(tmp: Path) -> None:
        if fmt == "csv":
            pacsv.write_csv(table, tmp)
        else:
            pq.write_table(table, tmp)

    atomic_write(Path(path), write)
    return Path(path)
