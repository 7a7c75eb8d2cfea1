"""The ope and gate stages: each policy's return and cost estimated from the logs alone, then PASS / CAUTION /
FAIL from the evidence the earlier stages wrote (the gate computes nothing new)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from guardrl._io import atomic_write_json
from guardrl._parallel import ray_info
from guardrl.config import to_dict
from guardrl.errors import RunError
from guardrl.evaluate import MismatchThresholds
from guardrl.evaluate.bandit import is_one_step
from guardrl.evaluate.gate import Evidence, OPEEvidence, decide, gate
from guardrl.evaluate.metrics import Estimate
from guardrl.evaluate.target import TargetPolicy
from guardrl.evaluate.validation import ope_validation
from guardrl.progress import make_progress
from guardrl.run.context import RunContext
from guardrl.run.evaluation import (
    agreement_with_logs,
    exact_of_target,
    judged_policies,
    learned_policies,
    read_metrics,
    references,
    sepsis_exact_of_greedy,
)


def ope_targets(ctx: RunContext) -> dict[str, TargetPolicy]:
    """Policies to evaluate from the logs: the learned ones, and with ``ope.validate`` the references."""
    # a policy a user brought may be stochastic (guardrl judge): judged by its probabilities
    targets = {name: TargetPolicy(name, p.greedy, getattr(p, "probs_fn", None))
               for name, p in learned_policies(ctx).items()}  # fmt: skip
    if ctx.cfg.ope.validate:
        refs = references(ctx)
        if "behaviour" not in refs.items:
            raise RunError("ope.validate: the behaviour reference needs logs collected by guardrl, not imported")
        targets.update({r.name: r.target for r in refs if r.target is not None})
    return targets


def ope_estimates(
    ctx: RunContext, targets: dict[str, TargetPolicy], show_progress: bool = False
) -> tuple[dict[str, dict[str, Any]], str]:
    """Every configured estimator for every target, from the run's logs; and where the propensities came from
    (logged, or estimated from the logged action counts when the logs carry none)."""
    from guardrl.evaluate.ope import evaluate_one_step, evaluate_policy, fqe_is_tabular, fqe_model_step

    cfg, ds = ctx.cfg, ctx.dataset
    low, high = ctx.obs_bounds()
    support = ctx.support
    propensities = "logged"
    if np.isnan(ds.propensities).any():
        probs = support.behaviour_probs(ds.observations)
        ds = replace(ds, propensities=probs[np.arange(len(ds)), ds.actions])
        propensities = "estimated from the logged action counts per state (the logs carry no propensities)"
    one_step = is_one_step(ds.episode_starts, len(ds))  # bandit logs: no trajectories, so no world model
    world_model = ctx.world_model if "model" in cfg.ope.chosen and not one_step else None
    model_step = None  # the world model's outcomes behind the tabular FQE: the same for every target
    tabular = "fqe" in cfg.ope.chosen and fqe_is_tabular(cfg.ope, support.index)
    if tabular and cfg.needs_world_model and not one_step:
        model_step = fqe_model_step(cfg.ope, support.index, ctx.world_model, ds.n_actions)
    logged = None  # the logs' transitions by pair, for the model's rollouts: the same for every target
    if world_model is not None and cfg.ope.model_logged_prior is not None and not one_step:
        from guardrl.train.world_model import LoggedTransitions

        logged = LoggedTransitions.from_dataset(ds, cfg.ope.model_logged_prior)
    horizon = None
    if cfg.ope.horizon is None and not ctx.logs_only:  # a run with an environment knows its step limit
        limit = ctx.tables.layout.max_steps if ctx.is_safegrid else ctx.simulator.max_steps
        horizon = (int(limit), "the environment's step limit")
    costs_logged = bool(ds.provenance.get("costs_logged", True))
    # logs without costs: a world model of them predicts none, so no cost is estimated (no evidence of safety)
    ope_cfg = cfg.ope if costs_logged else replace(cfg.ope, cost=False)
    estimates: dict[str, Any] = {}
    if ray_info() is not None and not one_step and targets.keys() <= ope_targets(ctx).keys():
        # on a cluster each policy's task reopens the run folder and rebuilds these inputs there
        estimates = ctx.on_cluster(_ope_task, list(targets)) or {}
        targets = {name: target for name, target in targets.items() if name not in estimates}
    with make_progress(show_progress) as progress:
        task = progress.add_task("ope", total=len(targets))
        for name, target in targets.items():
            progress.update(task, description=f"ope: {name}")
            if one_step:
                estimates[name] = evaluate_one_step(ds, target, ope_cfg, support.index)
                progress.advance(task)
                continue
            estimates[name] = evaluate_policy(
                ds, target, ope_cfg, low, high, grid_size=ctx.grid_size, world_model=world_model,
                unlogged=lambda obs, act: support.action_counts(obs, act) == 0, index=support.index,
                model_step=model_step, horizon=horizon, logged=logged,
            )  # fmt: skip
            progress.advance(task)
    for est in estimates.values():
        est["costs_logged"] = costs_logged
    if not cfg.gate.confounded:  # the survival bound is the confounded gate's; elsewhere it only adds noise
        for est in estimates.values():
            est["estimates"].get("cost", {}).pop("survival_is", None)
    return estimates, propensities


def _ope_task(root: str, cfg: dict[str, Any], name: str) -> dict[str, Any]:
    """One policy's estimates, computed where a Ray task runs, from the run folder at ``root``."""
    ctx = RunContext.reopened(root, cfg)
    estimates, _ = ope_estimates(ctx, {name: ope_targets(ctx)[name]})
    return estimates[name]


