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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from guardrl.data.dataset import Dataset
from guardrl.errors import GuardrlError

FORMATS = ("csv", "parquet")


class ImportValidationError(GuardrlError, ValueError):
    """A log that cannot be imported; the message names the file, row and column."""


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


_INT64_MAX = np.iinfo(np.int64).max
# pyarrow's CSV defaults, so that locating a bad value agrees with what pyarrow refused
_CSV_NULLS = frozenset(pacsv.ConvertOptions().null_values)
_CSV_BOOLS = frozenset(pacsv.ConvertOptions().true_values) | frozenset(pacsv.ConvertOptions().false_values)


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


def _duplicates(path: Path, names: list[str]) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names, start=1):
        if name in seen:
            raise ImportValidationError(
                f"{path}: column name {name!r} appears twice (columns {seen[name]} and {i}); "
                "every column needs its own name"
            )
        seen[name] = i


def _csv_header(path: Path) -> list[str]:
    import csv

    try:
        with path.open(newline="", encoding="utf-8") as f:
            return next(csv.reader(f), [])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ImportValidationError(f"{path}: line 1: cannot read the CSV header ({exc})") from None


def _float_columns(names: list[str], schema: LogSchema) -> list[str]:
    """Columns read as float64 whatever the first block holds (an all-integer first block must not make a
    later ``0.5`` unreadable)."""
    fixed = {schema.reward, schema.cost, schema.propensity}

    def numbered(name: str, prefix: str) -> bool:
        return name.startswith(prefix) and name[len(prefix) :].isdigit()

    prefixes = (schema.obs_prefix, schema.next_obs_prefix, schema.action_prefix)
    return [n for n in names if n in fixed or any(numbered(n, p) for p in prefixes)]


def _csv_value_problem(typ: pa.DataType, value: str) -> str | None:
    """Why pyarrow could not convert ``value`` to ``typ`` (None when it could)."""
    if value in _CSV_NULLS:
        return None
    text = value.strip()
    if pa.types.is_integer(typ):
        try:
            number = int(text)
        except ValueError:
            return "expected an integer"
        info = np.iinfo(typ.to_pandas_dtype())
        return None if info.min <= number <= info.max else f"integer outside [{info.min}, {info.max}]"
    if pa.types.is_floating(typ):
        try:
            float(text)
        except ValueError:
            return "expected a number"
        return None
    if pa.types.is_boolean(typ):
        return None if text in _CSV_BOOLS else "expected true/false or 0/1"
    return None


