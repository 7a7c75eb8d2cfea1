"""The stages of a run: collect -> audit -> model -> train -> evaluate -> OPE -> gate -> report, and ``run``.

Each stage takes the run's :class:`RunContext`, reads what earlier stages wrote into the run folder, and writes
its own artifacts (see :mod:`guardrl.run.folder`). The gate only reads evidence; it never rolls anything out.
Evaluation lives in :mod:`guardrl.run.evaluation`, the off-policy estimates and the gate in
:mod:`guardrl.run.judging`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

import guardrl
from guardrl import report
from guardrl._io import atomic_write_dir, atomic_write_json, atomic_write_text
from guardrl._parallel import BackgroundWorker, ray_session
from guardrl.config import RunConfig, save_config, to_dict
from guardrl.data import Dataset, collect
from guardrl.data.audit import audit
from guardrl.data.collect import collect_gym, collect_sepsis
from guardrl.envs import Tables
from guardrl.envs.sepsis import OBS_NAMES as SEPSIS_OBS
from guardrl.errors import RunError
from guardrl.progress import make_progress
from guardrl.run.context import RunContext
from guardrl.run.evaluation import exact_of_greedy, references, stage_evaluate
from guardrl.run.folder import RunFolder
from guardrl.run.imported import imported_logs
from guardrl.run.judging import stage_gate, stage_ope, stage_recommend
from guardrl.train.config import TABULAR_LEARNERS, learner_kind

# ---------------------------------------------------------------- collect


def stage_collect(ctx: RunContext, overwrite: bool = False) -> Dataset:
    """Log (or copy in the imported) behaviour dataset into the run's ``dataset/`` and plot its coverage."""
    cfg, folder = ctx.cfg, ctx.folder
    c = cfg.collect
    if c.dataset is not None:
        ds = imported_logs(ctx, Path(c.dataset))
    elif cfg.env.sepsis:
        ds = collect_sepsis(c.regime, c.n_episodes, c.seed)
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
    from guardrl.train.world_model_fit import fit_world_model

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
        values = exact_of_greedy(tables, predict)
        return {"expected_return": values["expected_return"], "hazard_prob": values["hazard_prob"]}

    return monitor


