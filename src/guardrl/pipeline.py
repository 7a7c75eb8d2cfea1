"""The pipeline: collect -> train -> evaluate, each stage reading and writing artifacts in a run folder.

Run folder layout::

    config.yaml            the full RunConfig (every stage reads it from here)
    dataset/               transitions.parquet + metadata.json (guardrl dataset format)
    audit.json             dataset audit: coverage, distributions, sanity findings, verdict
    policies/<name>.pt     TorchScript greedy policy (d3rlpy save_policy)
    policies/<name>.onnx   the same policy as ONNX
    policies/<name>.json   model card: learner config, dataset hash, versions, input/output
    training.json          learning curves, wall time and gradient steps/s per learner
    metrics.json           evaluation: per-policy metrics with CIs, normalized scores, mismatch, support
    ope.json               off-policy estimates (IS, WIS, FQE, DR) of return and cost, with truth if known
    gate.json              PASS / CAUTION / FAIL per candidate with reasons
    report.html            everything above in one self-contained page
    plots/*.png            visitation, rewards, returns, safety, learning curves, OPE vs truth
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

import guardrl
from guardrl import report
from guardrl._io import atomic_write_dir, atomic_write_json, atomic_write_text
from guardrl.config import RunConfig, load_config, save_config, to_dict
from guardrl.data import Dataset, collect, load_dataset
from guardrl.data.audit import Support, audit
from guardrl.data.behaviour import REGIMES
from guardrl.data.collect import collect_gym
from guardrl.envs import (
    TablePolicy,
    Tables,
    build_tables,
    evaluate_exact,
    hazard_seeking_policy,
    solve_optimal,
    states_to_obs,
    stationary,
)
from guardrl.envs.gym_env import (
    GymSimulator,
    SampledBehaviour,
    load_callable,
    rule_events,
    uniform_policy,
)
from guardrl.errors import RunError
from guardrl.evaluate import EvalConfig, MismatchThresholds, mismatch_rate, normalized_score, rollout
from guardrl.evaluate.gate import Evidence, gate
from guardrl.evaluate.metrics import Estimate
from guardrl.evaluate.ope import TargetPolicy, evaluate_policy, rank_correlation
from guardrl.train import ObsBounds, TorchScriptPolicy, TrainResult, export_policy, export_scores, train_all

CONFIG_FILE = "config.yaml"


def grid_size(cfg: RunConfig) -> int | None:
    """The grid side for the one-hot cell encoder, or None for raw observations (``train.encoder``)."""
    return None if cfg.train.encoder == "mlp" or cfg.env.is_gym else cfg.env.build().size


def simulator(cfg: RunConfig) -> GymSimulator:
    """The gymnasium environment of a ``env.gym_id`` run."""
    return GymSimulator(cfg.env.gym_spec())


def behaviour_fn(cfg: RunConfig) -> Any:
    """The user's behaviour policy of a gymnasium run: ``collect.behaviour`` called with its kwargs."""
    assert cfg.collect.behaviour is not None
    factory = load_callable(cfg.collect.behaviour, "collect.behaviour")
    try:
        return factory(**cfg.collect.behaviour_kwargs)
    except TypeError as exc:
        raise RunError(f"collect.behaviour_kwargs: {cfg.collect.behaviour} rejects them ({exc})") from None


def obs_bounds(cfg: RunConfig, ds: Dataset) -> ObsBounds:
    """Input scaling bounds: SafeGrid's grid, or the logged range of each feature."""
    if cfg.env.is_gym:
        return ObsBounds.from_arrays(ds.observations, ds.next_observations)
    size = cfg.env.build().size
    return ObsBounds(np.zeros(2), np.full(2, float(size - 1)))


