"""Sweeps: seeds x conservative weight x learner x dataset regime, each trial a full collect + train + evaluate.

Any run world sweeps: SafeGrid and gymnasium envs with the discrete learners (``alphas``: discrete CQL's
``train.cql.alpha``), SafeNav and MuJoCo tasks (``base: {env: safenav}``) with the continuous ones (``alphas``:
CQL's ``train.continuous.conservative_weight``; regimes are that world's, D4RL's levels on MuJoCo). A continuous
trial trains BC beside its learner, as every continuous run does, and reports its learner's row.

Trials run as Ray tasks (``backend: ray``, or ``auto`` when Ray is installed): on a local Ray instance by
default, or on an existing cluster given its ``ray_address``. Without Ray they run one after another in this
process. Both give the same numbers: each trial is a pure function of its config.

A sweep config (YAML)::

    name: cql-alpha
    base: {collect: {n_episodes: 500}}   # run-config keys applied to every trial (same schema as guardrl run)
    seeds: [0, 1, 2]                     # dataset seed = training seed of the trial
    alphas: [0.3, 1.0, 3.0]              # CQL's conservative weight; other learners ignore it
    learners: [bc, cql]
    regimes: [safe, noisy]
    backend: auto                        # auto | ray | sequential
    ray_address: null                    # null: a local Ray instance; "auto" or "ray://host:10001": a cluster

Output folder ``sweeps/<name>/``: ``sweep.yaml`` (the full sweep config), ``results.json`` (one row per trial
and the grouped table), ``results.md``, ``tradeoff.png`` (hazard rate against normalized score per
conservative weight) and ``report.html``.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import yaml

from guardrl import report
from guardrl._io import atomic_write_dir, atomic_write_json, atomic_write_text
from guardrl._parallel import connect_ray, own_sigterm
from guardrl.config import Regime, RunConfig, from_dict, load_yaml, save_config, to_dict
from guardrl.errors import ConfigError, OutputExistsError
from guardrl.progress import make_progress
from guardrl.run.context import RunContext
from guardrl.run.evaluation import stage_evaluate
from guardrl.run.folder import RunFolder
from guardrl.run.stages import stage_collect, stage_train
from guardrl.train.config import Learner

Backend = Literal["auto", "ray", "sequential"]
BACKENDS: tuple[str, ...] = get_args(Backend)


@dataclass(frozen=True)
class SweepConfig:
    """The grid of a sweep and where it runs."""

    name: str = "sweep"
    base: dict[str, Any] = field(default_factory=dict)
    """Run-config keys applied to every trial."""
    seeds: tuple[int, ...] = (0, 1, 2)
    alphas: tuple[float, ...] = (0.3, 1.0, 3.0)
    learners: tuple[Learner, ...] = ("bc", "cql")
    regimes: tuple[Regime, ...] = ("safe",)
    backend: Backend = "auto"
    ray_address: str | None = None
    num_cpus: int | None = None
    """Local Ray: CPUs to give it (default: all)."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend: {self.backend!r} is not one of {', '.join(BACKENDS)}")
        for key in ("seeds", "alphas", "learners", "regimes"):
            if not getattr(self, key):
                raise ConfigError(f"{key}: must list at least one value")
        self.base_config()  # a bad base is an error now, not in the middle of a sweep

    def base_config(self) -> RunConfig:
        try:
            return from_dict(RunConfig, self.base, "base")
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"base: {exc}") from None

    def trials(self) -> list[dict[str, Any]]:
        """One trial per grid point; the conservative weight only multiplies trials of CQL."""
        out = []
        for regime, learner, seed in itertools.product(self.regimes, self.learners, self.seeds):
            for alpha in self.alphas if learner == "cql" else (None,):
                out.append({"regime": regime, "learner": learner, "alpha": alpha, "seed": seed})
        return out


def load_sweep_config(path: Path) -> SweepConfig:
    return load_yaml(SweepConfig, Path(path), "sweep config")


