"""The stages of a run: collect -> audit -> model -> train -> evaluate -> OPE -> gate -> report.

Each stage takes the run's :class:`RunContext`, reads what earlier stages wrote into the run folder, and writes
its own artifacts (see :mod:`guardrl.run.folder`). The gate only reads evidence; it never rolls anything out.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

import guardrl
from guardrl import report
from guardrl._io import atomic_write_dir, atomic_write_json, atomic_write_text
from guardrl._parallel import BackgroundWorker
from guardrl.config import RunConfig, save_config, to_dict
from guardrl.data import Dataset, collect
from guardrl.data.audit import Support, audit
from guardrl.data.collect import collect_gym
from guardrl.envs import Tables, evaluate_greedy
from guardrl.errors import RunError
from guardrl.evaluate import MismatchThresholds, mismatch_rate, normalized_score, rollout
from guardrl.evaluate.gate import Evidence, OPEEvidence, decide, gate
from guardrl.evaluate.metrics import Estimate
from guardrl.evaluate.target import TargetPolicy
from guardrl.evaluate.validation import ope_validation
from guardrl.progress import make_progress
from guardrl.run.context import RunContext
from guardrl.run.folder import RunFolder
from guardrl.run.imported import imported_logs
from guardrl.run.references import References, build_references

# ---------------------------------------------------------------- collect


def stage_collect(ctx: RunContext, overwrite: bool = False) -> Dataset:
    """Log (or copy in the imported) behaviour dataset into the run's ``dataset/`` and plot its coverage."""
    cfg, folder = ctx.cfg, ctx.folder
    c = cfg.collect
    if c.dataset is not None:
        ds = imported_logs(ctx, Path(c.dataset))
    elif not ctx.is_safegrid:
        provenance = {
            "environment": cfg.env.gym_id, "gym_kwargs": dict(cfg.env.gym_kwargs),
            "behaviour": c.behaviour, "behaviour_kwargs": dict(c.behaviour_kwargs),
        }  # fmt: skip
        ds = collect_gym(ctx.simulator, ctx.behaviour_fn(), c.n_episodes, c.seed, provenance)
    else:
        ds = collect(ctx.tables, c.regime, c.n_episodes, c.seed)
    ds.save(folder.dataset, overwrite=overwrite)
    ctx.use_dataset(ds)
    if ctx.is_safegrid:
        _plot_visitation(ctx, ds, folder.plot("state_visitation"))
    ctx.plot("reward_histogram", ds.rewards, ds.episode_returns(), folder.plot("rewards"))
    return ds


def _plot_visitation(ctx: RunContext, ds: Dataset, path: Path) -> None:
    lay = ctx.tables.layout
    xy = np.rint(ds.observations).astype(np.int64)
    counts = np.zeros((lay.size, lay.size), dtype=np.int64)
    np.add.at(counts, (xy[:, 1], xy[:, 0]), 1)
    ctx.plot("visitation_heatmap", counts, lay.hazards, lay.start, lay.goal, path)


# ---------------------------------------------------------------- audit


def stage_audit(ctx: RunContext) -> dict[str, Any]:
    """Audit the run's dataset; write ``audit.json`` where the gate and the report read it."""
    result = audit(ctx.dataset, ctx.cfg.audit)
    atomic_write_json(ctx.folder.audit, result)
    return result


# ---------------------------------------------------------------- world model


def stage_model(ctx: RunContext, show_progress: bool = False) -> dict[str, Any]:
    """Fit the world model to the run's logs and save it in ``world_model/``; returns its held-out accuracy.

    The audit decides whether the logs can carry one: when it refuses, this stage stops with its reasons."""
    from guardrl.train.world_model import fit_world_model

    folder = ctx.folder
    check = folder.read_json(folder.audit, "audit").get("world_model", {})
    if not check.get("fit", False):
        reasons = "; ".join(check.get("reasons", ["the audit has no world-model check; run `guardrl audit` again"]))
        hint = "" if ctx.logs_only else " (or remove model from ope.estimators)"
        raise RunError(f"{folder.audit}: the audit refuses a world model for these logs: {reasons}. Log more{hint}")
    model = fit_world_model(ctx.dataset, ctx.cfg.world_model, show_progress=show_progress)
    model.save(folder.world_model)
    ctx.memo("world_model", lambda: model)
    return dict(model.meta["accuracy"])


