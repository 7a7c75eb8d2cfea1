"""Off-policy estimates checked against the truth: errors, rank correlation and interval coverage."""

from __future__ import annotations

from typing import Any

import numpy as np


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties)."""

    def ranks(x: np.ndarray) -> np.ndarray:
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=np.float64)
        for v in np.unique(x):  # average ranks of ties
            m = x == v
            r[m] = r[m].mean()
        return r

    ra, rb = ranks(np.asarray(a, dtype=np.float64)), ranks(np.asarray(b, dtype=np.float64))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def ope_validation(results: dict[str, Any]) -> dict[str, Any]:
    """Per signal and estimator, over the policies in ``results`` (``ope.json``'s ``policies``, each with a
    ``truth``): absolute and relative errors, their mean, the rank correlation (3+ policies) and whether
    each interval covers the truth."""
    out: dict[str, Any] = {}
    names = list(results)
    for key in ("return", "cost"):
        if not names or not all(key in results[n]["estimates"] for n in names):
            continue
        truth = np.array([results[n]["truth"][key]["mean"] for n in names])
        for est in results[names[0]]["estimates"][key]:
            entries = [results[n]["estimates"][key][est] for n in names]
            value = np.array([e["mean"] for e in entries])
            abs_err = np.abs(value - truth)
            rel = abs_err / np.maximum(np.abs(truth), 1e-9)
            out.setdefault(key, {})[est] = {
                "abs_error": dict(zip(names, abs_err.tolist(), strict=True)),
                "rel_error": dict(zip(names, rel.tolist(), strict=True)),
                "mean_abs_error": float(abs_err.mean()),
                "rank_correlation": rank_correlation(value, truth) if len(names) >= 3 else None,
                "ci_covers_truth": {
                    n: bool(e["low"] <= t <= e["high"]) for n, e, t in zip(names, entries, truth, strict=True)
                },
            }
    return out
