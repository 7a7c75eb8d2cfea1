"""Off-policy estimates on one-step logs (contextual bandits: recommendations, offers, alerts), where every
logged episode is a single decision with its logged propensity.

With one step there is no trajectory to model, and the importance weight of a row is one ratio
``w = pi(a | x) / mu(a | x)``. The estimators, each the mean of one term per row, with a normal interval from
the terms' spread (the central limit theorem over independent rows):

A normal interval trusts the terms' sample variance, which the rare rows of large weight dominate: a sample
that misses them understates both the estimate and its spread. On simulated logs (5 contexts, 20 actions, a
softmax logger with logit spread 1 or 2, the uniform target, 3,000-10,000 rows) the normal intervals missed the
truth in 13 to 80 of 300 repetitions, nearly always below it. So each interval is widened to contain Wilson's
score interval of its point estimate, read as a share of the signal's logged range, among the weights' effective
sample size (Kish's rule: a self-normalized estimate varies about as a mean of that many draws from the target,
and a signal within a range varies at most as a 0/1 one of the same mean). Widened, they missed it in at most 14
of 300. Each interval is then clipped to the logged signal's range, where every policy's value lies.

* ``ips``: ``w * r``, unbiased when the propensities are right.
* ``snips``: ``sum(w * r) / sum(w)``, self-normalized; its interval by the delta method.
* ``dm``: the direct method, ``sum_a pi(a | x) * rhat(x, a)``, with a reward model ``rhat`` (per context state
  and action, shrunk toward the action's mean and that toward the overall mean); reported, never trusted alone,
  since its interval leaves out the model's own error.
* ``dr``: doubly robust, ``dm + w * (r - rhat(x, a))``. The reward model is *cross-fitted*: each row's ``rhat``
  comes from a model fitted on the other folds. Fitted on the same rows, a tabular model equals the logged mean
  of each pair, the correction sums to zero and DR collapses onto the direct method.
* ``switch_dr``: DR without the correction on rows whose weight exceeds ``switch_weight`` (Wang et al. 2017):
  less variance where weights are heavy, at the price of the model's bias there; reported, not trusted.

The share of the target's probability on (context, action) pairs the logs never contain is reported as
``unlogged_mass``: there the reward model has nothing of its own to say (it falls back on the action's and
the overall means), and importance weighting has no row to weigh.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import NDArray

from guardrl.evaluate.metrics import Estimate, wilson_interval

REPORTED_ONLY = ("dm", "switch_dr")
"""One-step estimates the gate reports but does not trust: their intervals leave out the reward model's error."""


@dataclass(frozen=True)
class BanditConfig:
    """Settings of the one-step estimators."""

    folds: int = 5
    """Cross-fitting folds of DR's reward model."""
    prior_rows: float = 10.0
    """The reward model's shrinkage: a (context, action) pair's mean counts this many pseudo-rows of its action's
    mean, and an action's mean this many of the overall mean."""
    switch_weight: float = 20.0
    """``switch_dr`` drops the correction on rows whose importance weight exceeds this."""


def is_one_step(episode_starts: NDArray[np.int64], n_rows: int) -> bool:
    """Whether every logged episode is one row long (contextual-bandit logs)."""
    return n_rows > 0 and len(episode_starts) == n_rows


def mean_interval(terms: NDArray[np.float64], conf: float) -> Estimate:
    """The mean of independent per-row terms with its normal interval."""
    n = len(terms)
    point = float(terms.mean())
    half = _z(conf) * float(terms.std(ddof=1)) / np.sqrt(n) if n > 1 else float("inf")
    return Estimate(point, point - half, point + half)


def snips(w: NDArray[np.float64], r: NDArray[np.float64], conf: float) -> Estimate:
    """Self-normalized IPS with a delta-method interval (NaN when every weight is 0)."""
    total = float(w.sum())
    if total <= 0:
        return Estimate(float("nan"), float("nan"), float("nan"))
    point = float((w * r).sum() / total)
    influence = w * (r - point) / w.mean()
    n = len(w)
    half = _z(conf) * float(influence.std(ddof=1)) / np.sqrt(n) if n > 1 else float("inf")
    return Estimate(point, point - half, point + half)


def reward_model(
    contexts: NDArray[np.int64],
    actions: NDArray[np.int64],
    rewards: NDArray[np.float64],
    n_contexts: int,
    n_actions: int,
    prior_rows: float,
) -> NDArray[np.float64]:
    """``rhat`` (n_contexts, n_actions): each pair's logged mean shrunk toward its action's mean, and each
    action's toward the overall mean, by ``prior_rows`` pseudo-rows. Never-logged pairs get the action's mean."""
    overall = float(rewards.mean()) if len(rewards) else 0.0
    a_count = np.bincount(actions, minlength=n_actions).astype(np.float64)
    a_sum = np.bincount(actions, weights=rewards, minlength=n_actions)
    # (without shrinkage, a never-logged action takes the overall mean and a never-logged pair its action's)
    a_mean = np.where(
        a_count + prior_rows > 0, (a_sum + prior_rows * overall) / np.maximum(a_count + prior_rows, 1e-300), overall
    )
    pair = contexts * n_actions + actions
    p_count = np.bincount(pair, minlength=n_contexts * n_actions).reshape(n_contexts, n_actions)
    p_sum = np.bincount(pair, weights=rewards, minlength=n_contexts * n_actions).reshape(n_contexts, n_actions)
    shrunk = (p_sum + prior_rows * a_mean[None, :]) / np.maximum(p_count + prior_rows, 1e-300)
    result: NDArray[np.float64] = np.where(p_count + prior_rows > 0, shrunk, a_mean[None, :])
    return result