# ---------------------------------------------------------------- train


def _exact_monitor(tables: Tables) -> Any:
    """Exact value of a greedy policy over all grid cells (learning curves only; never used to select)."""

    def monitor(predict: Any) -> dict[str, float]:
        values = _exact_of_greedy(tables, predict)
        return {"expected_return": values["expected_return"], "hazard_prob": values["hazard_prob"]}

    return monitor


def stage_train(ctx: RunContext, show_progress: bool = True) -> dict[str, Any]:
    """Train every configured learner on the run's dataset; export policies, model cards and curves."""
    from guardrl.train import ObsBounds, export_policy, export_scores, train_all

    cfg, folder, ds = ctx.cfg, ctx.folder, ctx.dataset
    monitor = _exact_monitor(ctx.tables) if ctx.is_safegrid else None
    bounds = ObsBounds(*ctx.obs_bounds())
    results = train_all(
        ds, cfg.train, bounds, monitor, show_progress=show_progress, grid_size=ctx.grid_size,
        audit_cfg=cfg.audit, world_model=ctx.world_model if cfg.train_needs_world_model else None,
        hazard_budget=cfg.gate.hazard_limit,
    )  # fmt: skip
    training: dict[str, Any] = {}
    for name, res in results.items():
        files = export_policy(res.algo, folder.policies, name)
        files["scores"], kind = export_scores(res.algo, folder.policies, name)
        card = model_card(name, ctx, files)
        card["scores"] = {"file": files["scores"].name, "kind": kind}
        if getattr(res.algo, "info", None):  # a tabular planner: its table and its plan under the model
            card["plan"] = res.algo.info
        atomic_write_json(folder.card(name), card)
        training[name] = {
            "seconds": res.seconds, "n_steps": res.n_steps, "steps_per_second": res.steps_per_second,
            "curve": res.curve, "monitor": res.monitor,
        }  # fmt: skip
    atomic_write_json(folder.training, training)
    ctx.plot(
        "learning_curves",
        {n: t["curve"] for n, t in training.items()},
        {n: t["monitor"] for n, t in training.items()},
        folder.plot("learning_curves"),
        optimal=references(ctx).optimal_return if ctx.is_safegrid else None,
    )
    return results


def model_card(name: str, ctx: RunContext, files: dict[str, Path]) -> dict[str, Any]:
    """What a deployed policy needs to be understood: its learner, data, inputs, outputs and versions."""
    import d3rlpy
    import torch

    cfg, ds = ctx.cfg, ctx.dataset
    if cfg.env.logs_only:
        meaning = "the logged observation, as in the dataset; scaling is inside the model"
    elif cfg.env.is_gym:
        meaning = f"{cfg.env.gym_id} observation, encoded as in dataset provenance; scaling is inside the model"
    else:
        meaning = "raw (x, y) cell; scaling is inside the model"
    return {
        "policy": name,
        "learner_config": to_dict(getattr(cfg.train, name)),
        "train_seed": cfg.train.seed,
        "dataset_sha256": ds.content_hash(),
        "dataset_provenance": ds.provenance,
        "files": {k: p.name for k, p in files.items()},
        "input": {"name": "observation", "shape": ["batch", ds.obs_dim], "dtype": "float32", "meaning": meaning},
        "output": {"name": "action", "shape": ["batch"], "dtype": "int64", "n_actions": ds.n_actions},
        "versions": {"guardrl": guardrl.__version__, "d3rlpy": d3rlpy.__version__, "torch": torch.__version__},
    }


# ---------------------------------------------------------------- evaluate


def judged_policies(ctx: RunContext) -> list[str]:
    """The run's learners, then the imitation policies exported into it (``guardrl dagger`` / ``gail``): what
    evaluation, OPE and the gate judge."""
    learners = list(ctx.cfg.train.chosen)
    return learners + [n for n in ctx.folder.imitation_policies() if n not in learners]


def learned_policies(ctx: RunContext) -> dict[str, Any]:
    """The run's exported policies, loaded once (``TorchScriptPolicy`` each)."""
    from guardrl.train import TorchScriptPolicy

    folder = ctx.folder
    return ctx.memo(
        "learned",
        lambda: {
            name: TorchScriptPolicy(folder.require(folder.policy(name), "train")) for name in judged_policies(ctx)
        },
    )


