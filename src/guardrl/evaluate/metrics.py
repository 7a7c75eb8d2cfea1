"""Pure metric functions over per-episode arrays: bootstrap confidence intervals, normalized score,
and the logged-action mismatch rate with the tutorial's traffic-light thresholds."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import sparse


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


@dataclass(frozen=True)
class Units:
    """What the bootstraps resample: each episode, or, beyond ``max_units`` episodes, random blocks of episodes.

    A percentile bootstrap over ``n`` episodes draws ``B x n`` indices; on 300,000 episodes and 1,000 resamples
    that is gigabytes and minutes per estimate. Every statistic guardrl bootstraps is a sum over episodes, or a
    ratio of two such sums, so beyond ``max_units`` episodes each episode is assigned (at random, seeded) to one
    of ``max_units`` blocks, and the bootstrap resamples whole blocks, whose sums are independent and identically
    distributed: the statistic's spread is the same, and the cost stops growing with the logs. Up to
    ``max_units`` episodes each episode is its own unit and the draws are the ones an episode bootstrap makes."""

    n: int
    """Resampling units."""
    of_episode: NDArray[np.int64] | None = None
    """Each episode's block; None: every episode is its own unit."""

    @classmethod
    def of(cls, n_episodes: int, max_units: int, seed: int) -> Units:
        if n_episodes <= max_units:
            return cls(n_episodes)
        perm = np.random.default_rng([seed, 0xB10C]).permutation(n_episodes)
        return cls(max_units, (perm % max_units).astype(np.int64))

    @property
    def blocked(self) -> bool:
        return self.of_episode is not None

    def sums(self, x: NDArray[np.floating]) -> NDArray[np.float64]:
        """Per-unit sums of a per-episode array (first axis episodes)."""
        values: NDArray[np.float64] = np.asarray(x, dtype=np.float64)
        if self.of_episode is None:
            return values
        if values.ndim == 1:
            return np.bincount(self.of_episode, weights=values, minlength=self.n).astype(np.float64)
        x = values
        return np.asarray(self.indicator() @ x.reshape(x.shape[0], -1)).reshape(self.n, *x.shape[1:])

    def sums_of(self, x: NDArray[np.floating], lo: int, hi: int) -> NDArray[np.float64]:
        """Per-unit sums of the rows of episodes ``lo`` to ``hi - 1`` (``x`` holds just those rows)."""
        if self.of_episode is None:
            out = np.zeros((self.n, *x.shape[1:]))
            out[lo:hi] = x
            return out
        part = self.indicator()[:, lo:hi]
        return np.asarray(part @ np.asarray(x, dtype=np.float64).reshape(hi - lo, -1)).reshape(self.n, *x.shape[1:])

    def indicator(self) -> sparse.csr_matrix:
        """(units, episodes) sparse 0/1 matrix: which episodes each unit holds."""
        n_eps = self.n if self.of_episode is None else len(self.of_episode)
        unit = np.arange(n_eps) if self.of_episode is None else self.of_episode
        return sparse.csr_matrix((np.ones(n_eps), (unit, np.arange(n_eps))), shape=(self.n, n_eps))

    def sizes(self) -> NDArray[np.float64]:
        """Episodes per unit."""
        if self.of_episode is None:
            return np.ones(self.n)
        return np.bincount(self.of_episode, minlength=self.n).astype(np.float64)

    def draws(self, rng: np.random.Generator, n_resamples: int, budget: int = 4_000_000) -> Iterator[NDArray[np.int64]]:
        """The resamples' unit indices, a chunk of rows at a time: together exactly
        ``rng.integers(0, n, size=(n_resamples, n))``, never more than about ``budget`` indices at once."""
        rows = max(1, budget // max(self.n, 1))
        for lo in range(0, n_resamples, rows):
            yield rng.integers(0, self.n, size=(min(rows, n_resamples - lo), self.n))

    def counts(self, rng: np.random.Generator, n_resamples: int) -> Iterator[NDArray[np.float64]]:
        """The same draws as :meth:`draws`, as (rows, n) counts of each unit."""
        for idx in self.draws(rng, n_resamples):
            k = idx.shape[0]
            flat = (np.arange(k)[:, None] * self.n + idx).ravel()
            yield np.bincount(flat, minlength=k * self.n).reshape(k, self.n).astype(np.float64)


def bootstrap(
    samples: dict[str, NDArray[np.floating]],
    n_resamples: int,
    confidence: float,
    rng: np.random.Generator,
    units: Units | None = None,
) -> dict[str, Estimate]:
    """Percentile bootstrap of the mean of each per-episode array, plus ``<key>_std`` for ``return``.

    All arrays are resampled with the same episode indices, so the intervals are of one resampling. ``units``:
    resample blocks of episodes instead (:class:`Units`; the default is every episode its own unit).
    """
    n = len(next(iter(samples.values())))
    if n == 0:
        raise ValueError("bootstrap needs at least one episode")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    units = Units(n) if units is None else units
    q = [(1.0 - confidence) / 2.0 * 100.0, (1.0 + confidence) / 2.0 * 100.0]
    arrays = {key: np.asarray(v, dtype=np.float64) for key, v in samples.items()}
    means: dict[str, list[NDArray]] = {key: [] for key in arrays}
    stds: list[NDArray] = []
    sizes = units.sizes()
    sums = {key: units.sums(v) for key, v in arrays.items()}
    squares = units.sums(arrays["return"] ** 2) if "return" in arrays and units.blocked else None
    for idx in units.draws(rng, n_resamples):
        count = sizes[idx].sum(axis=1)
        for key, values in arrays.items():
            if not units.blocked:
                resampled = values[idx]
                means[key].append(resampled.mean(axis=1))
                if key == "return":
                    stds.append(resampled.std(axis=1))
                continue
            mean = sums[key][idx].sum(axis=1) / count
            means[key].append(mean)
            if key == "return":
                assert squares is not None
                stds.append(np.sqrt(np.maximum(squares[idx].sum(axis=1) / count - mean**2, 0.0)))
    out = {}
    for key, values in arrays.items():
        lo, hi = np.percentile(np.concatenate(means[key]), q)
        out[key] = Estimate(float(values.mean()), float(lo), float(hi))
        if key == "return":
            lo, hi = np.percentile(np.concatenate(stds), q)
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
