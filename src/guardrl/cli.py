"""Command line: ``guardrl run`` for the whole pipeline, and one command per stage."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from guardrl.config import ConfigError, load_config, save_config
from guardrl.data import DatasetError
from guardrl.pipeline import (
    CONFIG_FILE,
    RunError,
    read_metrics,
    read_run_config,
    run,
    stage_collect,
    stage_evaluate,
    stage_train,
)
from guardrl.train import LearnerConfigError

app = typer.Typer(
    help="guardrl: train policies from logged data only, and measure whether they are safe enough to try.",
    no_args_is_help=True,
    add_completion=False,
)
# at least 120 columns, so the comparison table stays one row per policy in logs and pipes too
console = Console(width=max(120, shutil.get_terminal_size().columns))
err_console = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML run config; missing keys take the built-in defaults.")
]
RunDirArg = Annotated[Path, typer.Argument(help="Run folder (holds config.yaml and the stage artifacts).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]

_USER_ERRORS = (ConfigError, RunError, DatasetError, LearnerConfigError, FileExistsError, ValueError)


def _fail(exc: Exception) -> None:
    err_console.print(f"[bold red]error:[/] {exc}", soft_wrap=True, markup=True, highlight=False)
    raise typer.Exit(code=2)


def _interval(entry: dict[str, float], pct: bool = False, digits: int = 1) -> str:
    f = 100.0 if pct else 1.0
    return f"{entry['mean'] * f:.{digits}f} [{entry['low'] * f:.{digits}f}, {entry['high'] * f:.{digits}f}]"


def summary_table(metrics: dict[str, Any]) -> Table:
    """The per-policy comparison as a rich table."""
    table = Table(title="guardrl evaluation (95% bootstrap CIs)")
    for col in ("policy", "return", "normalized", "hazard %", "goal %", "length", "mismatch"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for name, p in metrics["policies"].items():
        mismatch = p.get("mismatch")
        table.add_row(
            name,
            _interval(p["return"], digits=2),
            _interval(p["normalized_score"]),
            _interval(p["hazard_rate"], pct=True),
            _interval(p["goal_rate"], pct=True),
            f"{p['length']['mean']:.1f}",
            f"{mismatch['rate'] * 100:.1f}% ({mismatch['flag']})" if mismatch else "-",
        )
    return table


def _print_summary(metrics: dict[str, Any]) -> None:
    console.print(summary_table(metrics))
    ex = metrics["exact"]["optimal"]
    console.print(
        f"exact optimum: return {ex['expected_return']:.2f}, hazard {ex['hazard_prob']:.1e}; "
        f"mismatch floor (optimal policy vs logged actions): {metrics['mismatch_floor'] * 100:.1f}%"
    )
    if "cql_vs_bc_hazard" in metrics:
        console.print(f"CQL vs BC on hazard rate: {metrics['cql_vs_bc_hazard']}")


@app.command("run")
def run_cmd(
    config: ConfigOpt = None,
    name: Annotated[str | None, typer.Option(help="Run name (overrides the config's).")] = None,
    runs_dir: Annotated[Path, typer.Option(help="Folder that holds run folders.")] = Path("runs"),
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run of the same name.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Collect -> train BC and CQL -> evaluate, into RUNS_DIR/NAME, and print the comparison."""
    try:
        cfg = load_config(config)
        if name is not None:
            from dataclasses import replace

            cfg = replace(cfg, name=name)
        run_dir, metrics = run(cfg, runs_dir, overwrite=overwrite, show_progress=not quiet)
    except _USER_ERRORS as exc:
        _fail(exc)
        return
    _print_summary(metrics)
    t = metrics["timings_seconds"]
    console.print(
        f"run folder: {run_dir}  (collect {t['collect']:.1f}s, train {t['train']:.1f}s, evaluate {t['evaluate']:.1f}s)"
    )


@app.command("collect")
def collect_cmd(
    run_dir: RunDirArg,
    config: ConfigOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing dataset in the run folder.")] = False,
) -> None:
    """Log a behaviour dataset into RUN_DIR/dataset (writes RUN_DIR/config.yaml if it is not there)."""
    try:
        cfg_path = run_dir / CONFIG_FILE
        if config is None and cfg_path.is_file():
            cfg = read_run_config(run_dir)
        else:
            cfg = load_config(config)
            if cfg_path.is_file() and not overwrite:
                raise RunError(f"{cfg_path} already exists; pass --overwrite to replace it with {config}")
            save_config(cfg, cfg_path)
        ds = stage_collect(cfg, run_dir, overwrite=overwrite)
    except _USER_ERRORS as exc:
        _fail(exc)
        return
    console.print(
        f"logged {ds.n_episodes} episodes, {len(ds)} transitions ({cfg.collect.regime}) "
        f"-> {run_dir / 'dataset'}; hazard episodes: {int(ds.costs.sum())}"
    )


@app.command("train")
def train_cmd(run_dir: RunDirArg, quiet: QuietOpt = False) -> None:
    """Train the configured learners on RUN_DIR/dataset; export TorchScript and ONNX policies."""
    try:
        results = stage_train(read_run_config(run_dir), run_dir, show_progress=not quiet)
    except _USER_ERRORS as exc:
        _fail(exc)
        return
    for name, res in results.items():
        console.print(f"{name}: {res.n_steps} steps in {res.seconds:.1f}s ({res.steps_per_second:.0f} steps/s)")


@app.command("evaluate")
def evaluate_cmd(run_dir: RunDirArg) -> None:
    """Roll out the run's policies and the references on held-out seeds; write metrics.json and plots."""
    try:
        metrics = stage_evaluate(read_run_config(run_dir), run_dir)
    except _USER_ERRORS as exc:
        _fail(exc)
        return
    _print_summary(metrics)


@app.command("show")
def show_cmd(run_dir: RunDirArg) -> None:
    """Print the comparison table of an evaluated run."""
    try:
        _print_summary(read_metrics(run_dir))
    except _USER_ERRORS as exc:
        _fail(exc)


def main() -> None:  # pragma: no cover - console-script entry
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