def references(ctx: RunContext) -> References:
    """The run's reference policies, built once."""
    return ctx.memo("references", lambda: build_references(ctx))


def stage_evaluate(ctx: RunContext, show_progress: bool = False) -> dict[str, Any]:
    """Roll out reference and learned policies on held-out seeds (exact values too on SafeGrid);
    write ``metrics.json`` and plots."""
    if ctx.logs_only:
        return _evaluate_on_logs(ctx)
    cfg, folder, ds = ctx.cfg, ctx.folder, ctx.dataset
    ecfg = cfg.evaluate
    thresholds = MismatchThresholds(ok=ecfg.mismatch_ok, red=ecfg.mismatch_red)
    refs = references(ctx)
    rows: dict[str, list[tuple[Any, float]]] = {r.name: r.mixture for r in refs}
    greedy_on_logs: dict[str, np.ndarray] = {}
    exact: dict[str, dict[str, float]] = {r.name: r.exact for r in refs if r.exact is not None}
    if "optimal" in refs.items:
        target = refs.items["optimal"].target
        assert target is not None
        greedy_on_logs["optimal"] = target.greedy(ds.observations)
    for name, policy in learned_policies(ctx).items():
        rows[name] = [(policy, 1.0)]
        greedy_on_logs[name] = policy.greedy(ds.observations)
        if ctx.is_safegrid:
            exact[name] = _exact_of_greedy(ctx.tables, policy.greedy)

    support = ctx.support
    policies: dict[str, Any] = {}
    with make_progress(show_progress) as progress:
        task = progress.add_task("evaluate: rollouts", total=len(rows))
        results = {}
        for name, mixture in rows.items():
            progress.update(task, description=f"evaluate: {name}")
            results[name] = rollout(ctx.simulate, mixture, ecfg, step_check=support.unsupported)
            progress.advance(task)
    for name, res in results.items():
        entry: dict[str, Any] = {k: v.to_dict() for k, v in res.summary.items()}
        policies[name] = entry
        entry["n_episodes"] = int(res.returns.shape[0])
        entry["per_seed"] = res.per_seed()
        rollout_rate = res.flagged_steps / max(res.total_steps, 1)
        entry["unsupported"] = {"rollout_rate": rollout_rate, "rollout_flag": thresholds.flag(rollout_rate)}
        if name in exact:
            entry["exact"] = exact[name]
        if name in greedy_on_logs:
            mismatch, on_logs = _agreement_with_logs(greedy_on_logs[name], ds, support, thresholds)
            entry["mismatch"] = mismatch
            entry["unsupported"].update(on_logs)
    r_rand = refs.random_return if refs.random_return is not None else policies["random"]["return"]["mean"]
    if refs.optimal_return is not None:
        scale = 100.0 / (refs.optimal_return - r_rand)
        for entry in policies.values():
            entry["normalized_score"] = Estimate.from_dict(entry["return"]).scaled(r_rand, scale).to_dict()
            if "exact" in entry:
                entry["exact"]["normalized_score"] = normalized_score(
                    entry["exact"]["expected_return"], r_rand, refs.optimal_return
                )
        return_range = refs.optimal_return - r_rand
    else:
        return_range = _logged_return_range(ds)
    metrics: dict[str, Any] = {
        "guardrl_version": guardrl.__version__,
        "environment": ctx.env_name,
        "dataset_sha256": ds.content_hash(),
        "evaluation": to_dict(ecfg),
        "return_range": return_range if return_range > 0 else 1.0,
        "unsupported_k": cfg.audit.k,
        "policies": policies,
    }
    if "optimal" in policies:
        metrics["mismatch_floor"] = policies["optimal"]["mismatch"]["rate"]
    if "bc" in policies and "cql" in policies:
        metrics["cql_vs_bc_hazard"] = _compare_hazard(policies["cql"], policies["bc"])
    atomic_write_json(folder.metrics, metrics)
    ctx.plot(
        "returns_with_ci",
        {n: p["return"] for n, p in policies.items()},
        folder.plot("returns"),
        optimal=refs.optimal_return,
    )
    ctx.plot(
        "safety_bars",
        {n: p["hazard_rate"] for n, p in policies.items()},
        {n: p["goal_rate"] for n, p in policies.items()},
        folder.plot("safety"),
    )
    return metrics


