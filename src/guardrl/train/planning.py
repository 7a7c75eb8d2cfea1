"""The tabular MDP the planners work on, and dynamic programming over it: value iteration, Π_b-SPIBB's policy
improvement, planning under a hazard budget, and the MDPs built from the logs (maximum likelihood) and from the
run's world model.

The MDP is held sparsely, ``K`` successor slots per (state, action), as plain arrays, and every backup is one
vectorized expression. A step whose successor lies outside the table (an observation the logs never hold) is an
absorbing halt that pays ``unknown_reward`` and counts as a hazard.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from guardrl._arrays import unique_1d
from guardrl.data import Dataset
from guardrl.data.audit import StateIndex
from guardrl.errors import GuardrlError

NEG = -1e9
"""Score of an action a policy never takes (log 0), kept finite for export."""


class TabularError(GuardrlError, ValueError):
    """The logs do not fit a tabular learner (too many states, continuous next observations, ...)."""


@dataclass(frozen=True)
class TabularMDP:
    """A finite MDP with ``K`` successor slots per (state, action), all arrays of shape (S, A, K) but ``start``.

    A slot's ``next_state`` is ``-1`` when the step ends there (termination 1); probabilities of a pair's slots
    sum to 1."""

    next_state: NDArray[np.int64]
    prob: NDArray[np.float64]
    reward: NDArray[np.float64]
    cost: NDArray[np.float64]
    termination: NDArray[np.float64]
    start: NDArray[np.float64]
    """(S,) distribution of the first state of an episode."""

    @property
    def n_states(self) -> int:
        return int(self.prob.shape[0])

    @property
    def n_actions(self) -> int:
        return int(self.prob.shape[1])

    def q_values(self, values: NDArray[np.float64], reward: NDArray[np.float64], gamma: float) -> NDArray[np.float64]:
        """One backup: Q(s, a) = sum over slots of p (reward + gamma (1 - termination) V(next)), shape (S, A)."""
        nxt = values[np.maximum(self.next_state, 0)] * (self.next_state >= 0)
        return (self.prob * (reward + gamma * (1.0 - self.termination) * nxt)).sum(axis=2)

    def evaluate(
        self, policy: NDArray[np.float64], reward: NDArray[np.float64], horizon: int, gamma: float = 1.0
    ) -> NDArray[np.float64]:
        """Expected sum of ``reward`` over ``horizon`` steps from each state under ``policy`` (S, A)."""
        values = np.zeros(self.n_states)
        for _ in range(horizon):
            values = (policy * self.q_values(values, reward, gamma)).sum(axis=1)
        return values

    def expected(self, policy: NDArray[np.float64], signal: NDArray[np.float64], horizon: int) -> float:
        """Expected undiscounted sum of ``signal`` per episode from the start distribution (e.g. hazards)."""
        return float(self.start @ self.evaluate(policy, signal, horizon))


def greedy(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    """The deterministic policy (S, A) taking each row's best score (ties: the lowest action id)."""
    out = np.zeros_like(scores, dtype=np.float64)
    out[np.arange(scores.shape[0]), scores.argmax(axis=1)] = 1.0
    return out


