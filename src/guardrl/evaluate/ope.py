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
from guardrl.evaluate.metrics import Estimate, bootstrap
from guardrl.evaluate.ope_config import OPEConfig
from guardrl.evaluate.target import TargetPolicy
from guardrl.train.world_model import LoggedTransitions


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
        starts = ds.episode_starts
        lengths = np.diff(np.append(starts, len(ds)))
        T = int(lengths.max())
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
    p: Padded, cost: NDArray[np.float64], rng: np.random.Generator, n_boot: int, conf: float
) -> Estimate | None:
    """The hazard as one minus the survival's ordinary importance-sampling estimate, ``1 - mean(W * (1 - C))``
    with ``W`` each episode's whole weight and ``C`` its cost, for logs whose episodes each meet at most one
    hazard (None otherwise).

    Unbiased, as PDIS is; but where a policy's hazards lie off the behaviour's path (where it acts otherwise),
    they are reached through rare episodes of huge weight, so the cost's own estimates (PDIS, WIS, DR) mostly
    come out too low: their sample means miss the weight's long tail. Estimating the survival instead puts the
    long tail on the other side: a sample that misses it underestimates the survival and so overstates the
    hazard. Its percentile bootstrap interval is the confounded gate's conservative bound."""
    c = (cost * p.valid).sum(axis=1)
    if not np.isin(c, (0.0, 1.0)).all():
        return None
    values = np.prod(p.ratios, axis=1) * (1.0 - c)
    n = len(values)
    idx = rng.integers(0, n, size=(n_boot, n))
    boots = 1.0 - values[idx].mean(axis=1)
    lo, hi = np.percentile(boots, [(1 - conf) / 2 * 100, (1 + conf) / 2 * 100])
    point = 1.0 - float(values.mean())
    return Estimate(point, float(min(lo, point)), float(max(hi, point)))


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
    counts: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Weighted doubly robust (Thomas & Brunskill 2016): per-decision DR with self-normalized weights.

    ``counts`` (B, episodes) says how often each episode is drawn; one row of ones is the point estimate, and
    bootstrap rows are multinomial counts. Every sum is linear in the counts, so B estimates are matrix products.
    Padding steps after an episode's end carry its weight with zero reward and zero model value.
    """
    rho = np.cumprod(p.ratios, axis=1)
    rho_prev = np.concatenate([np.ones((rho.shape[0], 1)), rho[:, :-1]], axis=1)
    disc = _discounts(signal.shape[1], gamma)

    def normalized(weights: NDArray, values: NDArray) -> NDArray:
        num, den = counts @ (weights * values * p.valid), counts @ weights
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)

    return ((normalized(rho, signal - q_taken) + normalized(rho_prev, v)) * disc).sum(axis=1)


def _bootstrap_ratio(w: NDArray, g: NDArray, rng: np.random.Generator, n: int, conf: float) -> Estimate:
    def ratio(wi: NDArray, gi: NDArray) -> NDArray:
        total = wi.sum(axis=-1)
        return np.where(total > 0, (wi * gi).sum(axis=-1) / np.where(total > 0, total, 1.0), np.nan)

    idx = rng.integers(0, len(w), size=(n, len(w)))
    boots = ratio(w[idx], g[idx])
    point = float(ratio(w, g))
    if np.isnan(point):
        return Estimate(float("nan"), float("nan"), float("nan"))
    lo, hi = np.nanpercentile(boots, [(1 - conf) / 2 * 100, (1 + conf) / 2 * 100])
    return Estimate(point, float(lo), float(hi))


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
    probs = target.probs(ds.observations.astype(np.float32), n_actions, cfg.epsilon)
    padded = Padded.build(ds, probs)
    horizon_steps, horizon_source = episode_horizon(ds, cfg) if horizon is None else horizon
    rng = np.random.default_rng(cfg.seed)
    signals = {"return": padded.rewards, "cost": padded.costs} if cfg.cost else {"return": padded.rewards}
    next_obs = ds.next_observations.astype(np.float32)
    greedy_next = np.asarray(target.greedy(next_obs), dtype=np.int64) if target.probs_fn is None else None
    probs_next = None if target.probs_fn is None else target.probs(next_obs, n_actions, 0.0)
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
    tabular_fits: dict[str, TabularFQE] = {}
    fqe_states: dict[str, int] | None = None
    if "fqe" in cfg.chosen and tabular:
        assert index is not None
        next_probs = target.probs(next_obs, n_actions, 0.0)
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
                None if step is None else step.fill(key), state_probs, horizon_steps,
            )  # fmt: skip
        if step is not None:
            fqe_states = {"logged": index.n_states, "with_model_outcomes": fqe_index.n_states}
        q_states = fqe_index(ds.observations)
        fqe_fits = {key: (fit.q[q_states], []) for key, fit in tabular_fits.items()}
    elif "fqe" in cfg.chosen:
        jobs = [partial(fqe_job, i, key) for i, key in enumerate(signals)]
        fqe_fits = dict(zip(signals, run_forked(jobs, cfg.fqe_workers), strict=True))
    ratios = padded.ratios[padded.valid]
    out: dict[str, Any] = {
        "policy": target.name,
        "epsilon": cfg.epsilon if target.probs_fn is None else None,
        "horizon": {"steps": horizon_steps, "source": horizon_source, "used_by": "tabular FQE and the world model"},
        **({"fqe": fqe_description(cfg, index, model_step is not None)} if "fqe" in cfg.chosen else {}),
        "weights": {
            "mean_ratio": float(ratios.mean()),
            "share_zero_weight_episodes": float((np.prod(padded.ratios, axis=1) == 0).mean()),
            "ess_episodes": _ess(np.prod(padded.ratios, axis=1)),
        },
        "estimates": {},
    }
    if fqe_states is not None:
        out["fqe"]["states"] = fqe_states
    for key, signal in signals.items():
        est: dict[str, Any] = {}
        if "pdis" in cfg.chosen:
            pdis = pdis_values(padded, signal, cfg.gamma)
            est["pdis"] = bootstrap({"pdis": pdis}, cfg.n_bootstrap, cfg.confidence, rng)["pdis"]
        if "wis" in cfg.chosen:
            w, g = wis_parts(padded, signal, cfg.gamma)
            est["wis"] = _bootstrap_ratio(w, g, rng, cfg.n_bootstrap, cfg.confidence)
        if key == "cost" and "pdis" in cfg.chosen and cfg.gamma == 1.0:
            survival = survival_is(padded, signal, rng, cfg.n_bootstrap, cfg.confidence)
            if survival is not None:
                est["survival_is"] = survival
        if "fqe" in cfg.chosen:
            q_all, loss = fqe_fits[key]
            v_flat = (q_all * probs).sum(axis=1)
            if tabular:
                fit = tabular_fits[key]
                lo, hi = np.percentile(fit.boots, [(1 - cfg.confidence) / 2 * 100, (1 + cfg.confidence) / 2 * 100])
                point = float(fit.starts.mean())
                # refits can sit to one side of the full-data fit (values are products of estimated transition
                # probabilities along the horizon, so the bootstrap is biased); the interval keeps the point
                est["fqe"] = Estimate(point, min(float(lo), point), max(float(hi), point))
                out.setdefault("fqe", {}).setdefault("unlogged_pairs", {})[key] = fit.unlogged_pairs
            else:
                starts = ds.episode_starts
                est["fqe"] = bootstrap({"fqe": v_flat[starts]}, cfg.n_bootstrap, cfg.confidence, rng)["fqe"]
                out.setdefault("fqe_final_loss", {})[key] = float(np.mean(loss[-50:]))
            if "dr" in cfg.chosen:
                q_taken = np.where(
                    padded.valid, q_all[np.maximum(padded.index, 0), ds.actions[np.maximum(padded.index, 0)]], 0.0
                )
                v = np.where(padded.valid, v_flat[np.maximum(padded.index, 0)], 0.0)
                n_eps = padded.valid.shape[0]
                point = float(weighted_dr(padded, signal, q_taken, v, cfg.gamma, np.ones((1, n_eps)))[0])
                idx = rng.integers(0, n_eps, size=(cfg.n_bootstrap, n_eps))
                counts = np.zeros((cfg.n_bootstrap, n_eps))
                np.add.at(counts, (np.arange(cfg.n_bootstrap)[:, None], idx), 1.0)
                boots = weighted_dr(padded, signal, q_taken, v, cfg.gamma, counts)
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


def _ess(w: NDArray[np.float64]) -> float:
    """Kish effective sample size of episode weights (0 when every weight is 0)."""
    s2 = float((w**2).sum())
    return float(w.sum() ** 2 / s2) if s2 > 0 else 0.0
