"""``guardrl run`` and one command per stage (collect, audit, model, train, evaluate, ope, gate, recommend, report,
show), ``guardrl judge`` and ``guardrl sweep``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from guardrl.cli._common import Backend, ConfigOpt, QuietOpt, RunDirArg, app, console, show, user_errors
from guardrl.errors import RunError


def _verdicts(gate: dict[str, Any]) -> str:
    """One line: each candidate's verdict, e.g. ``gate: bc FAIL, morel PASS``."""
    decisions = gate.get("decisions", {})
    return "gate: " + ", ".join(f"{name} {d['decision']}" for name, d in decisions.items())


@app.command("run")
def run_cmd(
    config: ConfigOpt = None,
    name: Annotated[str | None, typer.Option(help="Run name (overrides the config's).")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Folder that holds run folders.")] = Path("runs"),
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run of the same name.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Collect -> audit -> train -> evaluate -> OPE -> gate -> report, into RUNS_DIR/NAME."""
    from dataclasses import replace

    from guardrl.config import load_config
    from guardrl.report import console as tables
    from guardrl.run import RunFolder, run

    with user_errors():
        cfg = load_config(config)
        if name is not None:
            cfg = replace(cfg, name=name)
        run_dir, metrics = run(cfg, runs_dir, overwrite=overwrite, show_progress=not quiet)
    folder = RunFolder(run_dir)
    gate = folder.read_json(folder.gate, "gate")
    console.print(tables.recommendation(folder.read_json(folder.recommendation, "recommend")))
    show(tables.summary(metrics), quiet)
    show(tables.gate(gate), quiet)
    if quiet:
        console.print(_verdicts(gate))
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in metrics["timings_seconds"].items())
    console.print(f"run folder: {run_dir}  ({stages})")
    if folder.report.is_file():
        console.print(f"report: {folder.report}")


@app.command("judge")
def judge_cmd(
    dataset: Annotated[Path, typer.Argument(help="A guardrl dataset (from guardrl import, or a run's dataset/).")],
    policy: Annotated[
        list[str],
        typer.Option(
            "--policy",
            "-p",
            help="A policy to judge: .onnx, .pt (TorchScript), .csv/.parquet table, or "
            "module:function with --allow-code. Repeat for several.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the judgement (a run folder's layout).")],
    config: ConfigOpt = None,
    allow_code: Annotated[bool, typer.Option(help="Allow module:function policies (runs your code).")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing folder at --out.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Judge policies you bring on logs, training nothing: audit, world model, OPE, gate, recommendation, report."""
    from guardrl.report import console as tables
    from guardrl.run import RunFolder
    from guardrl.run.judge import judge

    with user_errors():
        folder = RunFolder(judge(dataset, policy, out, config, allow_code=allow_code, overwrite=overwrite,
                                 show_progress=not quiet))  # fmt: skip
    gate = folder.read_json(folder.gate, "gate")
    console.print(tables.recommendation(folder.read_json(folder.recommendation, "recommend")))
    show(tables.gate(gate), quiet)
    if quiet:
        console.print(_verdicts(gate))
    console.print(f"judgement: {folder.root}  report: {folder.report}")


@app.command("collect")
def collect_cmd(
    run_dir: RunDirArg,
    config: ConfigOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing dataset in the run folder.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Log a behaviour dataset into RUN_DIR/dataset (writes RUN_DIR/config.yaml if it is not there)."""
    from dataclasses import replace

    from guardrl.config import load_config, save_config
    from guardrl.run import RunContext, RunFolder, stage_collect

    folder = RunFolder(run_dir)
    with user_errors():
        if config is None and folder.is_run():
            cfg = folder.read_config()
        else:
            cfg = replace(load_config(config), name=run_dir.name)  # the folder names the run
            if folder.is_run() and not overwrite:
                raise RunError(f"{folder.config} already exists; pass --overwrite to replace it with {config}")
            save_config(cfg, folder.config)
        ds = stage_collect(RunContext(cfg, folder), overwrite=overwrite)
    source = cfg.collect.dataset or cfg.collect.behaviour or cfg.collect.regime
    console.print(
        f"logged {ds.n_episodes} episodes, {len(ds)} transitions ({source}) -> {folder.dataset}; "
        f"hazard episodes: {int(ds.costs.sum())}"
    )


@app.command("audit")
def audit_cmd(
    dataset: Annotated[Path, typer.Argument(help="A guardrl dataset folder (e.g. runs/default/dataset).")],
    config: ConfigOpt = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the full audit as JSON here.")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Audit a dataset's coverage before training: support, distributions, sanity, and a verdict."""
    from guardrl._io import atomic_write_json
    from guardrl.config import load_config
    from guardrl.data.audit import audit, audit_continuous
    from guardrl.data.dataset import load_dataset
    from guardrl.report import console as tables
    from guardrl.run import RunContext, RunFolder, stage_audit

    folder = RunFolder(dataset.parent)
    in_run = dataset.name == folder.dataset.name and folder.is_run()
    with user_errors():
        if in_run:  # a run's dataset: the audit goes where the gate and the report read it
            ctx = RunContext.open(folder, load_config(config) if config else None)
            result = stage_audit(ctx)
        else:
            ds = load_dataset(dataset)
            cfg = load_config(config).audit
            result = audit_continuous(ds, cfg) if ds.is_continuous else audit(ds, cfg)
        if json_out is not None:
            atomic_write_json(json_out, result)
    show(tables.audit(result), quiet)
    if quiet:
        console.print(f"verdict: {result['verdict']['verdict']}")
    if in_run:
        console.print(f"written: {folder.audit}")


@app.command("model")
def model_cmd(run_dir: RunDirArg, quiet: QuietOpt = False) -> None:
    """Fit the world model to RUN_DIR/dataset (after `guardrl audit`); print its held-out accuracy."""
    from guardrl.report import console as tables
    from guardrl.run import RunContext, stage_model

    with user_errors():
        ctx = RunContext.open(run_dir)
        accuracy = stage_model(ctx, show_progress=not quiet)
    show(tables.world_model(accuracy), quiet)
    console.print(f"written: {ctx.folder.world_model}")


@app.command("train")
def train_cmd(run_dir: RunDirArg, quiet: QuietOpt = False) -> None:
    """Train the configured learners on RUN_DIR/dataset; export TorchScript and ONNX policies."""
    from guardrl.run import RunContext, stage_train

    with user_errors():
        results = stage_train(RunContext.open(run_dir), show_progress=not quiet)
    for name, res in results.items():
        console.print(f"{name}: {res.n_steps} steps in {res.seconds:.1f}s ({res.steps_per_second:.0f} steps/s)")


@app.command("evaluate")
def evaluate_cmd(run_dir: RunDirArg, quiet: QuietOpt = False) -> None:
    """Roll out the run's policies and the references on held-out seeds; write metrics.json and plots."""
    from guardrl.report import console as tables
    from guardrl.run import RunContext, RunFolder, stage_evaluate

    with user_errors():
        metrics = stage_evaluate(RunContext.open(run_dir), show_progress=not quiet)
    show(tables.summary(metrics), quiet)
    console.print(f"written: {RunFolder(run_dir).metrics}")


@app.command("ope")
def ope_cmd(
    run_dir: RunDirArg,
    validate: Annotated[
        bool, typer.Option(help="Also estimate reference policies (behaviour, optimal, random, hazard-seeking).")
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Estimate the run's policies from the logs alone (PDIS, WIS, FQE, DR) and compare with the truth."""
    from dataclasses import replace

    from guardrl.report import console as tables
    from guardrl.run import RunContext, stage_ope

    with user_errors():
        ctx = RunContext.open(run_dir)
        if validate:
            ctx = RunContext(replace(ctx.cfg, ope=replace(ctx.cfg.ope, validate=True)), ctx.folder)
        result = stage_ope(ctx, show_progress=not quiet)
    show(tables.ope(result), quiet)
    console.print(f"written: {ctx.folder.ope}")


@app.command("gate")
def gate_cmd(run_dir: RunDirArg, quiet: QuietOpt = False) -> None:
    """PASS / CAUTION / FAIL for each candidate policy, with reasons and evidence, then the recommendation;
    writes gate.json and recommendation.json."""
    from guardrl.report import console as tables
    from guardrl.run import RunContext, stage_gate
    from guardrl.run.judging import stage_recommend

    with user_errors():
        ctx = RunContext.open(run_dir)
        result = stage_gate(ctx)
        rec = stage_recommend(ctx)
    show(tables.gate(result), quiet)
    console.print(_verdicts(result))
    console.print(tables.recommendation(rec))


@app.command("recommend")
def recommend_cmd(run_dir: RunDirArg, quiet: QuietOpt = False) -> None:
    """The policy the evidence recommends (after `guardrl gate`), or none with the reason; writes
    recommendation.json, which `guardrl serve RUN` serves when no --policy is named."""
    from guardrl.report import console as tables
    from guardrl.run import RunContext
    from guardrl.run.judging import stage_recommend

    with user_errors():
        rec = stage_recommend(RunContext.open(run_dir))
    console.print(tables.recommendation(rec))


@app.command("report")
def report_cmd(run_dir: RunDirArg, quiet: QuietOpt = False) -> None:
    """Write RUN_DIR/report.html (one self-contained page, plots embedded) and RUN_DIR/memo.md."""
    from guardrl.run import RunContext, stage_report

    with user_errors():
        path = stage_report(RunContext.open(run_dir))
    console.print(f"report: {path}")


@app.command("show")
def show_cmd(run_dir: RunDirArg, quiet: QuietOpt = False) -> None:
    """Print the comparison table (and the gate, if it ran) of an evaluated run."""
    from guardrl.report import console as tables
    from guardrl.run import RunFolder, read_metrics

    folder = RunFolder(run_dir)
    with user_errors():
        metrics = read_metrics(folder)
        gate = folder.read_optional(folder.gate)
    rec = folder.read_optional(folder.recommendation)
    if rec:
        console.print(tables.recommendation(rec))
    show(tables.summary(metrics), quiet)
    if gate:
        show(tables.gate(gate), quiet)
        if quiet:
            console.print(_verdicts(gate))


@app.command("sweep")
def sweep_cmd(
    config: Annotated[Path, typer.Argument(help="Sweep config (YAML): base, seeds, alphas, learners, regimes.")],
    sweeps_dir: Annotated[Path, typer.Option(help="Folder that holds sweep folders.")] = Path("sweeps"),
    backend: Annotated[Backend | None, typer.Option(help="Where trials run (overrides the config's).")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (overrides the config's).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing sweep of the same name.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Grid of seeds x conservative weight x learner x regime, each trial a full train + evaluate (Ray or not)."""
    from dataclasses import replace

    from guardrl.report import console as tables
    from guardrl.run.sweep import load_sweep_config, run_sweep

    with user_errors():
        cfg = load_sweep_config(config)
        if backend is not None or address is not None:
            cfg = replace(
                cfg, backend=backend.value if backend else cfg.backend, ray_address=address or cfg.ray_address
            )
        out_dir, results = run_sweep(cfg, sweeps_dir, overwrite=overwrite, show_progress=not quiet)
    show(tables.sweep(results, cfg.name), quiet)
    console.print(f"sweep folder: {out_dir}  ({results['wall_seconds']:.1f} s)\nreport: {out_dir / 'report.html'}")