def _evaluate_on_logs(ctx: RunContext) -> dict[str, Any]:
    """Without a simulator nothing can be rolled out: per learned policy, how far it strays from the logs
    (mismatch with the logged actions, unsupported actions on the logged states). Return and hazard are
    estimated by the OPE stage."""
    cfg, ds = ctx.cfg, ctx.dataset
    thresholds = MismatchThresholds(ok=cfg.evaluate.mismatch_ok, red=cfg.evaluate.mismatch_red)
    support = ctx.support
    policies: dict[str, Any] = {}
    for name, policy in learned_policies(ctx).items():
        mismatch, on_logs = _agreement_with_logs(policy.greedy(ds.observations), ds, support, thresholds)
        policies[name] = {"mismatch": mismatch, "unsupported": on_logs}
    return_range = _logged_return_range(ds)
    metrics = {
        "guardrl_version": guardrl.__version__,
        "environment": ctx.env_name,
        "evidence": "estimated from logs: no simulator, no rollouts (return and hazard come from OPE)",
        "dataset_sha256": ds.content_hash(),
        "return_range": return_range if return_range > 0 else 1.0,
        "unsupported_k": cfg.audit.k,
        "policies": policies,
    }
    atomic_write_json(ctx.folder.metrics, metrics)
    return metrics


def _agreement_with_logs(
    greedy: np.ndarray, ds: Dataset, support: Support, thresholds: MismatchThresholds
) -> tuple[dict[str, Any], dict[str, Any]]:
    """How far a policy's greedy actions on the logged states stray from the logs: the mismatch with the logged
    actions, and the share of unsupported actions, each with its traffic light."""
    rate = mismatch_rate(greedy, ds.actions)
    logs_rate = float(support.unsupported(ds.observations, greedy).mean())
    return {"rate": rate, "flag": thresholds.flag(rate)}, {
        "logs_rate": logs_rate,
        "logs_flag": thresholds.flag(logs_rate),
    }


def _logged_return_range(ds: Dataset) -> float:
    """The spread of the logged episode returns (the return range when no optimum is known)."""
    returns = ds.episode_returns()
    return float(returns.max() - returns.min()) if len(returns) else 0.0


def _exact_of_greedy(tables: Tables, greedy: Any) -> dict[str, float]:
    """Exact values of a greedy policy on SafeGrid: its action in every cell, then dynamic programming."""
    return evaluate_greedy(tables, greedy).to_dict()


def _compare_hazard(cql: dict[str, Any], bc: dict[str, Any]) -> str:
    c, b = cql["hazard_rate"], bc["hazard_rate"]
    if c["high"] < b["low"]:
        return "cql lower (95% CIs disjoint)"
    if c["mean"] < b["mean"]:
        return "cql lower on the point estimate, CIs overlap"
    if c["low"] > b["high"]:
        return "cql higher (95% CIs disjoint)"
    return "cql not lower on the point estimate, CIs overlap"


def read_metrics(folder: RunFolder) -> dict[str, Any]:
    """The evaluation of a run, or an error naming ``guardrl evaluate``."""
    return folder.read_json(folder.metrics, "evaluate")


# ---------------------------------------------------------------- off-policy evaluation


