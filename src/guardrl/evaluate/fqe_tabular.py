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

Pairs the logs never contain (or a resample happens to drop) have no evidence of their own. When the run has a
world model that lists outcomes (:class:`ModelFill`), such a pair is backed up through the model instead: its
predicted next states, reward or cost and termination, then FQE's own values of those states. Each refit uses
one ensemble member in turn (the full-data fit their average), so the model's disagreement widens the
interval. Without one, an action never logged in a logged state is valued as what the logged actions there
are worth on average (weighted by how often each was logged). That average is what a random policy is
misjudged by: on the OPE suite it put uniform random's hazard on the tutorial's world at 40% against a true
57.8%, since the logged actions it replaces are the controller's safe ones. Either way FQE is an estimator,
not a bound; pessimism about unlogged actions is the world model's ``model_pessimistic``, which the gate also
reads. (Valuing them as a hazard instead made FQE the least accurate estimator of the OPE suite's development
settings: with one pessimistic pair reachable by a slip, MOReL's return came out 11.0 against a true 21.7,
and the exact optimum's upper hazard bound 77-99%.) A next observation never logged as a state gets ``fill``:
the worst logged one-step reward, or the largest logged one-step cost, and the episode ends there.

The backups take the target's greedy action (or its probabilities, for a stochastic policy) at the next
observation, and so does the start value: FQE estimates the policy itself, not the softened one importance
sampling needs (whose first step, on CliffWalking's cliff edge, put the optimum's falls at 1.25% per episode
against a true 0). Unlike the network FQE, a truncated transition is backed up through its next
observation: ``horizon`` backups from zero give the value of an episode of that many steps, so nothing grows
without bound, and ending the value there made FQE miss the later hazards of a policy that wanders (uniform
random on logs that hold random episodes cut at the time limit: 31% against a true 40%).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from guardrl._arrays import unique_1d, unique_rows
from guardrl.data import Dataset
from guardrl.data.audit import StateIndex
from guardrl.evaluate.metrics import Units


@dataclass(frozen=True)
class ModelFill:
    """The world model's one-step outcomes of every (state, action) pair of the index, for one signal.

    Entry ``e`` is an outcome of pair ``pair[e]`` (``state * n_actions + action``) leading to ``next_state[e]``
    (``-1``: never logged as a state); per member (first axis): its probability, the signal's expectation
    (reward, or cost probability) and the probability that the episode goes on (1 - termination)."""

    pair: NDArray[np.int64]
    next_state: NDArray[np.int64]
    prob: NDArray[np.float64]
    signal: NDArray[np.float64]
    cont: NDArray[np.float64]

    @property
    def n_members(self) -> int:
        return int(self.prob.shape[0])


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
    model_filled: bool
    """Whether unlogged pairs were backed up through the world model (else the logged actions' average)."""


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
    model: ModelFill | None = None,
    state_probs: NDArray[np.float64] | None = None,
    horizon: int | None = None,
    units: Units | None = None,
) -> TabularFQE:
    """Fit tabular FQE of one signal (``ds.rewards`` or ``ds.costs``) for a target policy.

    ``fill``: the value of a state without evidence (see the module docstring); ``next_probs`` (N, A): the
    target's action probabilities at each transition's next observation (the backup); ``start_probs``
    (episodes, A): its probabilities at each episode's first observation. ``model``: the world model's outcomes
    for unlogged pairs, with ``state_probs`` (S, A) the target's probabilities at every indexed state.
    ``horizon``: the number of backups (the episode step limit); unset, the longest logged episode. ``units``:
    what the refits resample (:class:`~guardrl.evaluate.metrics.Units`; default every episode).
    """
    if (model is None) != (state_probs is None):
        raise ValueError("tabular FQE: a model fill needs the target's probabilities at every state")
    n_states, n_actions = index.n_states, ds.n_actions
    n_pairs = n_states * n_actions
    s, s_next = ds.over_observations(index), ds.over_observations(index, next_obs=True)
    if (s < 0).any():
        raise ValueError("tabular FQE: the state index does not cover the logged observations")
    # a truncation is where the log stopped, not where the episode ended: its next observation is backed up like
    # any other (the horizon's backups bound the value), unless it was never logged as a state
    end = ds.terminations | (ds.truncations & (s_next < 0))
    # transitions that agree on everything a backup reads are one row of the fit (on a grid: thousands of rows
    # instead of tens of thousands of transitions)
    _, signal_id = unique_1d(signal, return_inverse=True)
    # with exact states, a next state's observation is that state's row, so the target's probabilities there are
    # the state's own: only binned states need them in the key (a next observation never logged is worth ``fill``)
    if index.exact is not None:
        prob_id = np.zeros(len(ds), dtype=np.int64)
    else:
        prob_id = unique_rows(next_probs, return_inverse=True)[1]
    columns = [s * n_actions + ds.actions, s_next, end.astype(np.int64), signal_id.reshape(-1), prob_id.reshape(-1)]
    first, row_of = _distinct([c + 1 if j == 1 else c for j, c in enumerate(columns)])  # next state -1 codes as 0
    keys = np.stack([c[first] for c in columns], axis=1).astype(np.int64)  # one row per distinct transition
    pair, done = keys[:, 0], end[first]
    x = np.asarray(signal, dtype=np.float64)[first]
    # rows share next-state values: one per (next state, next-action probabilities)
    _, value_first, value_of_row = np.unique(keys[:, [1, 4]], axis=0, return_index=True, return_inverse=True)
    value_of_row = value_of_row.reshape(-1)
    nxt, pi_next = s_next[first][value_first], next_probs[first][value_first]
    # weight of every row in every fit: each unit's count in the resample times the row's count in it (sparse:
    # a unit holds few of the rows)
    n_eps = ds.n_episodes
    units = Units(n_eps) if units is None else units
    lengths = np.diff(np.append(ds.episode_starts, len(ds)))
    unit_of_episode = np.arange(n_eps) if units.of_episode is None else units.of_episode
    unit = np.repeat(unit_of_episode, lengths)
    per_unit = sparse.csr_matrix((np.ones(len(ds)), (unit, row_of)), shape=(units.n, len(first)))
    mult = np.ones((n_boot + 1, units.n))  # fit 0: the full data
    mult[1:] = np.concatenate(list(units.counts(rng, n_boot)))
    weight = np.asarray((per_unit.T @ mult.T).T)  # (fits, rows)
    order = np.argsort(pair, kind="stable")
    bounds = np.flatnonzero(np.r_[True, np.diff(pair[order]) != 0])
    present = pair[order][bounds]
    total = np.add.reduceat(weight[:, order], bounds, axis=1)  # (fits, present pairs)
    known = total > 0
    counts = np.zeros((n_boot + 1, n_pairs))
    counts[:, present] = total
    state_counts = counts.reshape(n_boot + 1, n_states, n_actions).sum(axis=-1)

    filler = None if model is None else _Filler(model, counts, fill, gamma)

    def complete(q_known: NDArray[np.float64], q_prev: NDArray[np.float64]) -> NDArray[np.float64]:
        """All pairs' values from the logged ones. A pair a fit lacks is backed up through the world model from
        the previous iteration's values; without a model, an action never logged in a logged state is worth
        what the logged actions there are worth on average (weighted by their counts), a state without any
        ``fill``."""
        full = np.zeros((n_boot + 1, n_pairs))
        full[:, present] = np.where(known, q_known, 0.0)
        if filler is not None:
            assert state_probs is not None
            v_prev = np.einsum("bsa,sa->bs", q_prev.reshape(n_boot + 1, n_states, n_actions), state_probs)
            return filler(full, v_prev)
        weighted = (full * counts).reshape(n_boot + 1, n_states, n_actions).sum(axis=-1)
        v_state = np.where(state_counts > 0, weighted / np.maximum(state_counts, 1e-12), fill)
        return np.where(counts > 0, full, np.repeat(v_state, n_actions, axis=1))

    q = complete(np.zeros_like(total), np.zeros((n_boot + 1, n_pairs)))
    safe_next = np.maximum(nxt, 0)
    if horizon is None:
        horizon = int(np.diff(np.append(ds.episode_starts, len(ds))).max())
    for _ in range(horizon):
        v_next = np.einsum("bva,va->bv", q.reshape(n_boot + 1, n_states, n_actions)[:, safe_next, :], pi_next)
        v_next = np.where(nxt[None] < 0, fill, v_next)  # a next observation never logged as a state
        target = x[None] + gamma * np.where(done[None], 0.0, v_next[:, value_of_row])
        sums = np.add.reduceat((weight * target)[:, order], bounds, axis=1)
        q = complete(sums / np.where(known, total, 1.0), q)  # complete() ignores pairs a fit lacks
    q3 = q.reshape(n_boot + 1, n_states, n_actions)
    # episodes that start alike (state and first-action probabilities) share their start value in every fit
    s0 = s[ds.episode_starts]
    _, kind_first, kind = unique_rows(
        np.concatenate([s0[:, None].astype(np.float64), start_probs], axis=1), return_index=True, return_inverse=True
    )
    kind = kind.reshape(-1)
    start_values = (q3[:, s0[kind_first], :] * start_probs[kind_first][None]).sum(axis=-1)  # (fits, kinds)
    per_kind = sparse.csr_matrix((np.ones(n_eps), (unit_of_episode, kind)), shape=(units.n, len(kind_first)))
    drawn = np.asarray((per_kind.T @ mult[1:].T).T)  # (refits, kinds): episodes of each kind in the resample
    boots = (drawn * start_values[1:]).sum(axis=1) / drawn.sum(axis=1)
    # pairs the target would take at logged next states that the logs never contain
    reachable = (next_probs > 0) & ((s_next >= 0) & ~end)[:, None]
    candidates = (np.maximum(s_next, 0)[:, None] * n_actions + np.arange(n_actions)[None])[reachable]
    logged = np.zeros(n_pairs, dtype=bool)
    logged[present[known[0]]] = True
    unlogged = int((~logged[np.unique(candidates)]).sum())
    return TabularFQE(
        q=q3[0], starts=start_values[0][kind], boots=boots, unlogged_pairs=unlogged, model_filled=filler is not None
    )


