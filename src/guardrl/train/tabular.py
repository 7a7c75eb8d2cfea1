"""Tabular learners: Π_b-SPIBB on the logs' maximum-likelihood model, and MOPO- / MOReL-style planning in the
run's world model, each optionally under a hazard budget (a Lagrange multiplier on the cost).

All three plan by dynamic programming (:mod:`guardrl.train.planning`) over a finite table of states: the distinct
logged observations, or the audit's quantile bins (:class:`~guardrl.data.audit.StateIndex`).

Pessimism, in one place: a step whose successor lies outside the table (an observation the logs never hold) is
an absorbing halt that pays ``unknown_reward`` (the worst logged reward unless a learner says otherwise) and
counts as a hazard; a cost the ensemble is unsure of is taken at its largest member value.

The result is a :class:`TabularPolicy`: a state index and a score table (Q-values, or SPIBB's log-probabilities),
exported as TorchScript and ONNX like the d3rlpy learners, so evaluation, OPE, the gate and the server need not
know how it was trained.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from rich.progress import Progress

from guardrl.data import Dataset
from guardrl.data.audit import AuditConfig, StateIndex, Support
from guardrl.train.config import MOPOConfig, MOReLConfig, PlannerConfig, SPIBBConfig
from guardrl.train.planning import (
    NEG,
    BudgetResult,
    TabularError,
    TabularMDP,
    behaviour_policy,
    greedy,
    mle_mdp,
    plan_with_budget,
    spibb,
    value_iteration,
    world_model_mdp,
)

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
    index = StateIndex.fit(ds.observations, audit_cfg, ds.distinct_observations)
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
    rows = ds.observation_rows[0]
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