def cross_fitted(
    contexts: NDArray[np.int64],
    actions: NDArray[np.int64],
    rewards: NDArray[np.float64],
    target_probs: NDArray[np.float64],
    n_contexts: int,
    cfg: BanditConfig,
    rng: np.random.Generator,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per row, from a reward model fitted on the other folds: ``rhat(x, a)`` of the logged action, and the
    target's expected ``rhat`` (``sum_a pi(a | x) rhat(x, a)``, the direct method's term)."""
    n, n_actions = target_probs.shape
    folds = min(cfg.folds, n)
    fold = rng.permutation(np.arange(n) % folds)
    taken, direct = np.empty(n), np.empty(n)
    for k in range(folds):
        held = np.flatnonzero(fold == k)
        rest = fold != k
        model = reward_model(contexts[rest], actions[rest], rewards[rest], n_contexts, n_actions, cfg.prior_rows)
        taken[held] = model[contexts[held], actions[held]]
        direct[held] = np.einsum("ij,ij->i", target_probs[held], model[contexts[held]])
    return taken, direct


def bandit_estimates(
    contexts: NDArray[np.int64],
    actions: NDArray[np.int64],
    propensities: NDArray[np.float64],
    target_probs: NDArray[np.float64],
    signals: dict[str, NDArray[np.float64]],
    cfg: BanditConfig,
    conf: float,
    seed: int,
) -> dict[str, Any]:
    """Every one-step estimate of each signal (``return``, ``cost``) of the target with action probabilities
    ``target_probs`` (n, n_actions), from logs whose rows have context state ``contexts`` (ids from 0), action,
    logged propensity and signal values; with the weights' diagnostics."""
    n, n_actions = target_probs.shape
    rows = np.arange(n)
    _, ctx = np.unique(contexts, return_inverse=True)
    ctx = ctx.reshape(-1)
    n_ctx = int(ctx.max()) + 1 if n else 0
    w = target_probs[rows, actions] / propensities
    logged_pairs = np.zeros(n_ctx * n_actions, dtype=bool)
    logged_pairs[ctx * n_actions + actions] = True
    unlogged = ~logged_pairs.reshape(n_ctx, n_actions)
    order = np.argsort(ctx, kind="stable")
    bounds = np.searchsorted(ctx[order], np.arange(n_ctx + 1))
    mass = sum(float(target_probs[order[bounds[c] : bounds[c + 1]]][:, unlogged[c]].sum()) for c in range(n_ctx))
    unlogged_mass = mass / n if n else 0.0
    s2 = float((w**2).sum())
    ess = float(w.sum() ** 2 / s2) if s2 > 0 else 0.0
    estimates: dict[str, dict[str, Estimate]] = {}
    for i, (key, r) in enumerate(signals.items()):
        taken, dm_terms = cross_fitted(ctx, actions, r, target_probs, n_ctx, cfg, np.random.default_rng([seed, 7, i]))
        correction = w * (r - taken)
        raw = {
            "ips": mean_interval(w * r, conf),
            "snips": snips(w, r, conf),
            "dm": mean_interval(dm_terms, conf),
            "dr": mean_interval(dm_terms + correction, conf),
            "switch_dr": mean_interval(dm_terms + np.where(w <= cfg.switch_weight, correction, 0.0), conf),
        }
        estimates[key] = {k: _widened(e, float(r.min()), float(r.max()), ess, conf) for k, e in raw.items()}
    return {
        "estimates": estimates,
        "weights": {
            "mean_ratio": float(w.mean()),
            "max_ratio": float(w.max()),
            "share_zero_weight_episodes": float((w == 0).mean()),
            "ess_episodes": ess,
            "min_propensity": float(propensities.min()),
            "rows_over_switch_weight": int((w > cfg.switch_weight).sum()),
        },
        "unlogged_mass": unlogged_mass,
        "contexts": n_ctx,
    }


def _widened(e: Estimate, low: float, high: float, ess: float, conf: float) -> Estimate:
    """``e``'s interval joined with Wilson's for its point as a share of ``[low, high]`` among ``ess`` draws, and
    clipped to ``[low, high]``."""
    if high <= low or ess <= 0 or e.mean != e.mean:
        return Estimate(e.mean, max(e.low, low), min(e.high, high))
    p = min(max((e.mean - low) / (high - low), 0.0), 1.0)
    w_lo, w_hi = wilson_interval(p, ess, _z(conf))  # type: ignore[arg-type]
    lo, hi = low + float(w_lo) * (high - low), low + float(w_hi) * (high - low)
    return Estimate(e.mean, max(min(e.low, lo), low), min(max(e.high, hi), high))


def _z(conf: float) -> float:
    return NormalDist().inv_cdf((1.0 + conf) / 2.0)