def _distinct(columns: list[NDArray[np.int64]]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``np.unique`` of the rows that the non-negative integer ``columns`` form: the first index of each distinct
    row, and each row's id. One mixed-radix int64 code per row when the columns' ranges allow it (it sorts as
    ``np.unique(axis=0)`` sorts the rows, without an (n, columns) array), else row keys."""
    sizes = [int(c.max(initial=0)) + 1 for c in columns]
    if float(np.prod(np.asarray(sizes, dtype=np.float64))) < 2.0**62:
        code = np.zeros(len(columns[0]), dtype=np.int64)
        for c, size in zip(columns, sizes, strict=True):
            code = code * size + c
        _, first, inverse = unique_1d(code, return_index=True, return_inverse=True)
    else:
        _, first, inverse = unique_rows(np.stack(columns, axis=1), return_index=True, return_inverse=True)
    return first, inverse.reshape(-1)


class _Filler:
    """Backs up the pairs each fit lacks through the world model (see :class:`ModelFill`).

    Only pairs that some fit lacks are kept. Fit 0 (the full data) uses the members' average, refit ``b`` member
    ``(b - 1) % M``."""

    def __init__(self, model: ModelFill, counts: NDArray[np.float64], fill: float, gamma: float):
        self.counts = counts
        lacking = (counts == 0).any(axis=0)
        missing = np.setdiff1d(np.flatnonzero(lacking), model.pair)
        if len(missing):
            raise ValueError(f"tabular FQE: the model fill lacks {len(missing)} pair(s), e.g. pair {missing[0]}")
        keep = lacking[model.pair]
        order = np.argsort(model.pair[keep], kind="stable")
        pair = model.pair[keep][order]
        nxt = model.next_state[keep][order]
        prob, signal, cont = (a[:, keep][:, order] for a in (model.prob, model.signal, model.cont))
        # member slots: 0 the average, 1 + m member m
        expected = np.concatenate([(prob * signal).mean(axis=0, keepdims=True), prob * signal])
        goes_on = np.concatenate([(prob * cont).mean(axis=0, keepdims=True), prob * cont])
        unlogged_next = nxt < 0
        # an outcome into a state never logged ends there with ``fill``, as a logged transition's would
        self.const = expected + gamma * np.where(unlogged_next[None], goes_on * fill, 0.0)
        self.weight = gamma * np.where(unlogged_next[None], 0.0, goes_on)
        self.next_state = np.maximum(nxt, 0)
        starts = np.flatnonzero(np.r_[True, np.diff(pair) != 0]) if len(pair) else np.zeros(0, dtype=np.int64)
        self.starts = starts
        self.pairs = pair[starts]
        self.n_members = model.n_members

    def __call__(self, full: NDArray[np.float64], v_prev: NDArray[np.float64]) -> NDArray[np.float64]:
        if len(self.pairs) == 0:
            return full
        n_fits = full.shape[0]
        slot = np.r_[0, 1 + np.arange(n_fits - 1) % self.n_members]
        values = np.zeros((n_fits, len(self.pairs)))
        for j in np.unique(slot):
            fits = np.flatnonzero(slot == j)
            per_entry = self.const[j][None] + self.weight[j][None] * v_prev[fits][:, self.next_state]
            values[fits] = np.add.reduceat(per_entry, self.starts, axis=1)
        lacking = self.counts[:, self.pairs] == 0
        out = full.copy()
        out[:, self.pairs] = np.where(lacking, values, full[:, self.pairs])
        return out
