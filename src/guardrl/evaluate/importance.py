"""The importance-sampling family per episode: per-decision and weighted IS, the survival estimate, doubly robust
and weighted doubly robust, computed over chunks of episodes so that logs of millions of steps never need one
(episodes, horizon) array at once.

Bootstrap intervals resample :class:`~guardrl.evaluate.metrics.Units` (episodes, or seeded blocks of them) with
the per-unit sums these functions return, never copies of the data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from guardrl.data import Dataset
from guardrl.evaluate.metrics import Estimate, Units, bootstrap


@dataclass(frozen=True)
class Padded:
    """A dataset as (episodes, T) arrays, padded after each episode's end (``valid`` marks real steps)."""

    rewards: NDArray[np.float64]
    costs: NDArray[np.float64]
    ratios: NDArray[np.float64]  # pi(a|s) / mu(a|s) per step
    valid: NDArray[np.bool_]
    index: NDArray[np.int64]  # flat transition index of each (episode, t); -1 on padding

    @classmethod
    def build(cls, ds: Dataset, target_probs: NDArray[np.float64]) -> Padded:
        """Ratios of the target's probabilities (n, n_actions) of the logged actions to the propensities."""
        return cls.from_ratios(ds, target_probs[np.arange(len(ds)), ds.actions] / ds.propensities)

    @classmethod
    def from_ratios(cls, ds: Dataset, ratio: NDArray[np.float64]) -> Padded:
        """The logs padded per episode with the per-step importance ratios ``ratio`` (n,)."""
        return cls.of_episodes(ds, ratio, 0, ds.n_episodes)

    @classmethod
    def of_episodes(cls, ds: Dataset, ratio: NDArray[np.float64], lo: int, hi: int, T: int | None = None) -> Padded:
        """Episodes ``lo`` to ``hi - 1`` only, padded to ``T`` steps (default: the longest of the logs)."""
        all_starts = ds.episode_starts
        lengths = np.diff(np.append(all_starts, len(ds)))
        T = int(lengths.max()) if T is None else T
        starts, lengths = all_starts[lo:hi], lengths[lo:hi]
        t = np.arange(T)
        valid = t[None, :] < lengths[:, None]
        index = np.where(valid, starts[:, None] + t[None, :], -1)

        def pad(a: NDArray, fill: float) -> NDArray:
            return np.where(valid, a[np.maximum(index, 0)], fill)

        return cls(pad(ds.rewards, 0.0), pad(ds.costs, 0.0), pad(ratio, 1.0), valid, index)


def _discounts(T: int, gamma: float) -> NDArray[np.float64]:
    return gamma ** np.arange(T, dtype=np.float64)


def pdis_values(p: Padded, signal: NDArray[np.float64], gamma: float) -> NDArray[np.float64]:
    """Per-episode per-decision IS values: sum_t gamma^t rho_{0:t} x_t."""
    rho = np.cumprod(p.ratios, axis=1)
    return (_discounts(signal.shape[1], gamma) * rho * signal * p.valid).sum(axis=1)


def wis_parts(p: Padded, signal: NDArray[np.float64], gamma: float) -> tuple[NDArray, NDArray]:
    """Per-episode trajectory weights and discounted sums; WIS = sum(w * g) / sum(w)."""
    w = np.prod(p.ratios, axis=1)
    g = (_discounts(signal.shape[1], gamma) * signal * p.valid).sum(axis=1)
    return w, g


def survival_is(
    p: Padded, cost: NDArray[np.float64], rng: np.random.Generator, n_boot: int, conf: float, units: Units | None = None
) -> Estimate | None:
    """The hazard as one minus the survival's ordinary importance-sampling estimate, ``1 - mean(W * (1 - C))``
    with ``W`` each episode's whole weight and ``C`` its cost, for logs whose episodes each meet at most one
    hazard (None otherwise).

    Unbiased, as PDIS is; but where a policy's hazards lie off the behaviour's path (where it acts otherwise),
    they are reached through rare episodes of huge weight, so the cost's own estimates (PDIS, WIS, DR) mostly
    come out too low: their sample means miss the weight's long tail. Estimating the survival instead puts the
    long tail on the other side: a sample that misses it underestimates the survival and so overstates the
    hazard. Its percentile bootstrap interval is the confounded gate's conservative bound."""
    return _survival(np.prod(p.ratios, axis=1), (cost * p.valid).sum(axis=1), rng, n_boot, conf, units)