def ope_targets(ctx: RunContext) -> dict[str, TargetPolicy]:
    """Policies to evaluate from the logs: the learned ones, and with ``ope.validate`` the references."""
    targets = {name: TargetPolicy(name, p.greedy) for name, p in learned_policies(ctx).items()}
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
    from guardrl.evaluate.ope import evaluate_policy, fqe_is_tabular, fqe_model_step

    cfg, ds = ctx.cfg, ctx.dataset
    low, high = ctx.obs_bounds()
    support = ctx.support
    propensities = "logged"
    if np.isnan(ds.propensities).any():
        probs = support.behaviour_probs(ds.observations)
        ds = replace(ds, propensities=probs[np.arange(len(ds)), ds.actions])
        propensities = "estimated from the logged action counts per state (the logs carry no propensities)"
    world_model = ctx.world_model if "model" in cfg.ope.chosen else None
    model_step = None  # the world model's outcomes behind the tabular FQE: the same for every target
    if "fqe" in cfg.ope.chosen and fqe_is_tabular(cfg.ope, support.index) and cfg.needs_world_model:
        model_step = fqe_model_step(cfg.ope, support.index, ctx.world_model, ds.n_actions)
    logged = None  # the logs' transitions by pair, for the model's rollouts: the same for every target
    if world_model is not None and cfg.ope.model_logged_prior is not None:
        from guardrl.train.world_model import LoggedTransitions

        logged = LoggedTransitions.from_dataset(ds, cfg.ope.model_logged_prior)
    horizon = None
    if cfg.ope.horizon is None and not ctx.logs_only:  # a run with an environment knows its step limit
        limit = ctx.tables.layout.max_steps if ctx.is_safegrid else ctx.simulator.max_steps
        horizon = (int(limit), "the environment's step limit")
    estimates = {}
    with make_progress(show_progress) as progress:
        task = progress.add_task("ope", total=len(targets))
        for name, target in targets.items():
            progress.update(task, description=f"ope: {name}")
            estimates[name] = evaluate_policy(
                ds, target, cfg.ope, low, high, grid_size=ctx.grid_size, world_model=world_model,
                unlogged=lambda obs, act: support.action_counts(obs, act) == 0, index=support.index,
                model_step=model_step, horizon=horizon, logged=logged,
            )  # fmt: skip
            progress.advance(task)
    return estimates, propensities


def stage_ope(ctx: RunContext, show_progress: bool = False) -> dict[str, Any]:
    """Estimate each policy's return and cost from the logs alone, compare with the truth, write ``ope.json``.

    The truth is exact on SafeGrid (dynamic programming on the target policy) and the evaluation stage's
    rollouts elsewhere; nothing is rolled out here."""
    cfg, folder = ctx.cfg, ctx.folder
    exact = {r.name: r.exact for r in references(ctx)} if ctx.is_safegrid else {}
    metrics = None if ctx.is_safegrid or ctx.logs_only else read_metrics(folder)
    world_model = ctx.world_model if "model" in cfg.ope.chosen else None
    results: dict[str, Any] = {}
    targets = ope_targets(ctx)
    estimates, propensities = ope_estimates(ctx, targets, show_progress)
    for name, target in targets.items():
        est = estimates[name]
        if ctx.logs_only:
            est["truth_source"] = "none: no simulator (every number here is estimated from the logs)"
        elif ctx.is_safegrid:
            values = exact.get(name) or _exact_of_greedy(ctx.tables, target.greedy)
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
    if not ctx.logs_only:
        out["validation"] = ope_validation(results)
    if world_model is not None:
        out["world_model"] = {"accuracy": world_model.meta["accuracy"], "kind": world_model.kind}
    atomic_write_json(folder.ope, out)
    ctx.plot("ope_vs_truth", results, folder.plot("ope_vs_truth"))
    return out


# ---------------------------------------------------------------- gate


def gate_evidence(ctx: RunContext) -> tuple[list[Evidence], str | None, float]:
    """The gate's inputs, read from the run folder: evidence per candidate, the audit verdict, the return
    range. Candidates are the learners, the imitation policies exported into the run, and the references that
    OPE validated."""
    folder = ctx.folder
    metrics = read_metrics(folder)
    audit_result = folder.read_optional(folder.audit)
    ope = (folder.read_optional(folder.ope) or {}).get("policies", {})
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
                ope=OPEEvidence.from_dict(ope[name]) if name in ope else None,
                unsupported_rate=unsupported_rate,
                unsupported_source=unsupported_source,
                is_bc=name == "bc",
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
    out = gate(*gate_evidence(ctx), ctx.cfg.gate)
    atomic_write_json(ctx.folder.gate, out)
    return out


