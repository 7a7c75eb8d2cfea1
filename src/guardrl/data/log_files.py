"""Reading a log's files for the importer: Parquet and CSV as Arrow record batches, in chunks, and locating the
row and column of a CSV value that pyarrow refused (its own message names neither)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from guardrl.errors import GuardrlError

if TYPE_CHECKING:
    from guardrl.data.importer import LogSchema, _Carry, _Context


class ImportValidationError(GuardrlError, ValueError):
    """A log that cannot be imported; the message names the file, row and column."""


# pyarrow's CSV defaults, so that locating a bad value agrees with what pyarrow refused
_CSV_NULLS = frozenset(pacsv.ConvertOptions().null_values)
_CSV_BOOLS = frozenset(pacsv.ConvertOptions().true_values) | frozenset(pacsv.ConvertOptions().false_values)


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


def _read_batches(ctx: _Context, carry: _Carry, chunk_rows: int, csv_block_bytes: int) -> Iterator[pa.RecordBatch]:
    path = ctx.path
    if ctx.fmt == "parquet":
        try:
            pf = pq.ParquetFile(path)
            _duplicates(path, pf.schema_arrow.names)
            carry.total_rows = pf.metadata.num_rows
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