def stage_ope(ctx: RunContext, show_progress: bool = False) -> dict[str, Any]:
    """Estimate each policy's return and cost from the logs alone, compare with the truth, write ``ope.json``.

    The truth is exact on SafeGrid (dynamic programming on the target policy) and the evaluation stage's
    rollouts elsewhere; nothing is rolled out here."""
    cfg, folder = ctx.cfg, ctx.folder
    exact = {r.name: r.exact for r in references(ctx)} if ctx.is_safegrid else {}
    metrics = None if ctx.is_safegrid or ctx.logs_only else read_metrics(folder)
    one_step = is_one_step(ctx.dataset.episode_starts, len(ctx.dataset))
    world_model = ctx.world_model if "model" in cfg.ope.chosen and not one_step else None
    results: dict[str, Any] = {}
    targets = ope_targets(ctx)
    estimates, propensities = ope_estimates(ctx, targets, show_progress)
    for name, target in targets.items():
        est = estimates[name]
        if ctx.cfg.env.sepsis:
            values = sepsis_exact_of_greedy(target.greedy)
            point = {"return": values["expected_return"], "cost": values["hazard_prob"]}
            est["truth"] = {k: {"mean": v, "low": v, "high": v} for k, v in point.items()}
            est["truth_source"] = "exact (Sepsis-v0's full-state model; the gate never reads it)"
        elif ctx.logs_only:
            est["truth_source"] = "none: no simulator (every number here is estimated from the logs)"
        elif ctx.is_safegrid:
            values = exact.get(name) or exact_of_target(ctx.tables, target)
            point = {"return": values["expected_return"], "cost": values["hazard_prob"]}
            est["truth"] = {k: {"mean": v, "low": v, "high": v} for k, v in point.items()}
            est["truth_source"] = "exact (dynamic programming)"
        else:
            assert metrics is not None
            entry = metrics["policies"][name]
            est["truth"] = {"return": entry["return"], "cost": entry["hazard_rate"]}
            est["truth_source"] = "rollouts (evaluate stage)"
        results[name] = est
    out: dict[str, Any] = {"config": to_dict(cfg.ope), "propensities": propensities, "policies": results}
    if not ctx.logs_only or ctx.cfg.env.sepsis:
        out["validation"] = ope_validation(results)
    if world_model is not None:
        out["world_model"] = {"accuracy": world_model.meta["accuracy"], "kind": world_model.kind}
    atomic_write_json(folder.ope, out)
    ctx.plot("ope_vs_truth", results, folder.plot("ope_vs_truth"))
    return out


def gate_evidence(ctx: RunContext) -> tuple[list[Evidence], str | None, float]:
    """The gate's inputs, read from the run folder: evidence per candidate, the audit verdict, the return
    range. Candidates are the learners, the imitation policies exported into the run, and the references that
    OPE validated."""
    folder = ctx.folder
    metrics = read_metrics(folder)
    audit_result = folder.read_optional(folder.audit)
    judged = bool((folder.read_optional(folder.portfolio) or {}).get("judged"))  # guardrl judge: no BC of its own
    ope_all = folder.read_optional(folder.ope) or {}
    ope = ope_all.get("policies", {})
    logged = ope_all.get("propensities", "logged") == "logged"
    learners = judged_policies(ctx)
    names = learners + [n for n in ope if n not in learners]
    candidates = []
    for name in names:
        p = metrics["policies"].get(name)
        if p is None and name not in learners:
            raise RunError(f"{folder.metrics}: no evaluation of {name!r}; run `guardrl evaluate {folder.root}` again")
        p = p or {}
        unsupported_rate, unsupported_source = _unsupported_rate(p)
        candidates.append(
            Evidence(
                name=name,
                hazard=Estimate.from_dict(p["hazard_rate"]) if "hazard_rate" in p else None,
                ret=Estimate.from_dict(p["return"]) if "return" in p else None,
                ope=replace(OPEEvidence.from_dict(ope[name]), propensities_logged=logged) if name in ope else None,
                unsupported_rate=unsupported_rate,
                unsupported_source=unsupported_source,
                is_bc=name == "bc" and not judged,
            )
        )
    verdict = audit_result["verdict"]["verdict"] if audit_result else None
    return candidates, verdict, float(metrics["return_range"])


