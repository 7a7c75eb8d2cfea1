"""Import real decision logs (CSV, Parquet) into the guardrl dataset format, validated row by row.

The log schema: one row per transition, rows of an episode contiguous and in step order.

====================  =========================================================================================
column (default name) meaning
====================  =========================================================================================
``episode_id``        integer episode id
``step``              0-based step within the episode: 0, 1, 2, ... without gaps or repeats
observation           ``obs_0 .. obs_{d-1}`` (numeric columns sharing ``obs_prefix``), or one list column
``action``            integer in ``[0, n_actions)``; continuous actions: ``action_0 .. action_{k-1}`` (numeric
                      columns sharing ``action_prefix``) or one list column ``action``, each inside the box
``reward``            finite number
``terminated``        true on the last row of an episode that ended in the task (goal, crash, ...)
``truncated``         true on the last row of an episode cut off by a time limit; never both flags on one row
``cost`` (optional)   safety cost of the step (e.g. 1.0 on a hazard), >= 0; 0 when the column is absent
``propensity`` (opt.) behaviour probability of the logged action, in (0, 1] (continuous actions: its density,
                      finite and > 0); NaN (unknown) when absent or empty
``success`` (opt.)    true where the task succeeded; false when absent
====================  =========================================================================================

Column names are configurable through :class:`LogSchema`. The next observation of a transition is the next row's
observation; for an episode's last row it is its own observation (a terminal row never bootstraps; a truncated
one then bootstraps from where it stopped).

Files are read in chunks (Parquet row groups / batches, CSV blocks), so a large log is never held as text. Any
problem stops the import with an :class:`ImportValidationError` that names the file, the row (1-based data row,
with the CSV line and the episode and step where known) and the column; nothing is written until the whole file
has passed. CSV lines are counted with the header as line 1, one line per record. Observations are stored as
float32 and checked after that cast (``1e39`` overflows it); integer ids must fit int64; negative costs are
refused unless ``allow_negative_costs`` is set (costs are hazard counts by default, and a negative one would
let a policy buy risk back).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from guardrl.data.dataset import Dataset
from guardrl.data.log_checks import _validate_chunk
from guardrl.data.log_files import ImportValidationError, _read_batches

FORMATS = ("csv", "parquet")


EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".h5": "hdf5", ".hdf5": "hdf5"}


def format_from_extension(path: Path) -> str:
    """``csv``, ``parquet`` or ``hdf5`` from a file's extension; an error naming ``--format`` otherwise."""
    fmt = EXTENSIONS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ImportValidationError(
            f"{path}: cannot tell the format from the extension {Path(path).suffix or '(none)'!r}; pass --format "
            f"(csv, parquet, hdf5, d4rl or minari)"
        )
    return fmt


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
    action_prefix: str = "action_"
    """Continuous action columns are ``<prefix>0``, ``<prefix>1``, ... (or ``action`` as one list column)."""
    next_obs_prefix: str = "next_obs_"
    """Optional next-observation columns ``<prefix>0, ..`` (as ``guardrl export`` writes them). When present they
    give every transition's next observation, the last of an episode included; within an episode each must equal
    the next row's observation. When absent, an episode's last row gets its own observation."""


@dataclass
class _Carry:
    """What the previous chunk ended with, for checks across chunk boundaries."""

    rows: int = 0
    episode: int | None = None
    step: int = -1
    ended: bool = True
    seen: set[int] | None = None
    obs_dim: int | None = None
    next_obs: np.ndarray | None = None
    """The previous chunk's last next observation (when the log has next-observation columns)."""
    total_rows: int | None = None
    """The file's row count where its metadata says it (Parquet)."""


def schema_from_mapping(items: list[str], schema: LogSchema | None = None) -> LogSchema:
    """A schema with ``FIELD=COLUMN`` renames applied (``--mapping action=decision``)."""
    schema = schema or LogSchema()
    known = {f.name for f in dataclasses.fields(LogSchema)}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in known or not value:
            raise ImportValidationError(f"--mapping {item!r}: expected FIELD=COLUMN with FIELD one of {sorted(known)}")
        schema = dataclasses.replace(schema, **{key: value})
    return schema


Bounds = tuple[tuple[float, ...], tuple[float, ...]]