def encode_discrete_logs(sim: GymSimulator, ds: Dataset, where: str) -> Dataset:
    """Logs of a ``Discrete``-observation env with one state column -> the one-hot observations guardrl uses."""
    encode = sim.encode
    if ds.obs_dim != 1 or encode.kind != "onehot" or encode.dim == 1:
        return ds
    return replace(
        ds,
        observations=encode.indices_to_onehot(ds.observations, f"{where} observation"),
        next_observations=encode.indices_to_onehot(ds.next_observations, f"{where} next observation"),
        provenance={**ds.provenance, "observation_encoding": f"state column -> {encode.describe()}"},
    )


def events_from_rules(cfg: RunConfig, sim: GymSimulator, ds: Dataset) -> Dataset:
    """Imported logs without cost (all zero) or success (all false) get them from the env's rules."""
    cost, success = rule_events(sim.cost_rule, sim.success_rule, ds.rewards, ds.terminations)
    derived: dict[str, Any] = {}
    if success is not None and not ds.successes.any():
        derived["successes"] = np.asarray(success, dtype=bool)
    if cost is not None and not ds.costs.any():
        derived["costs"] = cost
    if not derived:
        return ds
    note = {k: cfg.env.cost_rule if k == "costs" else cfg.env.success_rule for k in derived}
    return replace(ds, **derived, provenance={**ds.provenance, "derived_from_env_rules": note})


def imported_logs(cfg: RunConfig, path: Path) -> Dataset:
    """``collect.dataset``: imported logs fitted to the run's environment, or a clear error if they do not fit.

    On a gymnasium env a one-column discrete state is one-hot encoded and missing events come from the rules.
    """
    where = f"collect.dataset {path}"
    ds = load_dataset(Path(path))
    if cfg.env.is_gym:
        sim = simulator(cfg)
        ds = events_from_rules(cfg, sim, encode_discrete_logs(sim, ds, where))
        obs_dim, n_actions, env = sim.obs_dim, sim.n_actions, f"{cfg.env.gym_id} ({sim.encode.describe()})"
    else:
        obs_dim, n_actions, env = 2, 4, "SafeGrid-v0 ((x, y) observations)"
    if ds.obs_dim != obs_dim or ds.n_actions != n_actions:
        raise RunError(
            f"{where}: {ds.obs_dim} observation features and {ds.n_actions} actions, but {env} has "
            f"{obs_dim} features and {n_actions} actions"
        )
    return ds


def tables_for(cfg: RunConfig) -> Tables:
    return build_tables(cfg.env.build())


def read_run_config(run_dir: Path) -> RunConfig:
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise RunError(f"{path}: missing; run `guardrl collect` (or `guardrl run`) first")
    return load_config(path)


# ---------------------------------------------------------------- collect


def stage_collect(cfg: RunConfig, run_dir: Path, overwrite: bool = False) -> Dataset:
    """Log (or copy in the imported) behaviour dataset into ``run_dir/dataset`` and plot its coverage."""
    c = cfg.collect
    tables = None if cfg.env.is_gym else tables_for(cfg)
    if c.dataset is not None:
        ds = imported_logs(cfg, Path(c.dataset))
    elif cfg.env.is_gym:
        provenance = {
            "environment": cfg.env.gym_id, "gym_kwargs": dict(cfg.env.gym_kwargs),
            "behaviour": c.behaviour, "behaviour_kwargs": dict(c.behaviour_kwargs),
        }  # fmt: skip
        ds = collect_gym(simulator(cfg), behaviour_fn(cfg), c.n_episodes, c.seed, provenance)
    else:
        assert tables is not None
        ds = collect(tables, c.regime, c.n_episodes, c.seed)
    ds.save(Path(run_dir) / "dataset", overwrite=overwrite)
    plot_dir = Path(run_dir) / "plots"
    if tables is None:
        report.reward_histogram(ds.rewards, ds.episode_returns(), plot_dir / "rewards.png")
    else:
        plot_dataset(ds, tables, plot_dir)
    return ds