def _locate_csv_error(path: Path, types: dict[str, pa.DataType], names: list[str], start_row: int,
                      exc: Exception) -> ImportValidationError:  # fmt: skip
    """pyarrow reports a bad CSV value or a ragged row without its row: find it with the csv module.

    Only runs on the error path; ``start_row`` (rows already validated) skips the checks on what passed.
    """
    import csv

    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        next(reader, None)
        row = 0
        for fields in reader:
            if not fields:
                continue  # pyarrow skips empty lines too
            row += 1
            if row <= start_row:
                continue
            where = f"{path}: row {row} (line {reader.line_num})"
            if len(fields) != len(names):
                return ImportValidationError(
                    f"{where}: expected {len(names)} fields (as in the header), got {len(fields)}"
                )
            for name, value in zip(names, fields, strict=True):
                problem = _csv_value_problem(types.get(name, pa.string()), value)
                if problem:
                    return ImportValidationError(f"{where}, column '{name}': {problem}, got {_clip(value)!r}")
    return ImportValidationError(f"{path}: after row {start_row}: cannot be read as csv: {_clip(str(exc))}")


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


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
) -> Dataset:
    """Read and validate a log file into a :class:`Dataset` (not yet saved).

    Discrete actions need ``n_actions``. A log whose actions are ``action_0 ..`` columns (or a list column) has
    continuous actions: give ``action_bounds`` (low, high; a number for every dimension or one per dimension)
    and no ``n_actions``. ``chunk_rows`` sizes Parquet batches and ``csv_block_bytes`` CSV blocks; neither
    changes the result.
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
    ctx = _Context(path, fmt, schema, n_actions or 0, allow_negative_costs)
    for batch in _read_batches(ctx, carry, chunk_rows, csv_block_bytes):
        if batch.num_rows == 0:
            continue
        if obs_cols is None:
            obs_cols = _obs_columns(path, batch.schema.names, schema)
            ctx = _action_mode(ctx, batch, n_actions, action_bounds)
        chunk = _validate_chunk(ctx, batch, obs_cols, carry)
        for key, value in chunk.items():
            parts.setdefault(key, []).append(value)
        carry.rows += batch.num_rows
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
    return _to_dataset(arrays, ctx, path, fmt)


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


def _read_batches(ctx: _Context, carry: _Carry, chunk_rows: int, csv_block_bytes: int) -> Iterator[pa.RecordBatch]:
    path = ctx.path
    if ctx.fmt == "parquet":
        try:
            pf = pq.ParquetFile(path)
            _duplicates(path, pf.schema_arrow.names)
            yield from pf.iter_batches(batch_size=chunk_rows)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
            raise ImportValidationError(f"{path}: cannot be read as parquet: {_clip(str(exc), 200)}") from None
        return
    names = _csv_header(path)
    _duplicates(path, names)
    types: dict[str, pa.DataType] = {n: pa.float64() for n in _float_columns(names, ctx.schema)}
    convert = pacsv.ConvertOptions(column_types=types)
    reader = None
    try:
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=csv_block_bytes),
                                convert_options=convert)  # fmt: skip
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            yield batch
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        if reader is not None:  # the first block's inferred types hold for every later block
            types.update(zip(reader.schema.names, reader.schema.types, strict=True))
        raise _locate_csv_error(path, types, names, carry.rows, exc) from None
    except OSError as exc:
        raise ImportValidationError(f"{path}: cannot be read as csv: {_clip(str(exc), 200)}") from None


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


def _where(ctx: _Context, row0: int, i: int, ep: np.ndarray | None, st: np.ndarray | None) -> str:
    if ep is not None and st is not None:
        return ctx.row(row0 + i + 1, int(ep[i]), int(st[i]))
    return ctx.row(row0 + i + 1)


def _numeric(ctx: _Context, batch: pa.RecordBatch, col: str, row0: int, integer: bool = False) -> np.ndarray:
    """A column as float64 (nulls as NaN) or, with ``integer``, as int64 (nulls refused); errors name the row."""
    arr = batch.column(batch.schema.get_field_index(col))
    t = arr.type
    kind = "an integer" if integer else "a number"
    ok = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
    if not ok:
        values = arr.to_pylist()
        for i, v in enumerate(values):
            try:
                float(v)
            except (TypeError, ValueError):
                got = "a missing value" if v is None else repr(_clip(str(v)) if isinstance(v, str) else v)
                where = f"{ctx.row(row0 + i + 1)}, column '{col}'"
                raise ImportValidationError(f"{where}: expected {kind}, got {got}") from None
        raise ImportValidationError(f"{ctx.path}: column '{col}': expected numbers, got type {t}")
    nulls = arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else None
    if nulls is not None and (integer or pa.types.is_boolean(t)):
        i = int(np.flatnonzero(nulls)[0])
        raise ImportValidationError(f"{ctx.row(row0 + i + 1)}, column '{col}': missing value")
    values = (arr.fill_null(0) if nulls is not None else arr).to_numpy(zero_copy_only=False)
    if integer:
        if pa.types.is_floating(t):
            bad = ~np.isfinite(values) | (values != np.round(values)) | (np.abs(values) >= 2.0**63)
        elif pa.types.is_unsigned_integer(t):
            bad = values > _INT64_MAX  # would wrap to a negative int64
        else:
            bad = np.zeros(len(values), bool)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ImportValidationError(
                f"{ctx.row(row0 + i + 1)}, column '{col}': expected an integer within int64, got {values[i].item()!r}"
            )
        return values.astype(np.int64)
    out = values.astype(np.float64)
    return np.where(nulls, np.nan, out) if nulls is not None else out


def _flag(ctx: _Context, batch: pa.RecordBatch, col: str, row0: int) -> np.ndarray:
    arr = batch.column(batch.schema.get_field_index(col))
    if pa.types.is_boolean(arr.type) and not arr.null_count:
        return arr.to_numpy(zero_copy_only=False).astype(bool)
    values = _numeric(ctx, batch, col, row0, integer=True)
    bad = (values != 0) & (values != 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ImportValidationError(
            f"{ctx.row(row0 + i + 1)}, column '{col}': expected true/false or 0/1, got {values[i].item()}"
        )
    return values.astype(bool)


def _validate_chunk(ctx: _Context, batch: pa.RecordBatch, obs_cols: list[str], carry: _Carry) -> dict[str, np.ndarray]:
    path, schema, n_actions = ctx.path, ctx.schema, ctx.n_actions
    row0 = carry.rows
    names = batch.schema.names
    ep = _numeric(ctx, batch, schema.episode_id, row0, integer=True)
    st = _numeric(ctx, batch, schema.step, row0, integer=True)

    def fail(mask: np.ndarray, col: str, what: str) -> None:
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            raise ImportValidationError(f"{_where(ctx, row0, i, ep, st)}, column '{col}': {what}")

    # observations, checked after the float32 cast they are stored in (1e39 is finite in float64, inf in float32)
    obs_field = batch.schema.field(schema.obs_column) if schema.obs_column in names else None
    if not obs_cols and obs_field is not None and not pa.types.is_list(obs_field.type):
        obs_cols = [schema.obs_column]  # one scalar column: a one-feature observation (e.g. a discrete state)

    def float32_columns(cols: list[str], what: str) -> np.ndarray:
        values = np.stack([_numeric(ctx, batch, c, row0) for c in cols], axis=1)
        with np.errstate(over="ignore"):
            as32 = values.astype(np.float32)
        for j, c in enumerate(cols):
            fail(~np.isfinite(values[:, j]), c, f"NaN or infinite {what}")
            fail(~np.isfinite(as32[:, j]), c, f"{what} outside the float32 range (|x| > 3.4e38)")
        return as32

    if obs_cols:
        obs = float32_columns(obs_cols, "observation")
    else:
        col = batch.column(batch.schema.get_field_index(schema.obs_column))
        values = col.to_pylist()
        widths = np.array([len(v) if isinstance(v, (list, tuple)) else -1 for v in values])
        fail(widths < 0, schema.obs_column, "expected a list of numbers")
        fail(widths == 0, schema.obs_column, "empty observation list (an observation needs at least one number)")
        first = carry.obs_dim if carry.obs_dim is not None else int(widths[0])
        fail(widths != first, schema.obs_column, f"observation width differs from the first row's ({first})")
        try:
            obs64 = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            number = (int, float)
            bad = np.array([not all(isinstance(x, number) and not isinstance(x, bool) for x in v) for v in values])
            fail(bad, schema.obs_column, "observation lists must hold numbers")
            msg = f"{path}: column '{schema.obs_column}': observation lists must hold numbers"
            raise ImportValidationError(msg) from None
        with np.errstate(over="ignore"):
            obs = obs64.astype(np.float32)
        fail(np.asarray(~np.isfinite(obs64).all(axis=1)), schema.obs_column, "NaN or infinite observation")
        fail(
            np.asarray(~np.isfinite(obs).all(axis=1)),
            schema.obs_column,
            "observation outside the float32 range (|x| > 3.4e38)",
        )
    carry.obs_dim = int(obs.shape[1])
    next_cols = [f"{schema.next_obs_prefix}{j}" for j in range(obs.shape[1])] if obs_cols else []
    present = [c for c in next_cols if c in names]
    if present and present != next_cols:
        missing = sorted(set(next_cols) - set(present))
        raise ImportValidationError(f"{path}: next-observation column(s) {missing} missing (have {present})")
    next_obs: np.ndarray | None = None
    if present:
        next_obs = float32_columns(next_cols, "next observation")

    if ctx.bounds is not None:
        actions = _continuous_actions(ctx, batch, row0, fail)
    else:
        actions = _numeric(ctx, batch, schema.action, row0, integer=True)
        fail((actions < 0) | (actions >= n_actions), schema.action, f"action outside [0, {n_actions})")
    rewards = _numeric(ctx, batch, schema.reward, row0)
    fail(~np.isfinite(rewards), schema.reward, "NaN or infinite reward")
    term = _flag(ctx, batch, schema.terminated, row0)
    trunc = _flag(ctx, batch, schema.truncated, row0)
    fail(term & trunc, schema.terminated, "both terminated and truncated")
    if schema.cost in names:
        costs = _numeric(ctx, batch, schema.cost, row0)
        fail(~np.isfinite(costs), schema.cost, "NaN or infinite cost")
        if not ctx.allow_negative_costs:
            fail(costs < 0, schema.cost, "negative cost (pass --allow-negative-costs if your costs can be negative)")
    else:
        costs = np.zeros(len(ep))
    if schema.propensity in names:
        props = _numeric(ctx, batch, schema.propensity, row0)  # an empty cell is an unknown propensity (NaN)
        if ctx.bounds is not None:  # a density: positive and finite, possibly above 1
            fail((props <= 0) | np.isinf(props), schema.propensity,
                 "propensity (the logged action's density) must be finite and > 0")  # fmt: skip
        else:
            fail((props <= 0) | (props > 1) | np.isinf(props), schema.propensity,
                 "propensity outside (0, 1]: a logged action must have had a positive probability")  # fmt: skip
    else:
        props = np.full(len(ep), np.nan)
    success = _flag(ctx, batch, schema.success, row0) if schema.success in names else np.zeros(len(ep), bool)

    # episode structure, continuing from the previous chunk
    first_ep = carry.episode if carry.episode is not None else int(ep[0]) - 1  # the file's first row starts one
    prev_ep = np.concatenate([[first_ep], ep[:-1]])
    prev_st = np.concatenate([[carry.step], st[:-1]])
    prev_end = np.concatenate([[carry.ended], (term | trunc)[:-1]])
    new_ep = ep != prev_ep
    if next_obs is not None:
        prev_next = np.concatenate([carry.next_obs if carry.next_obs is not None else obs[:1], next_obs[:-1]])
        within = ~new_ep & ~prev_end
        for j, c in enumerate(obs_cols):
            fail(within & (prev_next[:, j] != obs[:, j]), c,
                 f"differs from the previous row's {next_cols[j]} (same episode)")  # fmt: skip
        carry.next_obs = next_obs[-1:]
    continues = ~new_ep & prev_end
    if continues.any():
        i = int(np.flatnonzero(continues)[0])  # the flagged row is the one before: i - 1 (maybe in the last chunk)
        flag_col = schema.terminated
        if i > 0:
            flag_col = schema.terminated if term[i - 1] else schema.truncated
        raise ImportValidationError(
            f"{ctx.row(row0 + i, int(prev_ep[i]), int(prev_st[i]))}, column '{flag_col}': "
            f"flagged as the episode's last row (an end flag before its last row), but the episode continues on "
            f"row {row0 + i + 1}"
        )
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
            f"{_where(ctx, row0, i, ep, st)}, column '{schema.episode_id}': episode {dup} appears again; "
            "rows of an episode must be contiguous"
        )
    carry.seen.update(starts.tolist())
    carry.episode, carry.step, carry.ended = int(ep[-1]), int(st[-1]), bool((term | trunc)[-1])
    out = {"episode_ids": ep, "steps": st, "observations": obs, "actions": actions,
           "rewards": rewards, "costs": costs, "terminated": term, "truncated": trunc, "successes": success,
           "propensities": props}  # fmt: skip
    if next_obs is not None:
        out["next_observations"] = next_obs
    return out


def _continuous_actions(ctx: _Context, batch: pa.RecordBatch, row0: int, fail: Any) -> np.ndarray:
    """The (rows, k) float32 actions, each finite and inside the box; errors name the row and column."""
    assert ctx.bounds is not None
    low, high = np.asarray(ctx.bounds[0]), np.asarray(ctx.bounds[1])
    if ctx.action_cols == (ctx.schema.action,):  # one list column
        col = ctx.schema.action
        values = batch.column(batch.schema.get_field_index(col)).to_pylist()
        widths = np.array([len(v) if isinstance(v, (list, tuple)) else -1 for v in values])
        fail(widths != len(low), col, f"expected a list of {len(low)} numbers (the action box's width)")
        try:
            a64 = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise ImportValidationError(f"{ctx.path}: column '{col}': action lists must hold numbers") from None
        names = [f"{col}[{j}]" for j in range(len(low))]
    else:
        a64 = np.stack([_numeric(ctx, batch, c, row0) for c in ctx.action_cols], axis=1)
        names = list(ctx.action_cols)
    for j, c in enumerate(names):
        fail(~np.isfinite(a64[:, j]), c, "NaN or infinite action")
        fail((a64[:, j] < low[j]) | (a64[:, j] > high[j]), c, f"action outside its bounds [{low[j]:g}, {high[j]:g}]")
    a32 = a64.astype(np.float32)
    # a value on a bound that float32 cannot hold (-0.1) rounds outward; step it back inside the box
    a32 = np.where(a32 < low, np.nextafter(a32, np.float32(np.inf)), a32)
    return np.where(a32 > high, np.nextafter(a32, np.float32(-np.inf)), a32).astype(np.float32)


def _to_dataset(a: dict[str, np.ndarray], ctx: _Context, path: Path, fmt: str) -> Dataset:
    n = len(a["episode_ids"])
    if "next_observations" in a:  # the log carries them: exact, the last rows included
        next_obs = a["next_observations"]
    else:
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
