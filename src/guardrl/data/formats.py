"""Format dispatch for logs: CSV and Parquet (the import schema), d3rlpy's HDF5, and local Minari datasets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from guardrl.data.dataset import Dataset
from guardrl.data.importer import ImportValidationError, LogSchema, format_from_extension

FORMATS = ("csv", "parquet", "hdf5", "d4rl", "minari")
CONTINUOUS_FORMATS = ("d4rl", "csv", "parquet", "minari")
"""The formats that hold continuous actions so far."""


@dataclass(frozen=True)
class ImportOptions:
    """How a log is read: the action count (discrete) or box (d4rl), the column names, and the two lenient
    switches."""

    n_actions: int | None
    schema: LogSchema = field(default_factory=LogSchema)
    unended_as_truncated: bool = False
    allow_negative_costs: bool = False
    minari_root: Path | None = None
    action_bounds: tuple[float, float] = (-1.0, 1.0)
    """Continuous actions (d4rl, or csv/parquet with ``action_<j>`` columns): the box (low, high), the same for
    every dimension."""
    on_rows: Callable[[int, int | None], None] | None = None
    """CSV and Parquet: called with (rows read, rows in the file or None) after each batch, for progress."""


def read_log(source: Path, fmt: str | None, options: ImportOptions) -> Dataset:
    """Read and validate a log in ``fmt`` (default: from the file's extension) into a Dataset."""
    fmt = fmt or format_from_extension(Path(source))
    if fmt == "d4rl":
        from guardrl.data.d4rl import import_d4rl

        return import_d4rl(Path(source), *options.action_bounds)
    if fmt in ("csv", "parquet"):
        from guardrl.data.importer import import_log

        return import_log(
            Path(source), fmt, options.n_actions, options.schema, unended_as_truncated=options.unended_as_truncated,
            allow_negative_costs=options.allow_negative_costs, action_bounds=options.action_bounds,
            on_rows=options.on_rows,
        )  # fmt: skip
    if fmt == "minari":
        from guardrl.data.minari_io import import_minari

        ds = import_minari(str(source), options.minari_root)
        if ds.is_continuous:
            if options.n_actions is not None:
                raise ImportValidationError(
                    f"{source}: the Minari action space is a Box (continuous actions); drop --n-actions"
                )
            return ds
        if options.n_actions is None:
            raise ImportValidationError(f"{source}: a {fmt} log needs --n-actions (its number of discrete actions)")
        if ds.n_actions != options.n_actions:
            raise ImportValidationError(
                f"{source}: the Minari action space has {ds.n_actions} actions, --n-actions {options.n_actions}"
            )
        return ds
    if fmt != "hdf5":
        raise ImportValidationError(f"unknown format {fmt!r}; choose one of {list(FORMATS)}")
    if options.n_actions is None:
        raise ImportValidationError(f"{source}: a {fmt} log needs --n-actions (its number of discrete actions)")
    from guardrl.data.hdf5 import import_hdf5

    return import_hdf5(Path(source), options.n_actions)


def write_log(ds: Dataset, target: str | Path, fmt: str, minari_root: Path | None = None) -> None:
    """Write ``ds`` in ``fmt``; ``target`` is a file, or for ``minari`` the new dataset id."""
    if ds.is_continuous and fmt not in CONTINUOUS_FORMATS:
        raise ImportValidationError(
            f"{target}: the dataset has continuous actions; {fmt} holds discrete ones here (use {CONTINUOUS_FORMATS})"
        )
    if fmt == "d4rl":
        from guardrl.data.d4rl import export_d4rl

        export_d4rl(ds, Path(target))
    elif fmt == "hdf5":
        from guardrl.data.hdf5 import export_hdf5

        export_hdf5(ds, Path(target))
    elif fmt == "minari":
        from guardrl.data.minari_io import export_minari

        export_minari(ds, str(target), minari_root)
    else:
        from guardrl.data.importer import export_log

        export_log(ds, Path(target), fmt)