def trial_config(base: RunConfig, trial: dict[str, Any]) -> RunConfig:
    """The run config of one trial."""
    alpha = "" if trial["alpha"] is None else f"-a{trial['alpha']:g}"
    learner = trial["learner"]
    # a continuous run gates every candidate against BC, so it trains BC too
    learners: tuple[Learner, ...] = ("bc", learner) if base.env.continuous and learner != "bc" else (learner,)
    train = replace(base.train, learners=learners, seed=trial["seed"])
    if trial["alpha"] is not None and base.env.continuous:
        train = replace(train, continuous=replace(train.continuous, conservative_weight=float(trial["alpha"])))
    elif trial["alpha"] is not None:
        train = replace(train, cql=replace(train.cql, alpha=float(trial["alpha"])))
    return replace(
        base,
        name=f"{trial['learner']}-{trial['regime']}{alpha}-s{trial['seed']}",
        collect=replace(base.collect, regime=trial["regime"], seed=trial["seed"]),
        train=train,
    )


def run_trial(cfg_dict: dict[str, Any], trial: dict[str, Any]) -> dict[str, Any]:
    """Collect, train and evaluate one trial in a scratch folder; return its row. Runs in Ray workers too."""
    cfg = from_dict(RunConfig, cfg_dict)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="guardrl-trial-") as tmp:
        ctx = RunContext(cfg, RunFolder(Path(tmp)))
        save_config(cfg, ctx.folder.config)
        metrics = _continuous_trial(ctx) if cfg.env.continuous else _discrete_trial(ctx)
    p = metrics["policies"][trial["learner"]]
    return {
        **trial,
        "name": cfg.name,
        "return": p["return"],
        "normalized_score": p.get("normalized_score"),
        "hazard_rate": p["hazard_rate"],
        "goal_rate": p["goal_rate"],
        "n_episodes": p["n_episodes"] if "n_episodes" in p else p["episodes"],
        "seconds": time.perf_counter() - start,
    }


def _discrete_trial(ctx: RunContext) -> dict[str, Any]:
    stage_collect(ctx)
    stage_train(ctx, show_progress=False)
    return stage_evaluate(ctx)


def _continuous_trial(ctx: RunContext) -> dict[str, Any]:
    """Collect, train and roll out (no off-policy estimates, gate or report: a sweep compares rollouts)."""
    from guardrl.data.continuous_support import ContinuousSupport
    from guardrl.run.continuous import collect_stage, evaluate_stage, train_stage

    ds = collect_stage(ctx)
    actors = train_stage(ctx, ds, show_progress=False)
    return evaluate_stage(ctx, ds, actors, ContinuousSupport(ds))


def _ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def _run_sequential(jobs: list[tuple[dict, dict]], show_progress: bool) -> list[dict[str, Any]]:
    rows = []
    with make_progress(show_progress) as progress:
        task = progress.add_task("sweep (sequential)", total=len(jobs))
        for cfg_dict, trial in jobs:
            rows.append(run_trial(cfg_dict, trial))
            progress.advance(task)
    return rows


def _run_ray(jobs: list[tuple[dict, dict]], cfg: SweepConfig, show_progress: bool) -> list[dict[str, Any]]:
    import ray

    # ray.init installs a SIGTERM handler (for its own clean-up) and leaves it behind after shutting down, or
    # after failing to connect: this process gets its own back when the sweep is over
    with own_sigterm():
        started_here = not ray.is_initialized()
        if started_here:
            if cfg.ray_address:
                connect_ray(ray, cfg.ray_address)
            else:
                ray.init(num_cpus=cfg.num_cpus, include_dashboard=False, log_to_driver=False)
        try:
            remote = ray.remote(num_cpus=1)(run_trial)
            refs = [remote.remote(cfg_dict, trial) for cfg_dict, trial in jobs]
            order = {ref: i for i, ref in enumerate(refs)}
            rows: list[dict[str, Any] | None] = [None] * len(refs)
            pending = list(refs)
            with make_progress(show_progress) as progress:
                task = progress.add_task("sweep (ray)", total=len(refs))
                while pending:
                    done, pending = ray.wait(pending, num_returns=1)
                    for ref in done:
                        rows[order[ref]] = ray.get(ref)
                        progress.advance(task)
            return [r for r in rows if r is not None]
        finally:
            if started_here:
                ray.shutdown()


