"""FQE with a tabular function class, solved exactly, with intervals from bootstrap refits.

With one-hot state features (the audit's state index: exact rows, or quantile bins), the function that
minimizes FQE's squared TD error is, at every iteration, the average backed-up target per logged
(state, action) pair. So instead of gradient steps the fit is computed in closed form: ``horizon`` backups from
zero, each one a weighted average over the logged transitions. That removes FQE's optimization error (the
network FQE's Huber loss settles near the median and misses rare costs; its intervals were over start states
only, so zero-width on a fixed start).

The interval is a percentile bootstrap over **refits**: episodes are resampled with replacement, the whole fit
is repeated on each resample, and the resample's start states are averaged. It therefore carries the
estimation error of the fitted values, not only the spread of start states. It does not carry the error of
the function class: where a bin holds observations whose values differ, the average is all it knows.

Pairs the logs never contain (or a resample happens to drop) have no evidence of their own. Such an action in a
logged state is valued as what the logged actions there are worth on average (weighted by how often each was
logged): FQE is an estimator, not a bound, and pessimism about unlogged actions is the world model's
``model_pessimistic``, which the gate also reads. (Valuing them as a hazard instead made FQE the least accurate
estimator of the OPE suite's development settings: with one pessimistic pair reachable by a slip, MOReL's
return came out 11.0 against a true 21.7, and the exact optimum's upper hazard bound 77-99%.) A next
observation never logged as a state gets ``fill``: the worst logged one-step reward, or the largest logged
one-step cost, and the episode ends there.

The backups follow the network FQE's conventions: the target's greedy action (or its probabilities, for a
stochastic policy) at the next observation, a truncation ends the value like a terminal (observations carry no
time), and the start value uses the softened target probabilities the other estimators use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from guardrl.data import Dataset
from guardrl.data.audit import StateIndex


@dataclass(frozen=True)
class TabularFQE:
    """Fitted values of one signal: the point fit and one refit per bootstrap resample of episodes."""

    q: NDArray[np.float64]
    """(S, A) action values of the full-data fit."""
    starts: NDArray[np.float64]
    """(episodes,) value of each logged start under the full-data fit."""
    boots: NDArray[np.float64]
    """(B,) the estimate (mean start value) of each bootstrap refit."""
    unlogged_pairs: int
    """(state, action) pairs the target can reach in the logs but that the logs never contain."""


def fit_tabular_fqe(
    ds: Dataset,
    index: StateIndex,
    signal: NDArray[np.float64],
    fill: float,
    next_probs: NDArray[np.float64],
    start_probs: NDArray[np.float64],
    gamma: float,
    n_boot: int,
    rng: np.random.Generator,
) -> TabularFQE:
    """Fit tabular FQE of one signal (``ds.rewards`` or ``ds.costs``) for a target policy.

    ``fill``: the value of a state without evidence (see the module docstring); ``next_probs`` (N, A): the
    target's action probabilities at each transition's next observation (the backup); ``start_probs``
    (episodes, A): its probabilities at each episode's first observation.
    """
    n_states, n_actions = index.n_states, ds.n_actions
    n_pairs = n_states * n_actions
    s, s_next = index(ds.observations), index(ds.next_observations)
    if (s < 0).any():
        raise ValueError("tabular FQE: the state index does not cover the logged observations")
    end = ds.terminations | ds.truncations
    # transitions that agree on everything a backup reads are one row of the fit (on a grid: thousands of rows
    # instead of tens of thousands of transitions)
    _, signal_id = np.unique(signal, return_inverse=True)
    _, prob_id = np.unique(next_probs, axis=0, return_inverse=True)
    keys = np.stack(
        [s * n_actions + ds.actions, s_next, end, signal_id.reshape(-1), prob_id.reshape(-1)], axis=1
    ).astype(np.int64)
    _, first, row_of = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    row_of = row_of.reshape(-1)
    pair, done = keys[first, 0], end[first]
    x = np.asarray(signal, dtype=np.float64)[first]
    # rows share next-state values: one per (next state, next-action probabilities)
    _, value_first, value_of_row = np.unique(keys[first][:, [1, 4]], axis=0, return_index=True, return_inverse=True)
    value_of_row = value_of_row.reshape(-1)
    nxt, pi_next = s_next[first][value_first], next_probs[first][value_first]
    # weight of every row in every fit: each episode's count in the resample times the row's count in it
    n_eps = ds.n_episodes
    episode = np.searchsorted(ds.episode_starts, np.arange(len(ds)), side="right") - 1
    per_episode = np.zeros((n_eps, len(first)))
    np.add.at(per_episode, (episode, row_of), 1.0)
    mult = np.zeros((n_boot + 1, n_eps))
    mult[0] = 1.0  # fit 0: the full data
    np.add.at(mult, (np.arange(1, n_boot + 1)[:, None], rng.integers(0, n_eps, size=(n_boot, n_eps))), 1.0)
    weight = mult @ per_episode  # (fits, rows)
    order = np.argsort(pair, kind="stable")
    bounds = np.flatnonzero(np.r_[True, np.diff(pair[order]) != 0])
    present = pair[order][bounds]
    total = np.add.reduceat(weight[:, order], bounds, axis=1)  # (fits, present pairs)
    known = total > 0
    counts = np.zeros((n_boot + 1, n_pairs))
    counts[:, present] = total
    state_counts = counts.reshape(n_boot + 1, n_states, n_actions).sum(axis=-1)

    def complete(q_known: NDArray[np.float64]) -> NDArray[np.float64]:
        """All pairs' values from the logged ones: an action never logged in a logged state is worth what the
        logged actions there are worth on average (weighted by their counts); a state without any, ``fill``."""
        full = np.zeros((n_boot + 1, n_pairs))
        full[:, present] = np.where(known, q_known, 0.0)
        weighted = (full * counts).reshape(n_boot + 1, n_states, n_actions).sum(axis=-1)
        v_state = np.where(state_counts > 0, weighted / np.maximum(state_counts, 1e-12), fill)
        return np.where(counts > 0, full, np.repeat(v_state, n_actions, axis=1))

    q = complete(np.zeros_like(total))
    safe_next = np.maximum(nxt, 0)
    horizon = int(np.diff(np.append(ds.episode_starts, len(ds))).max())
    for _ in range(horizon):
        v_next = np.einsum("bva,va->bv", q.reshape(n_boot + 1, n_states, n_actions)[:, safe_next, :], pi_next)
        v_next = np.where(nxt[None] < 0, fill, v_next)  # a next observation never logged as a state
        target = x[None] + gamma * np.where(done[None], 0.0, v_next[:, value_of_row])
        sums = np.add.reduceat((weight * target)[:, order], bounds, axis=1)
        q = complete(sums / np.where(known, total, 1.0))  # complete() ignores pairs a fit lacks
    q3 = q.reshape(n_boot + 1, n_states, n_actions)
    start_values = (q3[:, s[ds.episode_starts], :] * start_probs[None]).sum(axis=-1)  # (fits, episodes)
    boots = (mult[1:] * start_values[1:]).sum(axis=1) / n_eps
    # pairs the target would take at logged next states that the logs never contain
    reachable = (next_probs > 0) & ((s_next >= 0) & ~end)[:, None]
    candidates = (np.maximum(s_next, 0)[:, None] * n_actions + np.arange(n_actions)[None])[reachable]
    logged = np.zeros(n_pairs, dtype=bool)
    logged[present[known[0]]] = True
    unlogged = int((~logged[np.unique(candidates)]).sum())
    return TabularFQE(q=q3[0], starts=start_values[0], boots=boots, unlogged_pairs=unlogged)