def value_iteration(
    mdp: TabularMDP, reward: NDArray[np.float64], horizon: int, gamma: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``horizon`` optimal backups from zero values: the Q-values (S, A) and their greedy policy."""
    values = np.zeros(mdp.n_states)
    q = np.zeros((mdp.n_states, mdp.n_actions))
    for _ in range(horizon):
        q = mdp.q_values(values, reward, gamma)
        values = q.max(axis=1)
    return q, greedy(q)


def spibb_improve(
    q: NDArray[np.float64], behaviour: NDArray[np.float64], bootstrapped: NDArray[np.bool_]
) -> NDArray[np.float64]:
    """Π_b-SPIBB's policy improvement step: bootstrapped pairs keep the behaviour's probability; the mass of
    the others goes to the best of them by ``q`` (a state with none keeps the behaviour policy)."""
    pi = np.where(bootstrapped, behaviour, 0.0)
    free = ~bootstrapped
    has_free = free.any(axis=1)
    best = np.where(free, q, -np.inf).argmax(axis=1)
    rows = np.flatnonzero(has_free)
    pi[rows, best[rows]] += 1.0 - pi[rows].sum(axis=1)
    return pi


def spibb(
    mdp: TabularMDP,
    reward: NDArray[np.float64],
    behaviour: NDArray[np.float64],
    bootstrapped: NDArray[np.bool_],
    horizon: int,
    gamma: float,
    max_iterations: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
    """Π_b-SPIBB policy iteration from the behaviour policy: (policy, its Q-values, rounds run)."""
    pi = behaviour.copy()
    q = np.zeros_like(behaviour)
    rounds = 0
    while rounds < max_iterations:
        rounds += 1
        values = mdp.evaluate(pi, reward, horizon, gamma)
        q = mdp.q_values(values, reward, gamma)
        new = spibb_improve(q, behaviour, bootstrapped)
        if np.allclose(new, pi, atol=1e-12):
            break
        pi = new
    return pi, q, rounds


@dataclass(frozen=True)
class BudgetResult:
    """A plan under a hazard budget."""

    scores: NDArray[np.float64]
    policy: NDArray[np.float64]
    multiplier: float
    """The Lagrange multiplier on the cost (0 when the unconstrained plan already meets the budget)."""
    expected_return: float
    expected_hazard: float
    """Expected hazard events per episode under the planning model (unknown steps count as hazards)."""
    feasible: bool
    plans: int
    """Plans computed (the bisection's cost)."""


def plan_with_budget(
    mdp: TabularMDP,
    reward: NDArray[np.float64],
    plan: Callable[[NDArray[np.float64]], tuple[NDArray[np.float64], NDArray[np.float64]]],
    horizon: int,
    budget: float | None,
    bisections: int = 30,
) -> BudgetResult:
    """Maximize return subject to expected hazard per episode <= ``budget`` (Lagrangian relaxation).

    ``plan(reward)`` returns (scores, policy) for a reward table. With multiplier μ the plan sees
    ``reward - μ · cost``; the smallest μ whose plan meets the budget is found by doubling then bisection, as
    Le, Voloshin & Yue (2019) search the multiplier of batch-constrained learning. When even a very large μ
    cannot meet the budget, the safest plan found is returned with ``feasible=False``."""
    scale = max(float(np.abs(reward).max()), 1.0)
    plans = 0

    def solve(mu: float) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
        nonlocal plans
        plans += 1
        scores, policy = plan(reward - mu * mdp.cost)
        return scores, policy, mdp.expected(policy, mdp.cost, horizon)

    def result(mu: float, scores: Any, policy: Any, hazard: float, feasible: bool) -> BudgetResult:
        ret = mdp.expected(policy, reward, horizon)
        return BudgetResult(scores, policy, mu, ret, hazard, feasible, plans)

    scores, policy, hazard = solve(0.0)
    if budget is None or hazard <= budget:
        return result(0.0, scores, policy, hazard, True)
    low, high = 0.0, scale
    best = solve(high)
    while best[2] > budget and high < scale * 1e6:
        low, high = high, high * 10.0
        best = solve(high)
    if best[2] > budget:
        return result(high, *best, False)
    for _ in range(bisections):
        mid = 0.5 * (low + high)
        trial = solve(mid)
        if trial[2] <= budget:
            high, best = mid, trial
        else:
            low = mid
        if high - low <= 1e-6 * scale:
            break
    return result(high, *best, True)


# ---------------------------------------------------------------- models from logs


def mle_mdp(ds: Dataset, index: StateIndex, unknown_reward: float) -> tuple[TabularMDP, NDArray[np.int64]]:
    """The maximum-likelihood MDP of the logs over ``index``'s states, and the (S, A) logged counts.

    A pair never logged halts with ``unknown_reward`` and a hazard; so does a logged step that neither ended
    nor led to an indexed state (a truncation into an observation never logged as a state)."""
    S, A = index.n_states, ds.n_actions
    s = ds.over_observations(index)
    s_next = ds.over_observations(index, next_obs=True)
    term = ds.terminations.astype(np.float64)
    pair = s * A + ds.actions
    # successor code: the next state id, or S for "ended, or outside the table"; one slot per (pair, code)
    code = np.where((term > 0) | (s_next < 0), S, s_next)
    keys, inverse, hits = unique_1d(pair * (S + 1) + code, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    key_pair, key_code = keys // (S + 1), keys % (S + 1)
    slot = np.arange(len(keys)) - np.searchsorted(key_pair, key_pair, side="left")
    K = int(slot.max()) + 1
    counts = np.bincount(pair, minlength=S * A).astype(np.float64)

    def mean_of(values: NDArray[np.floating]) -> NDArray[np.float64]:
        return np.bincount(inverse, weights=values.astype(np.float64), minlength=len(keys)) / hits

    shape = (S * A, K)
    next_state = np.full(shape, -1, dtype=np.int64)
    prob, reward, cost, termination = (np.zeros(shape) for _ in range(4))
    key_term = mean_of(term)
    outside = (key_code == S) & (key_term < 1.0)  # neither ended nor led to a known state
    next_state[key_pair, slot] = np.where(key_code == S, -1, key_code)
    prob[key_pair, slot] = hits / counts[key_pair]
    reward[key_pair, slot] = np.where(outside, unknown_reward, mean_of(ds.rewards))
    cost[key_pair, slot] = np.where(outside, 1.0, mean_of((ds.costs > 0).astype(np.float64)))
    termination[key_pair, slot] = np.where(key_code == S, 1.0, key_term)
    never = counts == 0
    prob[never, 0], reward[never, 0], cost[never, 0], termination[never, 0] = 1.0, unknown_reward, 1.0, 1.0
    start = np.bincount(index(ds.observations[ds.episode_starts]), minlength=S).astype(np.float64)
    mdp = TabularMDP(
        next_state.reshape(S, A, K), prob.reshape(S, A, K), reward.reshape(S, A, K), cost.reshape(S, A, K),
        termination.reshape(S, A, K), start / start.sum(),
    )  # fmt: skip
    return mdp, counts.reshape(S, A).astype(np.int64)


def behaviour_policy(ds: Dataset, index: StateIndex, counts: NDArray[np.int64]) -> NDArray[np.float64]:
    """The behaviour policy per state (S, A): the logged propensities where the logs carry them (the mean
    propensity of each logged pair, the remainder shared by the state's unlogged actions), else the action
    frequencies; uniform in a state never logged."""
    S, A = counts.shape
    totals = counts.sum(axis=1, keepdims=True)
    freq = np.where(totals > 0, counts / np.maximum(totals, 1), 1.0 / A)
    props = ds.propensities
    if props is None or not np.all(np.isfinite(props)):
        return freq
    s = ds.over_observations(index)
    sums = np.bincount(s * A + ds.actions, weights=props, minlength=S * A).reshape(S, A)
    logged = counts > 0
    pi = np.where(logged, sums / np.maximum(counts, 1), 0.0)
    pi = np.minimum(pi, 1.0)
    # a state's rows are scaled so logged actions never claim more than 1 in total
    total = pi.sum(axis=1, keepdims=True)
    pi = np.where(total > 1.0, pi / np.maximum(total, 1e-12), pi)
    rest = 1.0 - pi.sum(axis=1, keepdims=True)
    n_unlogged = (~logged).sum(axis=1, keepdims=True)
    pi = np.where(~logged & (n_unlogged > 0), rest / np.maximum(n_unlogged, 1), pi)
    # a state whose logged propensities sum below 1 with every action logged: renormalize
    pi = pi / pi.sum(axis=1, keepdims=True)
    return np.where(totals > 0, pi, freq)


def world_model_mdp(
    model: Any, index: StateIndex, start_rows: NDArray[np.float32], unknown_reward: float
) -> tuple[TabularMDP, NDArray[np.float64]]:
    """The world model's MDP over the observation rows of an exact ``index`` (the states): ensemble-mean
    transitions and rewards, each cost at its largest member value; a predicted successor outside the rows
    halts with ``unknown_reward`` and a hazard. Also returns the members' disagreement per pair (S, A)."""
    from guardrl.train.world_model import one_thread

    if model.kind == "gaussian":
        raise TabularError(
            "the world model predicts continuous next observations (Gaussian); mopo and morel plan over discrete "
            "observations only"
        )
    rows = index.exact
    assert rows is not None
    S, A, d = len(rows), model.n_actions, rows.shape[1]
    classes = np.asarray(model.meta["classes"], dtype=np.float32)
    K = len(classes)
    low, high = np.asarray(model.meta["obs_low"], np.float32), np.asarray(model.meta["obs_high"], np.float32)
    shape = (S, A, K)
    next_state = np.full(shape, -1, dtype=np.int64)
    prob, reward, cost, termination = (np.zeros(shape) for _ in range(4))
    disagreement = np.zeros((S, A))
    obs_rep = np.repeat(rows, K, axis=0)
    with one_thread():
        for a in range(A):
            acts = np.full(S, a, dtype=np.int64)
            probs = model.predict(rows, acts)["probs"]  # (M, S, K)
            disagreement[:, a] = model.disagreement(rows, acts)
            nxt = (
                rows[:, None, :] + classes[None] if model.kind == "delta" else np.broadcast_to(classes[None], (S, K, d))
            )
            nxt = np.clip(nxt, low, high).astype(np.float32).reshape(S * K, -1)
            out = model.predict_outcome(obs_rep, np.full(S * K, a, dtype=np.int64), nxt)
            ids = index(nxt).reshape(S, K)
            known = ids >= 0
            prob[:, a] = probs.mean(axis=0)
            next_state[:, a] = ids
            reward[:, a] = np.where(known, out["reward"].mean(axis=0).reshape(S, K), unknown_reward)
            cost[:, a] = np.where(known, out["cost"].max(axis=0).reshape(S, K), 1.0)
            termination[:, a] = np.where(known, out["termination"].mean(axis=0).reshape(S, K), 1.0)
    next_state = np.where(termination >= 1.0, -1, next_state)
    start = np.bincount(index(start_rows), minlength=S).astype(np.float64)
    if start.sum() == 0:
        raise TabularError("no logged episode starts in a known state")
    return TabularMDP(next_state, prob, reward, cost, termination, start / start.sum()), disagreement
