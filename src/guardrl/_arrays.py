"""Array helpers that keep large logs fast: distinct rows through 64-bit keys instead of row-wise sorts.

``np.unique(a, axis=0)`` sorts the rows through a structured view, comparing them field by field; on ten million
two-column observations that took tens of seconds, several times per run. :func:`unique_rows` numbers one 64-bit
key per row in a hash table instead, checks every row against its key's representative (so a key collision cannot
merge two different rows: it falls back to the row-wise sort), sorts only the distinct rows, and returns exactly
what ``np.unique(a, axis=0, ...)`` returns, in the same (lexicographic) order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

SMALL = 50_000
"""Below this many rows ``np.unique(axis=0)`` is used as it is (its sort is cheap there)."""


def row_keys(rows: NDArray[Any]) -> NDArray[np.uint64]:
    """A 64-bit key of each row's values (``-0.0`` keyed as ``0.0``): the bits of its columns times fixed odd
    multipliers, summed modulo 2**64, then mixed. Equal rows get equal keys; different rows almost never do."""
    rows = np.asarray(rows)
    if rows.ndim == 1:
        rows = rows[:, None]
    if rows.dtype == np.float32:
        bits = (rows + np.float32(0.0)).view(np.uint32).astype(np.uint64)
    elif rows.dtype == np.float64:
        bits = (rows + 0.0).view(np.uint64)
    else:
        bits = rows.astype(np.int64).view(np.uint64)
    mult: NDArray[np.uint64] = np.asarray(
        np.random.default_rng(0x5EED).integers(0, 2**63, size=bits.shape[1], dtype=np.uint64) * np.uint64(2) + 1
    )
    with np.errstate(over="ignore"):
        key: NDArray[np.uint64] = np.zeros(bits.shape[0], dtype=np.uint64)
        for j in range(bits.shape[1]):  # column by column: no (n, d) temporary of products
            key += bits[:, j] * mult[j]
        key ^= key >> np.uint64(31)
        key *= np.uint64(0xBF58476D1CE4E5B9)
    return np.asarray(key ^ (key >> np.uint64(29)), dtype=np.uint64)


def unique_rows(a: NDArray[Any], return_index: bool = False, return_inverse: bool = False) -> Any:
    """``np.unique(a, axis=0, return_index=..., return_inverse=...)`` for a 2-D array, through row keys.

    Rows that hold NaN (never equal to themselves) or a key collision make it fall back to ``np.unique``."""
    a = np.ascontiguousarray(a)
    if a.ndim != 2 or a.shape[0] < SMALL:
        return np.unique(a, axis=0, return_index=return_index, return_inverse=return_inverse)  # type: ignore[call-overload]
    inverse, first = _factorize(row_keys(a))
    reps = a[first]
    if not _all_equal(a, reps, inverse):
        return np.unique(a, axis=0, return_index=return_index, return_inverse=return_inverse)  # type: ignore[call-overload]
    # the representatives are distinct: sorting them gives np.unique's order, and rank[k] where key k goes
    rows, order = np.unique(reps, axis=0, return_index=True)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    out: list[Any] = [rows]
    if return_index:
        out.append(first[order])
    if return_inverse:
        out.append(rank[inverse])
    return out[0] if len(out) == 1 else tuple(out)


def _factorize(keys: NDArray[Any]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Codes of ``keys`` numbered by first appearance, and where each code first appears: a hash table, linear in
    the number of keys (a sort of ten million keys costs several times more)."""
    import pandas as pd  # only for large arrays: it is slow to import

    codes = np.asarray(pd.factorize(keys, sort=False)[0], dtype=np.int64)
    # codes appear in increasing order, so a code's first row is where the running maximum grows
    grows = np.empty(len(codes), dtype=bool)
    grows[0] = True
    np.greater(codes[1:], np.maximum.accumulate(codes)[:-1], out=grows[1:])
    return codes, np.flatnonzero(grows)


def _all_equal(a: NDArray[Any], reps: NDArray[Any], inverse: NDArray[np.int64], chunk: int = 1_000_000) -> bool:
    for lo in range(0, a.shape[0], chunk):
        if not (a[lo : lo + chunk] == reps[inverse[lo : lo + chunk]]).all():
            return False
    return True


def unique_1d(
    x: NDArray[Any], return_index: bool = False, return_inverse: bool = False, return_counts: bool = False
) -> Any:
    """``np.unique(x, return_index=..., return_inverse=..., return_counts=...)`` for a 1-D array of numbers,
    through a hash table for large arrays: only the distinct values are sorted."""
    x = np.asarray(x).reshape(-1)
    flags = {"return_index": return_index, "return_inverse": return_inverse, "return_counts": return_counts}
    if len(x) < SMALL or x.dtype.kind not in "iuf" or (x.dtype.kind == "f" and bool(np.isnan(x).any())):
        return np.unique(x, **flags)  # type: ignore[call-overload]
    if x.dtype.kind == "f":  # equal values, equal bits (once -0.0 is 0.0 and no NaN is left)
        keys = (x + x.dtype.type(0)).view(np.dtype(f"u{x.dtype.itemsize}"))
    else:
        keys = x
    codes, first = _factorize(keys)
    values = x[first]
    order = np.argsort(values, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    out: list[Any] = [values[order]]
    if return_index:
        out.append(first[order])
    if return_inverse:
        out.append(rank[codes])
    if return_counts:
        out.append(np.bincount(codes, minlength=len(order))[order])
    return out[0] if len(out) == 1 else tuple(out)