def stage_train(ctx: RunContext, show_progress: bool = True) -> dict[str, Any]:
    """Train every configured learner on the run's dataset; export policies, model cards and curves."""
    from guardrl.train import ObsBounds, export_policy, export_scores, train_all
    from guardrl.train.trainer import portfolio_skips

    cfg, folder, ds = ctx.cfg, ctx.folder, ctx.dataset
    monitor = _exact_monitor(ctx.tables) if ctx.is_safegrid else None
    bounds = ObsBounds(*ctx.obs_bounds())
    world_model = ctx.world_model if cfg.train_needs_world_model else None
    skips = portfolio_skips(cfg.train, ds, cfg.audit, world_model)
    results = train_all(
        ds, cfg.train, bounds, monitor, show_progress=show_progress, grid_size=ctx.grid_size,
        audit_cfg=cfg.audit, world_model=world_model, hazard_budget=cfg.gate.hazard_limit,
        state_table=ctx.state_table, skips=skips,
    )  # fmt: skip
    portfolio = {"learners": cfg.train.learners, "candidates": list(results), "skipped": skips}
    atomic_write_json(folder.portfolio, portfolio)
    training: dict[str, Any] = {}
    for name, res in results.items():
        files = export_policy(res.algo, folder.policies, name)
        files["scores"], kind = export_scores(res.algo, folder.policies, name)
        card = model_card(name, ctx, files)
        card["scores"] = {"file": files["scores"].name, "kind": kind}
        if getattr(res.algo, "info", None):  # a tabular planner: its table and its plan under the model
            card["plan"] = res.algo.info
        else:  # a network: how long it trained (BC's length follows the data, bc.stop)
            card["training"] = {"gradient_steps": res.n_steps, "stopped": res.stopped or "planned steps done"}
        atomic_write_json(folder.card(name), card)
        training[name] = {
            "seconds": res.seconds, "n_steps": res.n_steps, "stopped": res.stopped,
            "steps_per_second": res.steps_per_second,
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
    if cfg.env.sepsis:
        levels = ", ".join(SEPSIS_OBS)
        meaning = f"Sepsis-v0 observation: the level of each of {levels}; scaling is inside the model"
    elif cfg.env.logs_only:
        meaning = "the logged observation, as in the dataset; scaling is inside the model"
    elif cfg.env.is_gym:
        meaning = f"{cfg.env.gym_id} observation, encoded as in dataset provenance; scaling is inside the model"
    else:
        meaning = "raw (x, y) cell; scaling is inside the model"
    return {
        "policy": name,
        "learner": learner_kind(name),
        "learner_config": to_dict(cfg.train.config_of(name)),
        "train_seed": cfg.train.seed,
        "dataset_sha256": ds.content_hash(),
        "dataset_provenance": ds.provenance,
        "files": {k: p.name for k, p in files.items()},
        "input": {
            "name": "observation",
            "shape": ["batch", ds.obs_dim],
            "dtype": "float32",
            "meaning": meaning,
            "encoder": _encoder_of(name, ctx),
        },  # fmt: skip
        "output": {"name": "action", "shape": ["batch"], "dtype": "int64", "n_actions": ds.n_actions},
        "versions": {"guardrl": guardrl.__version__, "d3rlpy": d3rlpy.__version__, "torch": torch.__version__},
    }


def _encoder_of(name: str, ctx: RunContext) -> str:
    """How the policy reads its input, in words (the tabular learners look the state up in the audit's index)."""
    if learner_kind(name) in TABULAR_LEARNERS:
        return "the audit's state index (a lookup table)"
    if ctx.grid_size is not None:
        return f"one-hot of the (x, y) cell of the {ctx.grid_size}x{ctx.grid_size} grid"
    table = None if ctx.cfg.env.continuous else ctx.state_table
    if table is not None:
        return f"embedding of the nearest of the {len(table)} logged observations"
    return "MLP on the scaled observation"


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
    recommendation = folder.read_optional(folder.recommendation)
    memo = report.build_memo(ctx.cfg.name, str(ctx.run_dir), config, rollout_sims=sims,
                             recommendation=recommendation, **artifacts)  # fmt: skip
    html = report.render_html(
        title=f"guardrl run {ctx.cfg.name}", config=config, plots=folder.plots, memo_html=memo.html(),
        recommendation=recommendation, **artifacts,
    )  # fmt: skip
    atomic_write_text(folder.memo, memo.markdown())
    atomic_write_text(folder.report, html)
    return folder.report


# ---------------------------------------------------------------- whole run

STAGES = ("collect", "audit", "model", "train", "evaluate", "ope", "gate", "recommend", "report")


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
        with BackgroundWorker(preload="guardrl.report.plots") as plotter, ray_session(cfg.ray.resolved()) as ray:
            out["parallel"] = ray if ray is not None else {"backend": "local processes"}
            fill_stages(RunContext(cfg, RunFolder(tmp), final_root=run_dir, plotter=plotter))

    def fill_stages(ctx: RunContext) -> None:
        timings: dict[str, float] = {}

        def timed(name: str, stage: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            result = stage(ctx, **kwargs)
            timings[name] = time.perf_counter() - t0
            return result

        def shown(name: str, stage: Any, what: Any) -> Any:
            # stages with no bar of their own: a line with what they work on and the time they take
            with make_progress(show_progress) as progress:
                task = progress.add_task(f"{name}: {what()}", total=1)
                result = timed(name, stage)
                progress.advance(task)
                return result

        save_config(cfg, ctx.folder.config)
        if cfg.env.continuous:
            from guardrl.run.continuous import fill_continuous

            metrics = fill_continuous(ctx, timed, show_progress)
        else:
            shown("collect", stage_collect, lambda: "reading the logs" if cfg.collect.dataset else "logging")
            size = lambda: f"{len(ctx.dataset):,} transitions, {ctx.dataset.n_episodes:,} episodes"  # noqa: E731
            shown("audit", stage_audit, size)
            if cfg.needs_world_model:
                timed("model", stage_model, show_progress=show_progress)
            timed("train", stage_train, show_progress=show_progress)
            metrics = timed("evaluate", stage_evaluate, show_progress=show_progress)
            timed("ope", stage_ope, show_progress=show_progress)
            timed("gate", stage_gate)
        timed("recommend", stage_recommend)
        timed("plots", lambda c: c.plotter.join() if c.plotter is not None else None)
        if cfg.report:
            timed("report", stage_report)
        metrics["timings_seconds"] = timings
        metrics["parallel"] = out["parallel"]  # where the parallel work ran (a Ray cluster: its nodes, tasks)
        atomic_write_json(ctx.folder.metrics, metrics)
        out["metrics"] = metrics

    atomic_write_dir(run_dir, fill, overwrite=overwrite)
    return run_dir, out["metrics"]