def import_log(
    path: Path,
    fmt: str,
    n_actions: int | None,
    schema: LogSchema | None = None,
    unended_as_truncated: bool = False,
    chunk_rows: int = 1_000_000,
    allow_negative_costs: bool = False,
    csv_block_bytes: int = 1 << 24,
    action_bounds: tuple[float | list[float], float | list[float]] | None = None,
    on_rows: Callable[[int, int | None], None] | None = None,
) -> Dataset:
    """Read and validate a log file into a :class:`Dataset` (not yet saved).

    Discrete actions need ``n_actions``. A log whose actions are ``action_0 ..`` columns (or a list column) has
    continuous actions: give ``action_bounds`` (low, high; a number for every dimension or one per dimension)
    and no ``n_actions``. ``chunk_rows`` sizes Parquet batches and ``csv_block_bytes`` CSV blocks; neither
    changes the result. ``on_rows(rows_read, total_rows)`` is called after each batch (``total_rows``: from a
    Parquet file's metadata, None for CSV), for progress.
    """
    path = Path(path)
    schema = schema or LogSchema()
    if fmt not in FORMATS:
        raise ImportValidationError(f"{path}: unknown format {fmt!r}; choose one of {list(FORMATS)}")
    if not path.is_file():
        raise ImportValidationError(f"{path}: no such file")
    if n_actions is not None and n_actions < 1:
        raise ImportValidationError(f"n_actions must be at least 1, got {n_actions}")
    parts: dict[str, list[np.ndarray]] = {}
    carry = _Carry(seen=set())
    obs_cols: list[str] | None = None
    costs_logged = False
    ctx = _Context(path, fmt, schema, n_actions or 0, allow_negative_costs)
    for batch in _read_batches(ctx, carry, chunk_rows, csv_block_bytes):
        if batch.num_rows == 0:
            continue
        if obs_cols is None:
            obs_cols = _obs_columns(path, batch.schema.names, schema)
            costs_logged = schema.cost in batch.schema.names
            ctx = _action_mode(ctx, batch, n_actions, action_bounds)
        chunk = _validate_chunk(ctx, batch, obs_cols, carry)
        for key, value in chunk.items():
            parts.setdefault(key, []).append(value)
        carry.rows += batch.num_rows
        if on_rows is not None:
            on_rows(carry.rows, carry.total_rows)
    if carry.rows == 0:
        raise ImportValidationError(f"{path}: empty file (no rows)")
    if not carry.ended:
        if not unended_as_truncated:
            raise ImportValidationError(
                f"{ctx.row(carry.rows, carry.episode, carry.step)}: the file ends inside an "
                "episode with no terminated/truncated flag; pass --unended-as-truncated to treat it as truncated"
            )
        parts["truncated"][-1] = parts["truncated"][-1].copy()
        parts["truncated"][-1][-1] = True
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    return _to_dataset(arrays, ctx, path, fmt, costs_logged)


@dataclass(frozen=True)
class _Context:
    path: Path
    fmt: str
    schema: LogSchema
    n_actions: int
    allow_negative_costs: bool
    action_cols: tuple[str, ...] = ()
    """Continuous actions: their numbered columns, or ``(schema.action,)`` for one list column."""
    bounds: Bounds | None = None
    """Continuous actions: the box (low, high), one entry per dimension."""

    def row(self, row: int, episode: int | None = None, step: int | None = None) -> str:
        """``<file>: row R`` (1-based data row), with the CSV line (header = line 1), episode and step."""
        notes = [f"line {row + 1}"] if self.fmt == "csv" else []
        if episode is not None:
            notes.append(f"episode {episode}, step {step}")
        return f"{self.path}: row {row}" + (f" ({', '.join(notes)})" if notes else "")


def _numbered(names: list[str], prefix: str) -> list[str]:
    return sorted((c for c in names if c.startswith(prefix) and c[len(prefix) :].isdigit()),
                  key=lambda c: int(c[len(prefix) :]))  # fmt: skip