def _unsupported_rate(entry: dict[str, Any]) -> tuple[float | None, str]:
    """The rate on the policy's own rollout steps where there are rollouts, else on the logged states."""
    rates = entry.get("unsupported", {})
    if "rollout_rate" in rates:
        return rates["rollout_rate"], "rollouts"
    return rates.get("logs_rate"), "logs"


def stage_gate(ctx: RunContext) -> dict[str, Any]:
    """PASS / CAUTION / FAIL for every candidate from the run's evidence; write ``gate.json``."""
    out = gate(*gate_evidence(ctx), ctx.cfg.gate, behaviour=behaviour_return(ctx),
               behaviour_hazard=behaviour_hazard(ctx))  # fmt: skip
    atomic_write_json(ctx.folder.gate, out)
    return out


def assess_candidates(ctx: RunContext, targets: dict[str, TargetPolicy]) -> dict[str, Any]:
    """Off-policy estimates and the gate's decision for policies that are not the run's learners (a benchmark's
    reference candidates), through the same estimators and rules, with the run's BC as their comparison.

    Logs-only runs whose stages up to ``gate`` are done; returns ``{name: {"ope": ..., "gate": ...}}``."""
    if not ctx.logs_only:
        raise RunError("assess_candidates: logs-only runs only (with a simulator the gate reads rollouts)")
    estimates, propensities = ope_estimates(ctx, targets)
    candidates, verdict, return_range = gate_evidence(ctx)
    bc = next((c for c in candidates if c.is_bc), None)
    ds = ctx.dataset
    support = ctx.support
    behaviour, hazard = behaviour_return(ctx), behaviour_hazard(ctx)
    thresholds = MismatchThresholds(ok=ctx.cfg.evaluate.mismatch_ok, red=ctx.cfg.evaluate.mismatch_red)
    out: dict[str, Any] = {}
    for name, target in targets.items():
        rate = agreement_with_logs(target.greedy, ds, support, thresholds)[1]["logs_rate"]
        ope = replace(OPEEvidence.from_dict(estimates[name]), propensities_logged=propensities == "logged")
        evidence = Evidence(name, ope=ope, unsupported_rate=rate, unsupported_source="logs")
        verdict_of = decide(evidence, bc, verdict, return_range, ctx.cfg.gate, behaviour, hazard)
        out[name] = {"ope": estimates[name], "gate": verdict_of}
    return out


# ---------------------------------------------------------------- recommendation


def _logged_episode_sums(ctx: RunContext) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Each logged episode's return and summed cost, read once per run (continuous logs too)."""

    def sums() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        ds = ctx.folder.load_dataset() if ctx.cfg.env.continuous else ctx.dataset
        costs = np.add.reduceat(ds.costs, ds.episode_starts) if len(ds) else np.zeros(0)
        return ds.episode_returns(), np.asarray(costs, dtype=np.float64)

    return ctx.memo("logged_episode_sums", sums)


def _on_policy(ctx: RunContext, key: str, values: NDArray[np.float64], seed: int) -> Estimate:
    from guardrl.evaluate.metrics import Units, bootstrap

    cfg = ctx.cfg.ope
    units = Units.of(len(values), cfg.bootstrap_units, cfg.seed) if len(values) else None
    rng = np.random.default_rng(seed)
    return bootstrap({key: values}, cfg.n_bootstrap, cfg.confidence, rng, units)[key]


def behaviour_return(ctx: RunContext) -> Estimate:
    """The logged behaviour's own return, estimated on-policy: the mean logged episode return with a percentile
    bootstrap interval over episodes (over blocks of them beyond ``ope.bootstrap_units`` episodes)."""
    return _on_policy(ctx, "return", _logged_episode_sums(ctx)[0], ctx.cfg.ope.seed)


def behaviour_hazard(ctx: RunContext) -> Estimate:
    """The logged behaviour's own hazard, estimated on-policy: the mean of each logged episode's summed cost (with
    cost 1 at a hazard that ends the episode, the share of episodes that met one), with a percentile bootstrap
    interval over episodes, as the off-policy ``cost`` estimates are."""
    # not the return's draws: two independent resamplings
    return _on_policy(ctx, "cost", _logged_episode_sums(ctx)[1], ctx.cfg.ope.seed + 1)


def stage_recommend(ctx: RunContext) -> dict[str, Any]:
    """The policy the evidence recommends (:mod:`guardrl.evaluate.recommend`), from ``gate.json`` and the logs;
    writes ``recommendation.json``."""
    from guardrl.evaluate.recommend import recommend

    folder = ctx.folder
    decisions = folder.read_json(folder.gate, "gate")["decisions"]
    metrics = folder.read_optional(folder.metrics) or {}
    closeness = {name: (entry.get("mismatch") or {}).get("rate") for name, entry in metrics.get("policies", {}).items()}
    out = recommend(decisions, behaviour_return(ctx), closeness, candidates=judged_policies(ctx))
    atomic_write_json(folder.recommendation, out)
    return out