def plot_dataset(ds: Dataset, tables: Tables, plot_dir: Path) -> None:
    size = tables.layout.size
    xy = np.rint(ds.observations).astype(np.int64)
    counts = np.zeros((size, size), dtype=np.int64)
    np.add.at(counts, (xy[:, 1], xy[:, 0]), 1)
    lay = tables.layout
    report.visitation_heatmap(counts, lay.hazards, lay.start, lay.goal, plot_dir / "state_visitation.png")
    report.reward_histogram(ds.rewards, ds.episode_returns(), plot_dir / "rewards.png")


# ---------------------------------------------------------------- train


def exact_monitor(tables: Tables):
    """Exact value of a greedy policy over all grid cells (learning curves only; never used to select)."""
    all_obs = states_to_obs(tables.layout, np.arange(tables.layout.n_states))

    def monitor(predict) -> dict[str, float]:
        values = evaluate_exact(TablePolicy.deterministic(tables, predict(all_obs)))
        return {"expected_return": values.expected_return, "hazard_prob": values.hazard_prob}

    return monitor


def stage_train(cfg: RunConfig, run_dir: Path, show_progress: bool = True) -> dict[str, TrainResult]:
    """Train every configured learner on the run's dataset; export policies, model cards and curves."""
    run_dir = Path(run_dir)
    ds = _load_run_dataset(run_dir)
    tables = None if cfg.env.is_gym else tables_for(cfg)
    monitor = None if tables is None else exact_monitor(tables)
    results = train_all(
        ds, cfg.train, obs_bounds(cfg, ds), monitor, show_progress=show_progress, grid_size=grid_size(cfg)
    )
    policy_dir = run_dir / "policies"
    training: dict[str, Any] = {}
    for name, res in results.items():
        files = export_policy(res.algo, policy_dir, name)
        files["scores"], kind = export_scores(res.algo, policy_dir, name)
        card = model_card(name, cfg, ds, files)
        card["scores"] = {"file": files["scores"].name, "kind": kind}
        atomic_write_json(policy_dir / f"{name}.json", card)
        training[name] = {
            "seconds": res.seconds,
            "n_steps": res.n_steps,
            "steps_per_second": res.steps_per_second,
            "curve": res.curve,
            "monitor": res.monitor,
        }
    atomic_write_json(run_dir / "training.json", training)
    optimal = None if tables is None else solve_optimal(tables)[1].expected_return
    report.learning_curves(
        {n: t["curve"] for n, t in training.items()},
        {n: t["monitor"] for n, t in training.items()},
        run_dir / "plots" / "learning_curves.png",
        optimal=optimal,
    )
    return results


def model_card(name: str, cfg: RunConfig, ds: Dataset, files: dict[str, Path]) -> dict[str, Any]:
    import d3rlpy
    import torch

    return {
        "policy": name,
        "learner_config": to_dict(getattr(cfg.train, name)),
        "train_seed": cfg.train.seed,
        "dataset_sha256": ds.content_hash(),
        "dataset_provenance": ds.provenance,
        "files": {k: p.name for k, p in files.items()},
        "input": {
            "name": "observation",
            "shape": ["batch", ds.obs_dim],
            "dtype": "float32",
            "meaning": (
                f"{cfg.env.gym_id} observation, encoded as in dataset provenance; scaling is inside the model"
                if cfg.env.is_gym
                else "raw (x, y) cell; scaling is inside the model"
            ),
        },  # fmt: skip
        "output": {"name": "action", "shape": ["batch"], "dtype": "int64", "n_actions": ds.n_actions},
        "versions": {"guardrl": guardrl.__version__, "d3rlpy": d3rlpy.__version__, "torch": torch.__version__},
    }


# ---------------------------------------------------------------- evaluate