def _action_mode(
    ctx: _Context,
    first: pa.RecordBatch,
    n_actions: int | None,
    bounds: tuple[float | list[float], float | list[float]] | None,
) -> _Context:
    """Discrete (an integer ``action`` column and ``n_actions``) or continuous (numbered ``action_<j>`` columns or
    a list column, and a box), decided from the file's columns; a mismatch with the options is refused. A list
    column's width is its first row's."""
    path, schema, names = ctx.path, ctx.schema, first.schema.names
    numbered = _numbered(names, schema.action_prefix)
    as_list = schema.action in names and pa.types.is_list(first.schema.field(schema.action).type)
    if not numbered and not as_list:
        if schema.action not in names:
            raise ImportValidationError(
                f"{path}: missing column(s) ['{schema.action}' or {schema.action_prefix}0..]; columns present: {names}"
            )
        if n_actions is None:
            raise ImportValidationError(f"{path}: a log with discrete actions ('{schema.action}') needs --n-actions")
        return ctx
    if numbered and schema.action in names:
        raise ImportValidationError(
            f"{path}: both '{schema.action}' and {numbered} are present; a log has one kind of action columns"
        )
    expected = [f"{schema.action_prefix}{j}" for j in range(len(numbered))]
    if numbered != expected:
        raise ImportValidationError(f"{path}: action columns must be numbered from 0 without gaps, got {numbered}")
    if n_actions is not None:
        raise ImportValidationError(
            f"{path}: the actions are continuous ({numbered or [schema.action + ' (a list)']}); drop --n-actions "
            "and give the box with --action-low/--action-high"
        )
    if bounds is None:
        raise ImportValidationError(f"{path}: continuous actions need their box (--action-low/--action-high)")
    if numbered:
        width = len(numbered)
    else:
        head = first.column(first.schema.get_field_index(schema.action))[0].as_py()
        width = len(head) if isinstance(head, list) else max(np.size(bounds[0]), np.size(bounds[1]))
    if width < 1:
        raise ImportValidationError(f"{path}: row 1, column '{schema.action}': an action needs at least one number")
    try:
        low = np.broadcast_to(np.asarray(bounds[0], dtype=np.float64), (width,))
        high = np.broadcast_to(np.asarray(bounds[1], dtype=np.float64), (width,))
    except ValueError:
        raise ImportValidationError(f"{path}: action bounds {bounds} do not fit {width} action column(s)") from None
    if not (np.isfinite(low).all() and np.isfinite(high).all() and (low < high).all()):
        raise ImportValidationError(f"{path}: action bounds must be finite with low < high, got {bounds}")
    box = (tuple(low.tolist()), tuple(high.tolist()))
    return dataclasses.replace(ctx, action_cols=tuple(numbered) or (schema.action,), bounds=box)


def _obs_columns(path: Path, names: list[str], schema: LogSchema) -> list[str]:
    required = [schema.episode_id, schema.step, schema.reward, schema.terminated, schema.truncated]
    missing = [c for c in required if c not in names]
    prefixed = _numbered(names, schema.obs_prefix)
    if not prefixed and schema.obs_column not in names:
        missing.append(f"{schema.obs_prefix}0.. or {schema.obs_column}")
    if missing:
        raise ImportValidationError(f"{path}: missing column(s) {missing}; columns present: {names}")
    expected = [f"{schema.obs_prefix}{i}" for i in range(len(prefixed))]
    if prefixed and prefixed != expected:
        raise ImportValidationError(f"{path}: observation columns must be numbered from 0 without gaps, got {prefixed}")
    return prefixed


def _to_dataset(a: dict[str, np.ndarray], ctx: _Context, path: Path, fmt: str, costs_logged: bool) -> Dataset:
    n = len(a["episode_ids"])
    if "next_observations" in a:  # the log carries them: exact, the last rows included
        next_obs = a["next_observations"]
    else:
        next_obs = np.empty_like(a["observations"])
        next_obs[:-1] = a["observations"][1:]
        last = a["terminated"] | a["truncated"]
        next_obs[last] = a["observations"][last]  # an episode's last row: its own observation
    # without a cost column the costs are zeros that record nothing: the gate then judges no hazard
    provenance: dict[str, Any] = {"source": "import", "file": str(path), "format": fmt, "rows": n,
                                  "costs_logged": costs_logged}  # fmt: skip
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
        n_actions=ctx.n_actions if ctx.bounds is None else 0,
        action_bounds=ctx.bounds,
        provenance=provenance,
    )


def export_log(ds: Dataset, path: Path, fmt: str) -> Path:
    """Write ``ds`` as a log in the import schema (``obs_<i>`` columns), atomically; ``import_log`` reads it back."""
    from guardrl._io import atomic_write

    if fmt not in FORMATS:
        raise ImportValidationError(f"unknown format {fmt!r}; choose one of {list(FORMATS)}")
    cols: dict[str, Any] = {"episode_id": ds.episode_ids, "step": ds.steps}
    for j in range(ds.obs_dim):
        cols[f"obs_{j}"] = ds.observations[:, j]
    if ds.is_continuous:
        cols.update({f"action_{j}": ds.actions[:, j] for j in range(ds.action_dim)})
    else:
        cols["action"] = ds.actions
    cols.update({"reward": ds.rewards, "terminated": ds.terminations,
                 "truncated": ds.truncations, "cost": ds.costs, "propensity": ds.propensities,
                 "success": ds.successes})  # fmt: skip
    for j in range(ds.obs_dim):  # so that an episode's last next observation survives the round trip
        cols[f"next_obs_{j}"] = ds.next_observations[:, j]
    table = pa.table(cols)

    def write(tmp: Path) -> None:
        if fmt == "csv":
            pacsv.write_csv(table, tmp)
        else:
            pq.write_table(table, tmp)

    atomic_write(Path(path), write)
    return Path(path)