def _survival(
    w: NDArray[np.float64],
    c: NDArray[np.float64],
    rng: np.random.Generator,
    n_boot: int,
    conf: float,
    units: Units | None = None,
) -> Estimate | None:
    """:func:`survival_is` from each episode's whole weight ``w`` and cost ``c``."""
    if not np.isin(c, (0.0, 1.0)).all():
        return None
    survival = bootstrap({"s": w * (1.0 - c)}, n_boot, conf, rng, units)["s"]
    point = 1.0 - survival.mean
    return Estimate(point, float(min(1.0 - survival.high, point)), float(max(1.0 - survival.low, point)))


def dr_values(
    p: Padded, signal: NDArray[np.float64], q_taken: NDArray[np.float64], v: NDArray[np.float64], gamma: float
) -> NDArray[np.float64]:
    """Per-decision doubly robust (Jiang & Li 2016) per episode, with model values Q(s_t, a_t) and V(s_t)."""
    rho = np.cumprod(p.ratios, axis=1)
    rho_prev = np.concatenate([np.ones((rho.shape[0], 1)), rho[:, :-1]], axis=1)
    terms = rho * (signal - q_taken) + rho_prev * v
    return (_discounts(signal.shape[1], gamma) * terms * p.valid).sum(axis=1)


def weighted_dr(
    p: Padded,
    signal: NDArray[np.float64],
    q_taken: NDArray[np.float64],
    v: NDArray[np.float64],
    gamma: float,
    counts: NDArray[np.float64] | Iterable[NDArray[np.float64]],
    units: Units | None = None,
) -> NDArray[np.float64]:
    """Weighted doubly robust (Thomas & Brunskill 2016): per-decision DR with self-normalized weights.

    ``counts``: a (rows, units) array, or chunks of them, saying how often each unit (an episode, or a block of them:
    ``units``) is drawn; one row of ones is the point estimate, and bootstrap rows are multinomial counts. Every sum
    is linear in the counts, so the estimates are matrix products. Padding steps after an episode's end carry its
    weight with zero reward and zero model value.
    """
    disc = _discounts(signal.shape[1], gamma)
    units = Units(signal.shape[0]) if units is None else units
    chunks = [counts] if isinstance(counts, np.ndarray) else counts
    parts = [units.sums(a) for a in _wdr_terms(p, signal, q_taken, v)]
    return _wdr_from_parts(parts, disc, chunks)


def _wdr_terms(
    p: Padded, signal: NDArray[np.float64], q_taken: NDArray[np.float64], v: NDArray[np.float64]
) -> list[NDArray[np.float64]]:
    """Per episode and step, the weighted DR's numerators and denominators of its two self-normalized sums."""
    rho = np.cumprod(p.ratios, axis=1)
    rho_prev = np.concatenate([np.ones((rho.shape[0], 1)), rho[:, :-1]], axis=1)
    return [rho * (signal - q_taken) * p.valid, rho, rho_prev * v * p.valid, rho_prev]


def _wdr_from_parts(
    parts: list[NDArray[np.float64]], disc: NDArray[np.float64], counts: Iterable[NDArray[np.float64]]
) -> NDArray[np.float64]:
    def normalized(c: NDArray, num: NDArray, den: NDArray) -> NDArray:
        top, bottom = c @ num, c @ den
        return np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1.0), 0.0)

    out = [((normalized(c, parts[0], parts[1]) + normalized(c, parts[2], parts[3])) * disc).sum(axis=1) for c in counts]
    return np.concatenate(out)


