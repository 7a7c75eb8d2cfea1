"""Tabular learners: Π_b-SPIBB on the logs' maximum-likelihood model, and MOPO- / MOReL-style planning in the
run's world model, each optionally under a hazard budget (a Lagrange multiplier on the cost).

All three plan by dynamic programming over a finite table of states: the distinct logged observations, or the
audit's quantile bins (:class:`~guardrl.data.audit.StateIndex`). The MDP is held sparsely, ``K`` successor slots
per (state, action), as plain arrays, and every backup is one vectorized expression.

Pessimism, in one place: a step whose successor lies outside the table (an observation the logs never hold) is
an absorbing halt that pays ``unknown_reward`` (the worst logged reward unless a learner says otherwise) and
counts as a hazard; a cost the ensemble is unsure of is taken at its largest member value.

The result is a :class:`TabularPolicy`: a state index and a score table (Q-values, or SPIBB's log-probabilities),
exported as TorchScript and ONNX like the d3rlpy learners, so evaluation, OPE, the gate and the server need not
know how it was trained.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from rich.progress import Progress

from guardrl.data import Dataset
from guardrl.data.audit import AuditConfig, StateIndex, Support
from guardrl.errors import GuardrlError
from guardrl.train.config import MOPOConfig, MOReLConfig, PlannerConfig, SPIBBConfig

NEG = -1e9
"""Score of an action a policy never takes (log 0), kept finite for export."""


class TabularError(GuardrlError, ValueError):
    """The logs do not fit a tabular learner (too many states, continuous next observations, ...)."""


# ---------------------------------------------------------------- the tabular MDP


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
    s = index(ds.observations)
    s_next = index(ds.next_observations)
    term = ds.terminations.astype(np.float64)
    pair = s * A + ds.actions
    # successor code: the next state id, or S for "ended, or outside the table"; one slot per (pair, code)
    code = np.where((term > 0) | (s_next < 0), S, s_next)
    keys, inverse, hits = np.unique(pair * (S + 1) + code, return_inverse=True, return_counts=True)
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
    s = index(ds.observations)
    sums = np.zeros((S, A))
    np.add.at(sums, (s, ds.actions), props)
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


# ---------------------------------------------------------------- the policy


@dataclass
class TabularPolicy:
    """A score table over a state index: observations -> state -> scores (S, A) -> greedy action.

    An observation outside the table (exact index) takes the nearest logged state's row."""

    index: StateIndex
    scores: NDArray[np.float64]
    kind: str
    """``q`` (planned Q-values) or ``logprob`` (log of SPIBB's policy probabilities)."""
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # float32, as exported: the greedy action here and in the TorchScript/ONNX files break ties alike
        self.scores = np.asarray(self.scores, dtype=np.float32)

    @property
    def observation_shape(self) -> tuple[int, ...]:
        if self.index.exact is not None:
            return (int(self.index.exact.shape[1]),)
        assert self.index.edges is not None
        return (len(self.index.edges),)

    def state_ids(self, obs: NDArray[np.floating]) -> NDArray[np.int64]:
        obs = np.asarray(obs, dtype=np.float32)
        ids = self.index(obs)
        missing = np.flatnonzero(ids < 0)
        if missing.size:
            rows = self.index.exact
            assert rows is not None
            for chunk in np.array_split(missing, max(1, missing.size // 4096)):
                d2 = ((obs[chunk, None, :] - rows[None]) ** 2).sum(axis=2)
                ids[chunk] = d2.argmin(axis=1)
        return ids

    def predict(self, obs: NDArray[np.floating]) -> NDArray[np.int64]:
        """Greedy actions (ties: the lowest action id)."""
        return self.scores[self.state_ids(obs)].argmax(axis=1).astype(np.int64)

    def module(self, greedy: bool) -> torch.nn.Module:
        """The policy as a torch module (for TorchScript / ONNX): greedy actions, or the action scores."""
        return _TableModule(self.index, self.scores, greedy)


class _TableModule(torch.nn.Module):
    """observations -> state id (nearest logged row, or the bins' mixed-radix number) -> score row."""

    def __init__(self, index: StateIndex, scores: NDArray[np.float64], greedy: bool):
        super().__init__()
        self.greedy = greedy
        self.exact = index.exact is not None
        self.table: torch.Tensor
        self.register_buffer("table", torch.as_tensor(scores, dtype=torch.float32))
        if index.exact is not None:
            rows = torch.as_tensor(index.exact, dtype=torch.float32)
            self.rows: torch.Tensor
            self.row_norms: torch.Tensor
            self.register_buffer("rows", rows)
            self.register_buffer("row_norms", (rows**2).sum(dim=1))
        else:
            assert index.edges is not None
            width = max(1, max(len(e) for e in index.edges))
            edges = np.full((len(index.edges), width), np.inf, dtype=np.float32)
            for j, e in enumerate(index.edges):
                edges[j, : len(e)] = e
            radix = [len(e) + 1 for e in index.edges]
            strides = [int(np.prod(radix[j + 1 :])) for j in range(len(radix))]
            self.edges: torch.Tensor
            self.strides: torch.Tensor
            self.register_buffer("edges", torch.as_tensor(edges))
            self.register_buffer("strides", torch.as_tensor(strides, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.exact:
            # squared distances without an (N, S, d) tensor: |x|^2 - 2 x.r + |r|^2 (|x|^2 is constant per row)
            ids = (self.row_norms[None, :] - 2.0 * x @ self.rows.T).argmin(dim=1)
        else:
            bins = (x[:, :, None] >= self.edges[None]).sum(dim=2).to(x.dtype)
            ids = (bins * self.strides[None]).sum(dim=1).long()
        out = self.table[ids]
        return out.argmax(dim=1) if self.greedy else out


# ---------------------------------------------------------------- training


def _reward_bounds(ds: Dataset) -> tuple[float, float]:
    return float(ds.rewards.min()), float(ds.rewards.max())


def _horizon(cfg: PlannerConfig, ds: Dataset) -> int:
    if cfg.horizon is not None:
        return cfg.horizon
    lengths = np.diff(np.append(ds.episode_starts, len(ds)))
    return int(lengths.max())


def _check_size(name: str, n_states: int, cfg: PlannerConfig) -> None:
    if n_states > cfg.max_states:
        raise TabularError(
            f"{name}: {n_states} states to plan over, more than {name}.max_states={cfg.max_states}; raise it, or "
            "use a network learner (cql, bc) for these observations"
        )


def train_spibb(
    ds: Dataset, cfg: SPIBBConfig, audit_cfg: AuditConfig, budget: float | None, name: str = "spibb"
) -> TabularPolicy:
    """Π_b-SPIBB on the logs' maximum-likelihood model over the audit's states."""
    index = StateIndex.fit(ds.observations, audit_cfg)
    _check_size(name, index.n_states, cfg)
    r_min, _ = _reward_bounds(ds)
    mdp, counts = mle_mdp(ds, index, unknown_reward=r_min)
    behaviour = behaviour_policy(ds, index, counts)
    bootstrapped = counts < cfg.n_wedge
    horizon = _horizon(cfg, ds)
    rounds: list[int] = []

    def plan(reward: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        pi, _, n = spibb(mdp, reward, behaviour, bootstrapped, horizon, cfg.gamma, cfg.max_iterations)
        rounds.append(n)
        scores = np.log(np.maximum(pi, 1e-300)).clip(NEG)
        # the budget and the model's return are those of the policy deployed: SPIBB's most likely action
        return scores, greedy(scores)

    res = plan_with_budget(mdp, mdp.reward, plan, horizon, budget if cfg.hazard_budget else None)
    info = _info(res, horizon, mdp) | {
        "policy_iteration_rounds": rounds[-1],
        "bootstrapped_share": float((bootstrapped & (behaviour > 0)).sum() / max((behaviour > 0).sum(), 1)),
        "stochastic_states": int(((res.policy > 0).sum(axis=1) > 1).sum()),
    }
    return TabularPolicy(index, res.scores, "logprob", info)


def train_model_planner(
    ds: Dataset,
    cfg: MOPOConfig | MOReLConfig,
    audit_cfg: AuditConfig,
    world_model: Any,
    budget: float | None,
    name: str,
) -> TabularPolicy:
    """MOPO- or MOReL-style planning in ``world_model`` over the logged observations (see their configs)."""
    rows = np.unique(np.concatenate([ds.observations, ds.next_observations]).astype(np.float32), axis=0)
    _check_size(name, len(rows), cfg)
    r_min, r_max = _reward_bounds(ds)
    span = max(r_max - r_min, 1e-9)
    index = StateIndex(exact=rows, edges=None)
    mdp, disagreement = world_model_mdp(world_model, index, ds.observations[ds.episode_starts], r_min)
    horizon = _horizon(cfg, ds)
    info: dict[str, Any] = {}
    if isinstance(cfg, MOPOConfig):
        reward = mdp.reward - cfg.penalty * span * disagreement[:, :, None]
        info["mean_penalty"] = float(cfg.penalty * span * disagreement.mean())
    else:
        k = cfg.min_count if cfg.min_count is not None else audit_cfg.k
        counts = (
            Support.from_dataset(ds, audit_cfg)
            .action_counts(np.repeat(rows, mdp.n_actions, axis=0), np.tile(np.arange(mdp.n_actions), len(rows)))
            .reshape(len(rows), mdp.n_actions)
        )
        unknown = (counts < k) | (disagreement > cfg.max_disagreement)
        kappa = cfg.halt_penalty if cfg.halt_penalty is not None else span
        halt = unknown[:, :, None]
        first = np.zeros_like(mdp.prob, dtype=bool)
        first[:, :, 0] = True
        mdp = replace(
            mdp,
            next_state=np.where(halt, -1, mdp.next_state),
            prob=np.where(halt, first.astype(np.float64), mdp.prob),
            cost=np.where(halt, 1.0, mdp.cost),
            termination=np.where(halt, 1.0, mdp.termination),
            reward=np.where(halt, -kappa, mdp.reward),
        )
        reward = mdp.reward
        info["unknown_pairs"] = int(unknown.sum())
        info["halt_penalty"] = kappa
    gamma = cfg.gamma

    def plan(r: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return value_iteration(mdp, r, horizon, gamma)

    res = plan_with_budget(mdp, reward, plan, horizon, budget if cfg.hazard_budget else None)
    return TabularPolicy(index, res.scores, "q", _info(res, horizon, mdp) | info)


def _info(res: BudgetResult, horizon: int, mdp: TabularMDP) -> dict[str, Any]:
    return {
        "n_states": mdp.n_states,
        "successor_slots": int(mdp.prob.shape[2]),
        "horizon": horizon,
        "lagrange_multiplier": res.multiplier,
        "model_return": res.expected_return,
        "model_hazard": res.expected_hazard,
        "budget_met": res.feasible,
        "plans": res.plans,
    }


def train_tabular(
    name: str,
    cfg: PlannerConfig,
    ds: Dataset,
    audit_cfg: AuditConfig,
    world_model: Any = None,
    budget: float | None = None,
    progress: Progress | None = None,
) -> tuple[TabularPolicy, float]:
    """Train tabular learner ``name``; returns the policy and the seconds it took."""
    task = progress.add_task(f"plan {name}", total=1) if progress is not None else None
    start = time.perf_counter()
    if isinstance(cfg, SPIBBConfig):
        policy = train_spibb(ds, cfg, audit_cfg, budget, name)
    elif isinstance(cfg, MOPOConfig | MOReLConfig):
        if world_model is None:
            raise TabularError(f"{name} plans in the run's world model, and there is none (run `guardrl model`)")
        policy = train_model_planner(ds, cfg, audit_cfg, world_model, budget, name)
    else:
        raise TabularError(f"{name}: {type(cfg).__name__} is not a tabular learner config")
    if progress is not None and task is not None:
        progress.advance(task)
    return policy, time.perf_counter() - start
