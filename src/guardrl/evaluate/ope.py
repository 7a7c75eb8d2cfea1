"""Off-policy evaluation from the logs alone: importance sampling (per-decision and weighted), FQE and
doubly robust, for the return and for the cost (expected hazard events per episode).

Values are undiscounted episode sums by default (``gamma = 1``), like every rollout metric in guardrl.
Importance weights use the logged behaviour propensities. A deterministic target policy puts probability 0 on
every other action, so one mismatch zeroes an episode's weight; IS therefore evaluates the *softened* target
``(1 - epsilon) * greedy + epsilon / n_actions`` (``OPEConfig.epsilon``, documented in the output), and so does
DR, whose correction terms carry the same weights. FQE estimates the policy itself (the tabular FQE from its
first action on; the network FQE's start value uses the softened first action). The gate counts the
importance-weighted estimates only for the policy itself: a stochastic target, or ``epsilon`` 0.

FQE is tabular over the audit's states (:mod:`guardrl.evaluate.fqe_tabular`) or a network
(:mod:`guardrl.evaluate.fqe_network`). The network FQE's logged horizon ends the value:
truncations count as terminals for FQE (observations carry no time, and with ``gamma = 1`` bootstrapping past
the time limit would let a looping policy's value grow without bound).

Confidence intervals are percentile bootstraps over episodes. For FQE that is over start states only: the
fitted model's own error is not in the interval (the OPE-vs-truth validation measures it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from guardrl._parallel import run_forked
from guardrl.data import Dataset
from guardrl.data.audit import StateIndex
from guardrl.envs import sample_actions
from guardrl.errors import ConfigError
from guardrl.evaluate.bandit import BanditConfig, bandit_estimates
from guardrl.evaluate.fqe_network import fit_fqe
from guardrl.evaluate.fqe_tabular import ModelFill, TabularFQE, fit_tabular_fqe
from guardrl.evaluate.importance import (
    _bootstrap_ratio,
    _discounts,
    _episode_terms,
    _ess,
    _rows_of,
    _survival,
    _taken_and_state_values,
    _wdr_from_parts,
)
from guardrl.evaluate.metrics import Estimate, Units, bootstrap
from guardrl.evaluate.ope_config import OPEConfig
from guardrl.evaluate.target import TargetPolicy
from guardrl.train.world_model import LoggedTransitions

# ------------------------------------------------------------------ all estimators for one policy


def evaluate_policy(
    ds: Dataset,
    target: TargetPolicy,
    cfg: OPEConfig,
    low: NDArray,
    high: NDArray,
    grid_size: int | None = None,
    world_model: Any = None,
    unlogged: Callable[[NDArray[np.float32], NDArray[np.int64]], NDArray[np.bool_]] | None = None,
    index: StateIndex | None = None,
    model_step: ModelStep | None = None,
    horizon: tuple[int, str] | None = None,
    logged: LoggedTransitions | None = None,
) -> dict[str, Any]:
    """Every configured estimator of return (and cost) for ``target``, each with a bootstrap CI.

    ``grid_size``: the network FQE reads a one-hot of the (x, y) cell (as the learners do on SafeGrid).
    ``world_model``: the run's :class:`~guardrl.train.world_model.WorldModel`, for the ``model`` estimator;
    ``unlogged``: which (observation, action) pairs the logs never contain, for its pessimistic cost bound.
    ``index``: the audit's state index, for the tabular FQE; ``model_step``: the world model's outcomes that back
    up the tabular FQE's unlogged pairs (:func:`fqe_model_step`; the same for every target, so computed once);
    ``horizon``: the episode step limit and where it came from, when the caller knows it (an environment's);
    else :func:`episode_horizon`; ``logged``: the logs' transitions by pair, which the model estimator's rollouts
    draw from (:class:`~guardrl.train.world_model.LoggedTransitions`, built once by the caller)."""
    if "model" in cfg.chosen and world_model is None:
        raise ConfigError("ope.estimators: model needs the run's world model (guardrl model RUN)")
    tabular = fqe_is_tabular(cfg, index)
    n_actions = ds.n_actions
    weighted = {"pdis", "wis", "dr"} & set(cfg.chosen)
    missing = int(np.isnan(ds.propensities).sum())
    if weighted and missing:
        raise ConfigError(
            f"ope: {missing} transitions have no behaviour propensity, which {sorted(weighted)} need; "
            "log propensities or set ope.estimators to [fqe]"
        )
    probs = ds.over_observations(lambda o: target.probs(o, n_actions, cfg.epsilon))
    horizon_steps, horizon_source = episode_horizon(ds, cfg) if horizon is None else horizon
    rng = np.random.default_rng(cfg.seed)
    units = Units.of(ds.n_episodes, cfg.bootstrap_units, cfg.seed)
    signals = ("return", "cost") if cfg.cost else ("return",)
    greedy_next, probs_next = None, None
    if target.probs_fn is None:
        greedy_next = ds.over_observations(target.greedy, next_obs=True).astype(np.int64)
    else:
        probs_next = ds.over_observations(lambda o: target.probs(o, n_actions, 0.0), next_obs=True)
    flat_signals = {"return": ds.rewards, "cost": ds.costs}

    def fqe_job(job: int, key: str) -> tuple[NDArray[np.float64], list[float]]:
        """Q(s, a) over the logged observations and the loss curve of the FQE for one signal."""
        act_rng = np.random.default_rng([cfg.seed, 1, job])  # the fit's own stream: same result in any process

        def next_act(idx: NDArray[np.int64]) -> NDArray[np.int64]:
            if greedy_next is not None:
                return greedy_next[idx]
            assert probs_next is not None
            return sample_actions(probs_next[idx], act_rng)  # one fresh draw per sampled transition

        def act(obs: NDArray[np.float32]) -> NDArray[np.int64]:
            return target.act(obs, act_rng, n_actions)

        seed = int(np.random.SeedSequence([cfg.seed, job]).generate_state(1)[0])
        scale = cfg.fqe_cost_scale if key == "cost" else cfg.fqe_reward_scale
        model = fit_fqe(ds, flat_signals[key], act, cfg, low, high, seed, next_act, scale, grid_size)
        return model.q(ds.observations), model.loss

    fqe_fits: dict[str, tuple[NDArray[np.float64], list[float]]] = {}
    q_of: dict[str, Callable[[slice], NDArray[np.float64]]] = {}
    tabular_fits: dict[str, TabularFQE] = {}
    fqe_states: dict[str, int] | None = None
    if "fqe" in cfg.chosen and tabular:
        assert index is not None
        next_probs = ds.over_observations(lambda o: target.probs(o, n_actions, 0.0), next_obs=True)
        fills = {"return": float(ds.rewards.min()), "cost": float(ds.costs.max())}
        step = model_step
        fqe_index = index if step is None else step.index
        # the policy's own first action (not the softened one IS needs): FQE estimates the policy itself
        own_starts = target.probs(ds.observations[ds.episode_starts].astype(np.float32), n_actions, 0.0)
        state_probs = None
        if step is not None and fqe_index.exact is not None:
            state_probs = target.probs(fqe_index.exact, n_actions, 0.0)
        for i, key in enumerate(signals):
            tabular_fits[key] = fit_tabular_fqe(
                ds, fqe_index, flat_signals[key], fills[key], next_probs, own_starts, cfg.gamma,
                cfg.fqe_refits, np.random.default_rng([cfg.seed, 3, i]),
                None if step is None else step.fill(key), state_probs, horizon_steps, units,
            )  # fmt: skip
        if step is not None:
            fqe_states = {"logged": index.n_states, "with_model_outcomes": fqe_index.n_states}
        q_states = ds.over_observations(fqe_index)
        # Q per transition is read from the (states, actions) table a chunk at a time, never as an (n, A) array
        q_of = {key: partial(_rows_of, fit.q, q_states) for key, fit in tabular_fits.items()}
    elif "fqe" in cfg.chosen:
        jobs = [partial(fqe_job, i, key) for i, key in enumerate(signals)]
        fqe_fits = dict(zip(signals, run_forked(jobs, cfg.fqe_workers), strict=True))
        q_of = {key: partial(_rows_of, q_all, None) for key, (q_all, _) in fqe_fits.items()}
    ratio_flat = probs[np.arange(len(ds)), ds.actions] / ds.propensities
    dr_inputs: dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}
    if "fqe" in cfg.chosen and "dr" in cfg.chosen:
        for key in signals:
            dr_inputs[key] = _taken_and_state_values(q_of[key], ds, probs)
    terms = _episode_terms(ds, ratio_flat, {k: flat_signals[k] for k in signals}, dr_inputs, cfg.gamma, units)
    w_all = terms.pop("weight")
    out: dict[str, Any] = {
        "policy": target.name,
        "epsilon": cfg.epsilon if target.probs_fn is None else None,
        "horizon": {"steps": horizon_steps, "source": horizon_source, "used_by": "tabular FQE and the world model"},
        **({"fqe": fqe_description(cfg, index, model_step is not None)} if "fqe" in cfg.chosen else {}),
        "weights": {
            "mean_ratio": float(ratio_flat.mean()),
            "share_zero_weight_episodes": float((w_all == 0).mean()),
            "ess_episodes": _ess(w_all),
        },
        "estimates": {},
    }
    if fqe_states is not None:
        out["fqe"]["states"] = fqe_states
    for key in signals:
        est: dict[str, Any] = {}
        per = terms[key]
        if "pdis" in cfg.chosen:
            est["pdis"] = bootstrap({"pdis": per["pdis"]}, cfg.n_bootstrap, cfg.confidence, rng, units)["pdis"]
        if "wis" in cfg.chosen:
            est["wis"] = _bootstrap_ratio(w_all, per["total"], rng, cfg.n_bootstrap, cfg.confidence, units)
        if key == "cost" and "pdis" in cfg.chosen and cfg.gamma == 1.0:
            survival = _survival(w_all, per["undiscounted"], rng, cfg.n_bootstrap, cfg.confidence, units)
            if survival is not None:
                est["survival_is"] = survival
        if "fqe" in cfg.chosen:
            if tabular:
                fit = tabular_fits[key]
                lo, hi = np.percentile(fit.boots, [(1 - cfg.confidence) / 2 * 100, (1 + cfg.confidence) / 2 * 100])
                point = float(fit.starts.mean())
                # refits can sit to one side of the full-data fit (values are products of estimated transition
                # probabilities along the horizon, so the bootstrap is biased); the interval keeps the point
                est["fqe"] = Estimate(point, min(float(lo), point), max(float(hi), point))
                out.setdefault("fqe", {}).setdefault("unlogged_pairs", {})[key] = fit.unlogged_pairs
            else:
                q_all, loss = fqe_fits[key]
                starts = ds.episode_starts
                v_start = (q_all[starts] * probs[starts]).sum(axis=1)
                est["fqe"] = bootstrap({"fqe": v_start}, cfg.n_bootstrap, cfg.confidence, rng, units)["fqe"]
                out.setdefault("fqe_final_loss", {})[key] = float(np.mean(loss[-50:]))
            if "dr" in cfg.chosen:
                parts, disc = per["dr_parts"], _discounts(per["dr_parts"][0].shape[1], cfg.gamma)
                point = float(_wdr_from_parts(parts, disc, [np.ones((1, units.n))])[0])
                boots = _wdr_from_parts(parts, disc, units.counts(rng, cfg.n_bootstrap))
                q = [(1 - cfg.confidence) / 2 * 100, (1 + cfg.confidence) / 2 * 100]
                lo, hi = np.percentile(boots, q)
                est["dr"] = Estimate(point, float(lo), float(hi))
        out["estimates"][key] = est
    if "model" in cfg.chosen:
        from guardrl.evaluate.model_ope import model_estimates, untrusted_pairs

        rule, unseen = None, None
        if unlogged is not None:
            exact = index is not None and index.exact is not None
            unlogged, unseen, rule = untrusted_pairs(
                world_model, ds, unlogged, cfg.model_trust_disagreement, exact, cfg.model_pessimism
            )
        by_model = model_estimates(world_model, ds, target, cfg, unlogged, horizon_steps, logged, unseen)
        out["model"] = by_model.pop("model")
        if rule is not None:
            out["model"]["pessimistic_counts_as_hazard"] = rule
        for key in out["estimates"]:
            out["estimates"][key].update(by_model[key])
    for key, est in out["estimates"].items():
        out["estimates"][key] = {k: e.to_dict() for k, e in est.items()}
    return out


def evaluate_one_step(ds: Dataset, target: TargetPolicy, cfg: OPEConfig, index: StateIndex | None) -> dict[str, Any]:
    """The one-step estimators (:mod:`guardrl.evaluate.bandit`) of ``target`` on logs whose every episode is one
    decision, in :func:`evaluate_policy`'s schema. The target is judged as it is (no softening: one step has no
    product of ratios to zero out), and the cost only when the logs record one."""
    if np.isnan(ds.propensities).any():
        raise ConfigError("ope: one-step logs need a behaviour propensity on every row (the importance weights)")
    probs = target.probs(ds.observations.astype(np.float32), ds.n_actions, 0.0)
    contexts = index(ds.observations) if index is not None else np.zeros(len(ds), dtype=np.int64)
    signals = {"return": ds.rewards}
    if cfg.cost and ds.provenance.get("costs_logged", True):
        signals["cost"] = ds.costs
    bcfg = BanditConfig(cfg.bandit_folds, cfg.bandit_prior_rows, cfg.bandit_switch_weight)
    out = bandit_estimates(contexts, ds.actions, ds.propensities, probs, signals, bcfg, cfg.confidence, cfg.seed)
    return {
        "policy": target.name,
        "epsilon": None,
        "bandit": {
            "rows": len(ds),
            "contexts": out["contexts"],
            "unlogged_mass": out["unlogged_mass"],
            "reward_model": f"per (context, action) mean shrunk by {bcfg.prior_rows:g} pseudo-rows toward the "
            f"action's mean, cross-fitted over {bcfg.folds} folds",
            "interval": f"normal, {cfg.confidence:.0%}, over independent rows",
            "switch_weight": bcfg.switch_weight,
        },
        "weights": out["weights"],
        "estimates": {k: {e: v.to_dict() for e, v in by.items()} for k, by in out["estimates"].items()},
    }


def episode_horizon(ds: Dataset, cfg: OPEConfig) -> tuple[int, str]:
    """The episode step limit the estimates are for, and where it came from (see ``OPEConfig.horizon``)."""
    if cfg.horizon is not None:
        return cfg.horizon, "ope.horizon"
    lengths = np.diff(np.append(ds.episode_starts, len(ds)))
    ends_truncated = ds.truncations[np.append(ds.episode_starts[1:], len(ds)) - 1]
    if ends_truncated.any():
        return int(lengths[ends_truncated].max()), "the longest truncated logged episode"
    return int(lengths.max()), "the longest logged episode (the logs record no truncation)"


def fqe_is_tabular(cfg: OPEConfig, index: StateIndex | None) -> bool:
    """Whether FQE uses the tabular function class (see ``OPEConfig.fqe_function_class``)."""
    fits = index is not None and index.n_states <= cfg.fqe_max_states
    if cfg.fqe_function_class == "tabular" and not fits:
        states = "no state index" if index is None else f"{index.n_states} states"
        raise ConfigError(
            f"ope.fqe_function_class: tabular needs the audit's state index with at most ope.fqe_max_states="
            f"{cfg.fqe_max_states} states ({states}); use network or auto"
        )
    return cfg.fqe_function_class != "network" and fits


@dataclass(frozen=True)
class ModelStep:
    """The world model's one-step outcomes of every (state, action) pair of an exact state index: the audit's
    logged states and the never-logged observations the model's outcomes go on to (see :func:`fqe_model_step`)."""

    index: StateIndex
    pair: NDArray[np.int64]
    next_state: NDArray[np.int64]
    prob: NDArray[np.float64]
    reward: NDArray[np.float64]
    cost: NDArray[np.float64]
    cont: NDArray[np.float64]

    def fill(self, key: str) -> ModelFill:
        """The outcomes for one signal (``return`` or ``cost``)."""
        signal = self.reward if key == "return" else self.cost
        return ModelFill(self.pair, self.next_state, self.prob, signal, self.cont)