def _bootstrap_ratio(
    w: NDArray, g: NDArray, rng: np.random.Generator, n: int, conf: float, units: Units | None = None
) -> Estimate:
    def ratio(top: NDArray, total: NDArray) -> NDArray:
        return np.where(total > 0, top / np.where(total > 0, total, 1.0), np.nan)

    units = Units(len(w)) if units is None else units
    wg, wu = units.sums(w * g), units.sums(w)
    boots = np.concatenate([ratio(wg[idx].sum(axis=-1), wu[idx].sum(axis=-1)) for idx in units.draws(rng, n)])
    point = float(ratio((w * g).sum(), w.sum()))
    if np.isnan(point):
        return Estimate(float("nan"), float("nan"), float("nan"))
    lo, hi = np.nanpercentile(boots, [(1 - conf) / 2 * 100, (1 + conf) / 2 * 100])
    return Estimate(point, float(lo), float(hi))


def _rows_of(q: NDArray[np.float64], rows: NDArray[np.int64] | None, part: slice) -> NDArray[np.float64]:
    """Q of the transitions in ``part``: rows of a per-transition array, or of a state table at ``rows``."""
    return q[part] if rows is None else q[rows[part]]


def _taken_and_state_values(
    q_of: Callable[[slice], NDArray[np.float64]], ds: Dataset, probs: NDArray[np.float64], chunk: int = 1_000_000
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Q(s_t, a_t) and V(s_t) = sum_a pi(a | s_t) Q(s_t, a) of every transition, a chunk at a time."""
    n = len(ds)
    q_taken, v = np.empty(n), np.empty(n)
    for lo in range(0, n, chunk):
        part = slice(lo, min(lo + chunk, n))
        q = q_of(part)
        q_taken[part] = q[np.arange(len(q)), ds.actions[part]]
        v[part] = (q * probs[part]).sum(axis=1)
    return q_taken, v


def _episode_terms(
    ds: Dataset,
    ratio: NDArray[np.float64],
    signals: dict[str, NDArray[np.float64]],
    dr_inputs: dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]],
    gamma: float,
    units: Units,
    budget: int = 4_000_000,
) -> dict[str, Any]:
    """Everything the importance-weighted estimators read, per episode, from the logs padded a chunk of episodes
    at a time (the whole log padded took gigabytes on ten million transitions): each episode's whole weight
    (``weight``), and per signal its PDIS value, discounted and undiscounted totals, and the weighted DR's four
    sums per resampling unit (``dr_parts``, with ``dr_inputs``: Q of the taken action and V per transition)."""
    lengths = np.diff(np.append(ds.episode_starts, len(ds)))
    T = int(lengths.max())
    n_eps = ds.n_episodes
    step = max(1, budget // T)
    weight = np.empty(n_eps)
    out: dict[str, Any] = {
        key: {"pdis": np.empty(n_eps), "total": np.empty(n_eps), "undiscounted": np.empty(n_eps)} for key in signals
    }
    for key in dr_inputs:
        out[key]["dr_parts"] = [np.zeros((units.n, T)) for _ in range(4)]
    disc = _discounts(T, gamma)
    for lo in range(0, n_eps, step):
        hi = min(lo + step, n_eps)
        p = Padded.of_episodes(ds, ratio, lo, hi, T)
        weight[lo:hi] = np.prod(p.ratios, axis=1)
        at = np.maximum(p.index, 0)
        for key, flat in signals.items():
            signal = np.where(p.valid, flat[at], 0.0)
            out[key]["pdis"][lo:hi] = pdis_values(p, signal, gamma)
            out[key]["total"][lo:hi] = (disc * signal * p.valid).sum(axis=1)
            out[key]["undiscounted"][lo:hi] = (signal * p.valid).sum(axis=1)
            if key in dr_inputs:
                q_taken, v = (np.where(p.valid, a[at], 0.0) for a in dr_inputs[key])
                for acc, part in zip(out[key]["dr_parts"], _wdr_terms(p, signal, q_taken, v), strict=True):
                    acc += units.sums_of(part, lo, hi)
    out["weight"] = weight
    return out


def _ess(w: NDArray[np.float64]) -> float:
    """Kish effective sample size of episode weights (0 when every weight is 0)."""
    s2 = float((w**2).sum())
    return float(w.sum() ** 2 / s2) if s2 > 0 else 0.0