def run_sweep(
    cfg: SweepConfig, sweeps_dir: Path, overwrite: bool = False, show_progress: bool = True
) -> tuple[Path, dict[str, Any]]:
    """Run every trial of the sweep, then write the results table, trade-off plot and report."""
    backend = cfg.backend
    if backend == "auto":
        backend = "ray" if _ray_available() else "sequential"
    elif backend == "ray" and not _ray_available():
        raise ConfigError("backend: ray is not installed (pip install 'guardrl[ray]'), or use backend: sequential")
    base = cfg.base_config()
    trials = cfg.trials()
    jobs = [(to_dict(trial_config(base, t)), t) for t in trials]
    for cfg_dict, _ in jobs:
        from_dict(RunConfig, cfg_dict)  # every trial config is valid before any trial starts
    out_dir = Path(sweeps_dir) / cfg.name
    if out_dir.exists() and not overwrite:
        raise OutputExistsError(f"{out_dir} already exists; pass --overwrite or choose another name")
    start = time.perf_counter()
    rows = _run_ray(jobs, cfg, show_progress) if backend == "ray" else _run_sequential(jobs, show_progress)
    results = {
        "sweep": to_dict(cfg),
        "backend": backend,
        "wall_seconds": time.perf_counter() - start,
        "trials": rows,
        "table": group(rows),
    }

    def fill(tmp: Path) -> None:
        atomic_write_text(tmp / "sweep.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
        atomic_write_json(tmp / "results.json", results)
        atomic_write_text(tmp / "results.md", markdown_table(results["table"]))
        report.tradeoff_plot(results["table"], tmp / "tradeoff.png")
        atomic_write_text(tmp / "report.html", report.render_sweep_html(cfg.name, results, tmp / "tradeoff.png"))

    atomic_write_dir(out_dir, fill, overwrite=overwrite)
    return out_dir, results


def group(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean, min and max over seeds per (regime, learner, alpha)."""
    keys: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        keys.setdefault((r["regime"], r["learner"], r["alpha"]), []).append(r)
    table = []
    for (regime, learner, alpha), rs in keys.items():
        entry: dict[str, Any] = {"regime": regime, "learner": learner, "alpha": alpha, "n_seeds": len(rs)}
        for metric in ("normalized_score", "hazard_rate", "goal_rate", "return"):
            values = np.array([r[metric]["mean"] for r in rs if r.get(metric) is not None], dtype=float)
            entry[metric] = (
                {"mean": float(values.mean()), "min": float(values.min()), "max": float(values.max())}
                if values.size else None
            )  # fmt: skip
        table.append(entry)
    return table


def markdown_table(table: list[dict[str, Any]]) -> str:
    from guardrl.evaluate.metrics import format_interval

    def spread(e: dict[str, float] | None, pct: bool = False) -> str:
        return format_interval(e, pct=pct, missing="–", spread=True)

    lines = [
        "| regime | learner | alpha | seeds | normalized score | hazard % | goal % |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in table:
        alpha = "–" if e["alpha"] is None else f"{e['alpha']:g}"
        lines.append(
            f"| {e['regime']} | {e['learner']} | {alpha} | {e['n_seeds']} | {spread(e['normalized_score'])} | "
            f"{spread(e['hazard_rate'], pct=True)} | {spread(e['goal_rate'], pct=True)} |"
        )
    return "\n".join(lines) + "\n\nMean over seeds, [min, max] across seeds.\n"


__all__ = ["SweepConfig", "load_sweep_config", "run_sweep", "run_trial", "trial_config", "group", "BACKENDS"]