def fqe_model_step(
    cfg: OPEConfig, index: StateIndex | None, model: Any, n_actions: int, min_prob: float = 1e-3
) -> ModelStep | None:
    """The outcomes that back up the tabular FQE's unlogged pairs, or None where they cannot: ``ope.fqe_unlogged``
    is ``logged_average``, the run has no world model, its next observation is Gaussian (no list of outcomes), or
    the index bins observations (a bin has no one observation to predict from).

    The index grows by every observation the model's outcomes go on to (an outcome whose probability of going on
    is at least ``min_prob`` in the members' average) until none is new or it would pass ``ope.fqe_max_states``;
    an outcome outside it ends with FQE's fill. Without the growth, a policy that leaves the logged states was
    charged the fill at its first step outside: on the OPE suite's development logs the optimum with 30%
    noise came out at 5.1% hazard against a true 1.5%."""
    if cfg.fqe_unlogged != "model" or model is None or model.kind == "gaussian" or index is None:
        return None
    if index.exact is None:
        return None

    def step(rows: NDArray[np.float32]) -> Any:
        return model.one_step(np.repeat(rows, n_actions, axis=0), np.tile(np.arange(n_actions), len(rows)))

    rows, frontier = index.exact, index.exact
    while len(frontier):
        out = step(frontier)
        goes_on = (out.prob * (1.0 - out.termination)).mean(axis=0) >= min_prob
        known = StateIndex(exact=rows, edges=None)
        fresh = out.next_obs[goes_on][known(out.next_obs[goes_on]) < 0]
        frontier = np.unique(fresh, axis=0) if len(fresh) else fresh
        if len(rows) + len(frontier) > cfg.fqe_max_states:
            break
        rows = np.unique(np.concatenate([rows, frontier]), axis=0) if len(frontier) else rows
    grown = StateIndex(exact=rows, edges=None)
    out = step(rows)
    return ModelStep(
        index=grown, pair=out.row, next_state=grown(out.next_obs), prob=out.prob, reward=out.reward, cost=out.cost,
        cont=1.0 - out.termination,
    )  # fmt: skip


def fqe_description(cfg: OPEConfig, index: StateIndex | None, filled: bool = False) -> dict[str, Any]:
    """What the FQE estimate is, for ``ope.json`` and the report; ``filled``: the tabular FQE backs unlogged
    pairs up through the world model (a :class:`ModelStep` was given)."""
    if fqe_is_tabular(cfg, index):
        assert index is not None
        kind = "exact rows" if index.exact is not None else "quantile bins"
        return {
            "function_class": f"tabular over the audit's {index.n_states} states ({kind}), solved exactly",
            "interval": f"percentile bootstrap over {cfg.fqe_refits} refits on resampled episodes"
            + (", one world-model member per refit for unlogged pairs" if filled else ""),
            "refits": cfg.fqe_refits,
            "unlogged": "backed up through the world model's predicted outcomes (and the never-logged observations "
            "they go on to, as states whose every action the model values)"
            if filled
            else "valued as the logged actions in that state, weighted by their counts",
        }
    return {
        "function_class": f"network {list(cfg.fqe_hidden_units)}, {cfg.fqe_steps} steps, {cfg.fqe_td_loss} loss",
        "interval": "percentile bootstrap over start states (the fit's own error is not in it)",
    }