def stage_evaluate(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Roll out reference and learned policies on held-out seeds; write metrics.json and plots."""
    run_dir = Path(run_dir)
    ds = _load_run_dataset(run_dir)
    ecfg: EvalConfig = cfg.evaluate
    thresholds = MismatchThresholds(ok=ecfg.mismatch_ok, red=ecfg.mismatch_red)
    refs = _gym_references(cfg) if cfg.env.is_gym else _safegrid_references(cfg, ds)
    rows, greedy_on_logs = refs.rows, refs.greedy_on_logs
    for name in cfg.train.learners:
        path = run_dir / "policies" / f"{name}.pt"
        if not path.is_file():
            raise RunError(f"{path}: missing; run `guardrl train {run_dir}` first")
        policy = TorchScriptPolicy(path)
        rows[name] = [(policy, 1.0)]
        greedy_on_logs[name] = policy.greedy(ds.observations)

    support = Support.from_dataset(ds, cfg.audit)
    policies: dict[str, Any] = {}
    for name, mixture in rows.items():
        res = rollout(refs.simulate, mixture, ecfg, step_check=support.unsupported)
        entry: dict[str, Any] = {k: v.to_dict() for k, v in res.summary.items()}
        policies[name] = entry
        entry["n_episodes"] = int(res.returns.shape[0])
        entry["per_seed"] = res.per_seed()
        rollout_rate = res.flagged_steps / max(res.total_steps, 1)
        entry["unsupported"] = {"rollout_rate": rollout_rate, "rollout_flag": thresholds.flag(rollout_rate)}
        if name in greedy_on_logs:
            rate = mismatch_rate(greedy_on_logs[name], ds.actions)
            entry["mismatch"] = {"rate": rate, "flag": thresholds.flag(rate)}
            logs_rate = float(support.unsupported(ds.observations, greedy_on_logs[name]).mean())
            entry["unsupported"].update({"logs_rate": logs_rate, "logs_flag": thresholds.flag(logs_rate)})
    r_rand = refs.random_return if refs.random_return is not None else policies["random"]["return"]["mean"]
    if refs.optimal_return is not None:
        scale = 100.0 / (refs.optimal_return - r_rand)
        for entry in policies.values():
            entry["normalized_score"] = Estimate(**entry["return"]).scaled(r_rand, scale).to_dict()
        return_range = refs.optimal_return - r_rand
    else:
        returns = ds.episode_returns()
        return_range = float(returns.max() - returns.min()) if len(returns) else 0.0
    metrics: dict[str, Any] = {
        "guardrl_version": guardrl.__version__,
        "environment": cfg.env.gym_id or "SafeGrid-v0",
        "dataset_sha256": ds.content_hash(),
        "evaluation": to_dict(ecfg),
        "return_range": return_range if return_range > 0 else 1.0,
        "unsupported_k": cfg.audit.k,
        "policies": policies,
    }
    if refs.exact is not None:
        metrics["exact"] = refs.exact
        metrics["normalized_score_of_exact_behaviour"] = (
            normalized_score(refs.exact["behaviour"]["expected_return"], r_rand, refs.optimal_return)
            if "behaviour" in refs.exact else None
        )  # fmt: skip
        metrics["mismatch_floor"] = policies["optimal"]["mismatch"]["rate"]
    if "bc" in policies and "cql" in policies:
        metrics["cql_vs_bc_hazard"] = _compare_hazard(policies["cql"], policies["bc"])
    atomic_write_json(run_dir / "metrics.json", metrics)
    plot_dir = run_dir / "plots"
    report.returns_with_ci(
        {n: p["return"] for n, p in policies.items()}, plot_dir / "returns.png", optimal=refs.optimal_return
    )
    report.safety_bars(
        {n: p["hazard_rate"] for n, p in policies.items()},
        {n: p["goal_rate"] for n, p in policies.items()},
        plot_dir / "safety.png",
    )
    return metrics


@dataclass
class _References:
    """What evaluation compares the learned policies with, and how it rolls policies out."""

    simulate: Any
    rows: dict[str, list[tuple[Any, float]]]
    greedy_on_logs: dict[str, np.ndarray]
    optimal_return: float | None = None
    random_return: float | None = None
    exact: dict[str, Any] | None = None


def _safegrid_references(cfg: RunConfig, ds: Dataset) -> _References:
    tables = tables_for(cfg)
    optimal_policy, optimal_exact = solve_optimal(tables)
    random_policy = TablePolicy(tables, np.full((1, tables.layout.n_states, 4), 0.25), name="random")
    exact: dict[str, Any] = {"optimal": optimal_exact.to_dict(), "random": evaluate_exact(random_policy).to_dict()}
    rows: dict[str, list[tuple[Any, float]]] = {}
    if cfg.collect.dataset is None:  # imported logs: the behaviour policy is not known
        behaviour = [(c.policy(tables), c.fraction) for c in REGIMES[cfg.collect.regime]]
        exact["behaviour"] = _mixture_exact(behaviour)
        rows["behaviour"] = behaviour
    rows["random"] = [(random_policy, 1.0)]
    rows["optimal"] = [(optimal_policy, 1.0)]
    greedy = {"optimal": np.argmax(optimal_policy.action_probs(ds.observations, ds.steps), axis=1)}
    return _References(
        simulate=tables, rows=rows, greedy_on_logs=greedy, exact=exact,
        optimal_return=exact["optimal"]["expected_return"], random_return=exact["random"]["expected_return"],
    )  # fmt: skip


def _gym_references(cfg: RunConfig) -> _References:
    sim = simulator(cfg)
    rows: dict[str, list[tuple[Any, float]]] = {}
    if cfg.collect.behaviour is not None and cfg.collect.dataset is None:
        rows["behaviour"] = [(SampledBehaviour(behaviour_fn(cfg), sim), 1.0)]
    rows["random"] = [(uniform_policy(sim.n_actions), 1.0)]
    return _References(simulate=sim.simulate, rows=rows, greedy_on_logs={}, optimal_return=cfg.env.optimal_return)


def _mixture_exact(mixture: list[tuple[TablePolicy, float]]) -> dict[str, float]:
    parts = [(evaluate_exact(p).to_dict(), frac) for p, frac in mixture]
    return {k: sum(v[k] * frac for v, frac in parts) for k in parts[0][0]}


def _compare_hazard(cql: dict[str, Any], bc: dict[str, Any]) -> str:
    c, b = cql["hazard_rate"], bc["hazard_rate"]
    if c["high"] < b["low"]:
        return "cql lower (95% CIs disjoint)"
    if c["mean"] < b["mean"]:
        return "cql lower on the point estimate, CIs overlap"
    if c["low"] > b["high"]:
        return "cql higher (95% CIs disjoint)"
    return "cql not lower on the point estimate, CIs overlap"


def _load_run_dataset(run_dir: Path) -> Dataset:
    path = Path(run_dir) / "dataset"
    if not path.is_dir():
        raise RunError(f"{path}: missing; run `guardrl collect {run_dir}` first")
    return load_dataset(path)


# ---------------------------------------------------------------- audit


def stage_audit(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Audit the run's dataset; write audit.json."""
    run_dir = Path(run_dir)
    result = audit(_load_run_dataset(run_dir), cfg.audit)
    atomic_write_json(run_dir / "audit.json", result)
    return result


# ---------------------------------------------------------------- off-policy evaluation


def _table_target(policy: TablePolicy, deterministic: bool) -> TargetPolicy:
    def probs(obs: np.ndarray) -> np.ndarray:
        return policy.action_probs(obs, np.zeros(len(obs), dtype=np.int64))

    def greedy(obs: np.ndarray) -> np.ndarray:
        return np.argmax(probs(obs), axis=1)

    return TargetPolicy(policy.name, greedy, None if deterministic else probs)


def ope_targets(cfg: RunConfig, run_dir: Path, tables: Tables | None) -> dict[str, tuple[TargetPolicy, Any]]:
    """Policies to evaluate from the logs, each with the policy its truth is rolled out with.

    ``ope.validate`` adds SafeGrid's reference policies (``tables`` must then be given)."""
    targets: dict[str, tuple[TargetPolicy, Any]] = {}
    for name in cfg.train.learners:
        path = Path(run_dir) / "policies" / f"{name}.pt"
        if not path.is_file():
            raise RunError(f"{path}: missing; run `guardrl train {run_dir}` first")
        policy = TorchScriptPolicy(path)
        targets[name] = (TargetPolicy(name, policy.greedy), policy)
    if cfg.ope.validate:
        assert tables is not None
        if cfg.collect.dataset is not None:
            raise RunError("ope.validate: the behaviour reference needs logs collected by guardrl, not imported")
        comps = REGIMES[cfg.collect.regime]
        mix = sum(c.fraction * stationary(c.policy(tables)).probs for c in comps)
        behaviour = TablePolicy(tables, mix, name="behaviour")
        optimal = stationary(solve_optimal(tables)[0], name="optimal")
        random_policy = TablePolicy(tables, np.full((1, tables.layout.n_states, 4), 0.25), name="random")
        for name, pol, det in (
            ("behaviour", behaviour, False), ("optimal", optimal, True),
            ("random", random_policy, False), ("hazard-seeking", hazard_seeking_policy(tables), True),
        ):  # fmt: skip
            targets[name] = (_table_target(TablePolicy(tables, pol.probs, name), det), pol)
    return targets


def stage_ope(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Estimate each policy's return and cost from the logs alone; compare with rollout truth; write ope.json."""
    run_dir = Path(run_dir)
    ds = _load_run_dataset(run_dir)
    tables = None if cfg.env.is_gym else tables_for(cfg)
    sim: Any = simulator(cfg).simulate if tables is None else tables
    bounds = obs_bounds(cfg, ds)
    results: dict[str, Any] = {}
    for name, (target, rollout_policy) in ope_targets(cfg, run_dir, tables).items():
        est = evaluate_policy(ds, target, cfg.ope, bounds.low, bounds.high, grid_size=grid_size(cfg))
        truth = rollout(sim, [(rollout_policy, 1.0)], cfg.evaluate).summary
        est["truth"] = {"return": truth["return"].to_dict(), "cost": truth["hazard_rate"].to_dict()}
        results[name] = est
    out = {"config": to_dict(cfg.ope), "policies": results, "validation": ope_validation(results)}
    atomic_write_json(run_dir / "ope.json", out)
    report.ope_vs_truth(results, run_dir / "plots" / "ope_vs_truth.png")
    return out


def ope_validation(results: dict[str, Any]) -> dict[str, Any]:
    """Per estimator and signal: absolute and relative errors against the truth, and the rank correlation."""
    out: dict[str, Any] = {}
    names = list(results)
    for key in ("return", "cost"):
        if not all(key in results[n]["estimates"] for n in names):
            continue
        for est in results[names[0]]["estimates"][key]:
            truth = np.array([results[n]["truth"][key]["mean"] for n in names])
            value = np.array([results[n]["estimates"][key][est]["mean"] for n in names])
            abs_err = np.abs(value - truth)
            rel = abs_err / np.maximum(np.abs(truth), 1e-9)
            out.setdefault(key, {})[est] = {
                "abs_error": dict(zip(names, abs_err.tolist(), strict=True)),
                "rel_error": dict(zip(names, rel.tolist(), strict=True)),
                "mean_abs_error": float(abs_err.mean()),
                "rank_correlation": rank_correlation(value, truth) if len(names) >= 3 else None,
                "ci_covers_truth": {
                    n: bool(
                        results[n]["estimates"][key][est]["low"]
                        <= results[n]["truth"][key]["mean"]
                        <= results[n]["estimates"][key][est]["high"]
                    )
                    for n in names
                },  # fmt: skip
            }
    return out


# ---------------------------------------------------------------- gate


def stage_gate(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    """PASS / CAUTION / FAIL for every candidate from the run's evidence; write gate.json."""
    run_dir = Path(run_dir)
    metrics = read_metrics(run_dir)
    audit_path, ope_path = run_dir / "audit.json", run_dir / "ope.json"
    audit_verdict = json.loads(audit_path.read_text())["verdict"]["verdict"] if audit_path.is_file() else None
    ope = json.loads(ope_path.read_text())["policies"] if ope_path.is_file() else {}
    return_range = metrics["return_range"]
    candidates = []
    for name in cfg.train.learners:
        p = metrics["policies"].get(name, {})
        sup = p.get("unsupported", {})
        candidates.append(
            Evidence(
                name=name,
                hazard=p.get("hazard_rate"),
                ret=p.get("return"),
                ope=ope.get(name),
                unsupported_rate=sup.get("rollout_rate"),
                is_bc=name == "bc",
            )  # fmt: skip
        )
    references = {name: entry for name, entry in ope.items() if name not in cfg.train.learners}
    if references:
        support = Support.from_dataset(_load_run_dataset(run_dir), cfg.audit)
        tables = tables_for(cfg)
        targets = ope_targets(replace(cfg, ope=replace(cfg.ope, validate=True)), run_dir, tables)
    for name, entry in references.items():
        # reference policies from validation: rollout truth is their simulator evidence
        _, policy = targets[name]
        res = rollout(tables, [(policy, 1.0)], cfg.evaluate, step_check=support.unsupported)
        candidates.append(
            Evidence(
                name=name,
                hazard=res.summary["hazard_rate"].to_dict(),
                ret=res.summary["return"].to_dict(),
                ope=entry,
                unsupported_rate=res.flagged_steps / max(res.total_steps, 1),
            )  # fmt: skip
        )
    out = gate(candidates, audit_verdict, return_range, cfg.gate)
    atomic_write_json(run_dir / "gate.json", out)
    return out


# ---------------------------------------------------------------- report


def stage_report(cfg: RunConfig, run_dir: Path) -> Path:
    """Write report.html: one self-contained page with every artifact of the run."""
    run_dir = Path(run_dir)

    def read(name: str) -> Any:
        path = run_dir / name
        return json.loads(path.read_text()) if path.is_file() else None

    html = report.render_html(
        title=f"guardrl run {cfg.name}",
        config=to_dict(cfg),
        audit=read("audit.json"),
        training=read("training.json"),
        metrics=read("metrics.json"),
        ope=read("ope.json"),
        gate=read("gate.json"),
        plots=run_dir / "plots",
    )
    path = run_dir / "report.html"
    atomic_write_text(path, html)
    return path


# ---------------------------------------------------------------- whole run


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
        timings: dict[str, float] = {}

        def timed(name: str, stage: Any, *args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            result = stage(cfg, tmp, *args, **kwargs)
            timings[name] = time.perf_counter() - t0
            return result

        save_config(cfg, tmp / CONFIG_FILE)
        timed("collect", stage_collect)
        timed("audit", stage_audit)
        timed("train", stage_train, show_progress=show_progress)
        metrics = timed("evaluate", stage_evaluate)
        timed("ope", stage_ope)
        timed("gate", stage_gate)
        if cfg.report:
            timed("report", stage_report)
        metrics["timings_seconds"] = timings
        atomic_write_json(tmp / "metrics.json", metrics)
        out["metrics"] = metrics

    atomic_write_dir(run_dir, fill, overwrite=overwrite)
    return run_dir, out["metrics"]


def read_metrics(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise RunError(f"{path}: missing; run `guardrl evaluate {run_dir}` first")
    return json.loads(path.read_text(encoding="utf-8"))


__all__ = [
    "RunConfig",
    "RunError",
    "read_metrics",
    "read_run_config",
    "run",
    "stage_audit",
    "stage_collect",
    "stage_evaluate",
    "stage_gate",
    "stage_ope",
    "stage_report",
    "stage_train",
]
