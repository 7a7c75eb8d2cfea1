"""Pure metric functions over per-episode arrays: bootstrap confidence intervals, normalized score,
and the logged-action mismatch rate with the tutorial's traffic-light thresholds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a (percentile bootstrap) confidence interval."""

    mean: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "low": self.low, "high": self.high}

    @classmethod
    def from_dict(cls, d: dict[str, float]) -> Estimate:
        return cls(float(d["mean"]), float(d["low"]), float(d["high"]))

    def scaled(self, offset: float, scale: float) -> Estimate:
        """The estimate of ``(x - offset) * scale`` (for positive ``scale``)."""
        return Estimate((self.mean - offset) * scale, (self.low - offset) * scale, (self.high - offset) * scale)


def format_interval(
    e: Estimate | dict[str, float] | None, pct: bool = False, digits: int = 1, missing: str = "-", spread: bool = False
) -> str:
    """``mean [low, high]``: the one way guardrl prints an interval (tables, the gate's reasons, the report).

    ``pct`` shows rates in percent; ``spread`` reads a sweep cell's ``min`` and ``max`` instead of the interval.
    """
    if e is None or (isinstance(e, dict) and not e):
        return missing
    d = e.to_dict() if isinstance(e, Estimate) else e
    lo, hi = ("min", "max") if spread else ("low", "high")
    f = 100.0 if pct else 1.0
    mean, low, high = (format_number(d[k] * f, digits) for k in ("mean", lo, hi))
    return f"{mean} [{low}, {high}]"


def format_number(x: float, digits: int = 2) -> str:
    """``x`` with ``digits`` decimals, or, between 0.0001 and 0.1 in size, with 3 significant digits: a click rate
    of 0.0154 prints as such, not as ``0.02``, and 0.002 not as ``0.00``."""
    if 1e-4 <= abs(x) < 0.1:
        return f"{x:.3g}"
    return f"{x:.{digits}f}"


def bootstrap(
    samples: dict[str, NDArray[np.floating]],
    n_resamples: int,
    confidence: float,
    rng: np.random.Generator,
) -> dict[str, Estimate]:
    """Percentile bootstrap of the mean of each per-episode array, plus ``<key>_std`` for ``return``.

    All arrays are resampled with the same episode indices, so the intervals are of one resampling.
    """
    n = len(next(iter(samples.values())))
    if n == 0:
        raise ValueError("bootstrap needs at least one episode")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    idx = rng.integers(0, n, size=(n_resamples, n))
    q = [(1.0 - confidence) / 2.0 * 100.0, (1.0 + confidence) / 2.0 * 100.0]
    out = {}
    for key, values in samples.items():
        values = np.asarray(values, dtype=np.float64)
        resampled = values[idx]
        lo, hi = np.percentile(resampled.mean(axis=1), q)
        out[key] = Estimate(float(values.mean()), float(lo), float(hi))
        if key == "return":
            lo, hi = np.percentile(resampled.std(axis=1), q)
            out["return_std"] = Estimate(float(values.std()), float(lo), float(hi))
    return out


def wilson_interval(
    rate: NDArray[np.float64] | float, n: int, z: float = 1.959964
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Wilson's score interval (low, high) of a share ``rate`` of ``n`` 0/1 events (elementwise for arrays); it
    stays above 0 when no event was seen, where a normal interval collapses to a point."""
    p = np.asarray(rate, dtype=np.float64)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def normalized_score(value: float, random_value: float, optimal_value: float) -> float:
    """100 * (R - R_random) / (R_optimal - R_random): 0 is uniform random, 100 is the exact optimum."""
    span = optimal_value - random_value
    if span <= 0:
        raise ValueError("normalized score needs the optimal return above the random one")
    return 100.0 * (value - random_value) / span


@dataclass(frozen=True)
class MismatchThresholds:
    """The tutorial's traffic light: above ``red`` is a red flag, ``ok`` to ``red`` is caution, below is ok."""

    ok: float = 0.10
    red: float = 0.20

    def flag(self, rate: float) -> str:
        if rate > self.red:
            return "red"
        if rate >= self.ok:
            return "caution"
        return "ok"


def mismatch_rate(policy_actions: NDArray[np.int64], logged_actions: NDArray[np.int64]) -> float:
    """Fraction of logged transitions where the policy's action differs from the logged one."""
    if policy_actions.shape != logged_actions.shape:
        raise ValueError("policy and logged actions must have the same shape")
    if logged_actions.size == 0:
        raise ValueError("mismatch rate needs at least one logged transition")
    return float(np.mean(policy_actions != logged_actions))