def assess_candidates(ctx: RunContext, targets: dict[str, TargetPolicy]) -> dict[str, Any]:
    """Off-policy estimates and the gate's decision for policies that are not the run's learners (a benchmark's
    reference candidates), through the same estimators and rules, with the run's BC as their comparison.

    Logs-only runs whose stages up to ``gate`` are done; returns ``{name: {"ope": ..., "gate": ...}}``."""
    if not ctx.logs_only:
        raise RunError("assess_candidates: logs-only runs only (with a simulator the gate reads rollouts)")
    estimates, _ = ope_estimates(ctx, targets)
    candidates, verdict, return_range = gate_evidence(ctx)
    bc = next((c for c in candidates if c.is_bc), None)
    ds = ctx.dataset
    support = ctx.support
    out: dict[str, Any] = {}
    for name, target in targets.items():
        rate = float(support.unsupported(ds.observations, target.greedy(ds.observations)).mean())
        evidence = Evidence(name, ope=OPEEvidence.from_dict(estimates[name]), unsupported_rate=rate,
                            unsupported_source="logs")  # fmt: skip
        out[name] = {"ope": estimates[name], "gate": decide(evidence, bc, verdict, return_range, ctx.cfg.gate)}
    return out


# ---------------------------------------------------------------- report


def stage_report(ctx: RunContext) -> Path:
    """Write ``report.html`` (one self-contained page with every artifact of the run, ending with the deployment
    memo) and the memo alone as ``memo.md``."""
    folder = ctx.folder
    config = to_dict(ctx.cfg)
    artifacts = {
        "audit": folder.read_optional(folder.audit), "training": folder.read_optional(folder.training),
        "metrics": folder.read_optional(folder.metrics), "ope": folder.read_optional(folder.ope),
        "gate": folder.read_optional(folder.gate),
    }  # fmt: skip
    sims = {p.stem: folder.read_optional(p) for p in sorted(folder.rollout_sims.glob("*.json"))}
    memo = report.build_memo(ctx.cfg.name, str(ctx.run_dir), config, rollout_sims=sims, **artifacts)
    html = report.render_html(
        title=f"guardrl run {ctx.cfg.name}", config=config, plots=folder.plots, memo_html=memo.html(), **artifacts
    )
    atomic_write_text(folder.memo, memo.markdown())
    atomic_write_text(folder.report, html)
    return folder.report


# ---------------------------------------------------------------- whole run

STAGES = ("collect", "audit", "model", "train", "evaluate", "ope", "gate", "report")


def run(cfg: RunConfig, runs_dir: Path, overwrite: bool = False, show_progress: bool = True) -> tuple[Path, dict]:
    """Collect, audit, train, evaluate, OPE, gate and report into ``runs_dir/cfg.name``.

    The run is built in a temporary sibling folder and moved into place at the end, so a failed run never
    leaves a half-written folder, and with ``overwrite`` the previous run survives until the new one is done.
    """
    run_dir = Path(runs_dir) / cfg.name
    if run_dir.exists() and not overwrite:
        raise RunError(f"{run_dir} already exists; pass --overwrite or choose another --name")
    out: dict[str, Any] = {}

    def fill(tmp: Path) -> None:
        # plots are drawn in a forked child beside the stages (seconds of matplotlib off the run's critical path)
        with BackgroundWorker(preload="guardrl.report.plots") as plotter:
            fill_stages(RunContext(cfg, RunFolder(tmp), final_root=run_dir, plotter=plotter))

    def fill_stages(ctx: RunContext) -> None:
        timings: dict[str, float] = {}

        def timed(name: str, stage: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            result = stage(ctx, **kwargs)
            timings[name] = time.perf_counter() - t0
            return result

        save_config(cfg, ctx.folder.config)
        if cfg.env.continuous:
            from guardrl.run.continuous import fill_continuous

            metrics = fill_continuous(ctx, timed, show_progress)
        else:
            timed("collect", stage_collect)
            timed("audit", stage_audit)
            if cfg.needs_world_model:
                timed("model", stage_model, show_progress=show_progress)
            timed("train", stage_train, show_progress=show_progress)
            metrics = timed("evaluate", stage_evaluate, show_progress=show_progress)
            timed("ope", stage_ope, show_progress=show_progress)
            timed("gate", stage_gate)
        timed("plots", lambda c: c.plotter.join() if c.plotter is not None else None)
        if cfg.report:
            timed("report", stage_report)
        metrics["timings_seconds"] = timings
        atomic_write_json(ctx.folder.metrics, metrics)
        out["metrics"] = metrics

    atomic_write_dir(run_dir, fill, overwrite=overwrite)
    return run_dir, out["metrics"]
