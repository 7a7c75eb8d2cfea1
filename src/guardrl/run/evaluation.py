"""The evaluate stage: the run's policies and the references rolled out on held-out seeds (exact values too on
SafeGrid), or, without a simulator, compared with the logs; and the helpers that load what a run judges."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import guardrl
from guardrl._io import atomic_write_json
from guardrl.config import to_dict
from guardrl.data import Dataset
from guardrl.data.audit import Support
from guardrl.envs import TablePolicy, Tables, evaluate_exact, evaluate_greedy, states_to_obs
from guardrl.evaluate import MismatchThresholds, mismatch_rate, normalized_score, rollout
from guardrl.evaluate.metrics import Estimate
from guardrl.progress import make_progress
from guardrl.run.context import RunContext
from guardrl.run.folder import RunFolder
from guardrl.run.references import References, build_references


def judged_policies(ctx: RunContext) -> list[str]:
    """The run's learners, then the imitation policies exported into it (``guardrl dagger`` / ``gail``): what
    evaluation, OPE and the gate judge."""
    portfolio = ctx.folder.read_optional(ctx.folder.portfolio)
    learners = list(portfolio["candidates"]) if portfolio else list(ctx.cfg.train.chosen)
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
    rows = _mixtures(ctx)
    greedy_on_logs: dict[str, Any] = {}
    exact: dict[str, dict[str, float]] = {r.name: r.exact for r in refs if r.exact is not None}
    if "optimal" in refs.items:
        target = refs.items["optimal"].target
        assert target is not None
        greedy_on_logs["optimal"] = target.greedy
    for name, policy in learned_policies(ctx).items():
        greedy_on_logs[name] = policy.greedy
        if ctx.is_safegrid:
            exact[name] = exact_of_target(ctx.tables, policy)

    support = ctx.support
    policies: dict[str, Any] = {}
    results: dict[str, Any] = ctx.on_cluster(_rollout_task, list(rows)) or {}
    rows = {name: mixture for name, mixture in rows.items() if name not in results}
    with make_progress(show_progress) as progress:
        task = progress.add_task("evaluate: rollouts", total=len(rows))
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
            mismatch, on_logs = agreement_with_logs(greedy_on_logs[name], ds, support, thresholds)
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


def _mixtures(ctx: RunContext) -> dict[str, list[tuple[Any, float]]]:
    """What each evaluated policy rolls out: the references' mixtures, then each learned policy alone."""
    rows: dict[str, list[tuple[Any, float]]] = {r.name: r.mixture for r in references(ctx)}
    rows.update({name: [(policy, 1.0)] for name, policy in learned_policies(ctx).items()})
    return rows


def _rollout_task(root: str, cfg: dict[str, Any], name: str) -> Any:
    """One policy's rollouts, run where a Ray task runs, from the run folder at ``root`` (the seeds are the
    config's, so the result is the one a local run gets)."""
    ctx = RunContext.reopened(root, cfg)
    return rollout(ctx.simulate, _mixtures(ctx)[name], ctx.cfg.evaluate, step_check=ctx.support.unsupported)


def _evaluate_on_logs(ctx: RunContext) -> dict[str, Any]:
    """Without a simulator nothing can be rolled out: per learned policy, how far it strays from the logs
    (mismatch with the logged actions, unsupported actions on the logged states). Return and hazard are
    estimated by the OPE stage."""
    cfg, ds = ctx.cfg, ctx.dataset
    thresholds = MismatchThresholds(ok=cfg.evaluate.mismatch_ok, red=cfg.evaluate.mismatch_red)
    support = ctx.support
    policies: dict[str, Any] = {}
    for name, policy in learned_policies(ctx).items():
        mismatch, on_logs = agreement_with_logs(policy.greedy, ds, support, thresholds)
        policies[name] = {"mismatch": mismatch, "unsupported": on_logs}
        if cfg.env.sepsis:  # shown beside the estimates; the gate never reads it
            policies[name]["exact"] = sepsis_exact_of_greedy(policy.greedy)
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
    if cfg.env.sepsis:
        from guardrl.envs.sepsis_exact import evaluate_sepsis, physician_probs

        metrics["behaviour_exact"] = evaluate_sepsis(physician_probs()).to_dict()
        metrics["exact_source"] = "Sepsis-v0's full-state model, by dynamic programming (not read by the gate)"
    atomic_write_json(ctx.folder.metrics, metrics)
    return metrics


def agreement_with_logs(
    greedy_fn: Callable[[np.ndarray], np.ndarray], ds: Dataset, support: Support, thresholds: MismatchThresholds
) -> tuple[dict[str, Any], dict[str, Any]]:
    """How far a policy's greedy actions on the logged states stray from the logs: the mismatch with the logged
    actions, and the share of unsupported actions, each with its traffic light. The policy is asked once per
    distinct logged observation."""

    def greedy_and_unsupported(rows: np.ndarray) -> np.ndarray:
        greedy = np.asarray(greedy_fn(rows))
        return np.stack([greedy, support.unsupported(rows, greedy)], axis=1)

    both = ds.over_observations(greedy_and_unsupported)
    rate = mismatch_rate(both[:, 0], ds.actions)
    logs_rate = float(both[:, 1].mean())
    return {"rate": rate, "flag": thresholds.flag(rate)}, {
        "logs_rate": logs_rate,
        "logs_flag": thresholds.flag(logs_rate),
    }


def _logged_return_range(ds: Dataset) -> float:
    """The spread of the logged episode returns (the return range when no optimum is known)."""
    returns = ds.episode_returns()
    return float(returns.max() - returns.min()) if len(returns) else 0.0


def exact_of_greedy(tables: Tables, greedy: Any) -> dict[str, float]:
    """Exact values of a greedy policy on SafeGrid: its action in every cell, then dynamic programming."""
    return evaluate_greedy(tables, greedy).to_dict()


def exact_of_target(tables: Tables, policy: Any) -> dict[str, float]:
    """Exact values on SafeGrid of a policy with ``greedy`` and, if stochastic, ``probs_fn`` (a user's policy
    judged by ``guardrl judge``, an OPE target): its action probabilities in every cell, then dynamic
    programming."""
    probs_fn = getattr(policy, "probs_fn", None)
    if probs_fn is None:
        return exact_of_greedy(tables, policy.greedy)
    cells = states_to_obs(tables.layout, np.arange(tables.layout.n_states))
    return evaluate_exact(TablePolicy(tables, np.asarray(probs_fn(cells))[None], "judged")).to_dict()


def sepsis_exact_of_greedy(greedy: Any) -> dict[str, float]:
    """Exact values of a greedy policy on Sepsis-v0: its action in each of the 720 observable states, then dynamic
    programming on the full-state model (``hazard_prob`` is mortality, ``goal_prob`` discharge)."""
    from guardrl.envs.sepsis import N_OBS_STATES, obs_vectors
    from guardrl.envs.sepsis_exact import deterministic, evaluate_sepsis

    actions = np.asarray(greedy(obs_vectors(np.arange(N_OBS_STATES))))
    return evaluate_sepsis(deterministic(actions)).to_dict()


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
