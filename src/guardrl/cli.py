"""Command line: ``guardrl run`` for the whole pipeline, and one command per stage.

Only typer and rich load with this module; each command imports the stages it runs, so ``guardrl --help``, a
typo or a bad option answer at once instead of after torch and d3rlpy have loaded.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from guardrl.errors import OutputError, RunError  # no heavy imports: the stages load inside their commands

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

# ConfigError, DatasetError, ImportValidationError, ServeError, ... derive from ValueError
_USER_ERRORS = (ValueError, FileExistsError, RunError, OutputError)


def _fail(exc: BaseException) -> None:
    err_console.print(f"[bold red]error:[/] {exc}", soft_wrap=True, markup=True, highlight=False)
    raise typer.Exit(code=2)


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Print a user error and exit with status 2; anything else propagates with its traceback."""
    try:
        yield
    except _USER_ERRORS as exc:
        _fail(exc)


def _version(value: bool) -> None:
    if value:
        from guardrl import __version__

        console.print(f"guardrl {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """guardrl: train policies from logged data only, and measure whether they are safe enough to try."""


def _interval(entry: dict[str, float], pct: bool = False, digits: int = 1) -> str:
    f = 100.0 if pct else 1.0
    return f"{entry['mean'] * f:.{digits}f} [{entry['low'] * f:.{digits}f}, {entry['high'] * f:.{digits}f}]"


def summary_table(metrics: dict[str, Any]) -> Table:
    """The per-policy comparison as a rich table."""
    table = Table(title="guardrl evaluation (95% bootstrap CIs)")
    for col in ("policy", "return", "normalized", "hazard %", "goal %", "length", "mismatch", "unsupp. logs/own"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for name, p in metrics["policies"].items():
        mismatch = p.get("mismatch")
        table.add_row(
            name,
            _interval(p["return"], digits=2),
            _interval(p["normalized_score"]) if "normalized_score" in p else "-",
            _interval(p["hazard_rate"], pct=True),
            _interval(p["goal_rate"], pct=True),
            f"{p['length']['mean']:.1f}",
            f"{mismatch['rate'] * 100:.1f}%" if mismatch else "-",
            _unsupported(p.get("unsupported")),
        )
    return table


def _unsupported(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "-"
    logs = f"{entry['logs_rate'] * 100:.1f}%" if "logs_rate" in entry else "-"
    return f"{logs} / {entry['rollout_rate'] * 100:.1f}%"


def _print_summary(metrics: dict[str, Any]) -> None:
    console.print(summary_table(metrics))
    console.print("traffic light for mismatch and unsupported-action rates: < 10% ok, 10-20% caution, > 20% red")
    if "exact" in metrics:
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
    """Collect -> audit -> train -> evaluate -> OPE -> gate -> report, into RUNS_DIR/NAME."""
    from guardrl.config import load_config
    from guardrl.pipeline import run

    with _user_errors():
        cfg = load_config(config)
        if name is not None:
            from dataclasses import replace

            cfg = replace(cfg, name=name)
        run_dir, metrics = run(cfg, runs_dir, overwrite=overwrite, show_progress=not quiet)
    _print_summary(metrics)
    _print_gate(json.loads((run_dir / "gate.json").read_text()))
    t = metrics["timings_seconds"]
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in t.items())
    console.print(f"run folder: {run_dir}  ({stages})")
    if (run_dir / "report.html").is_file():
        console.print(f"report: {run_dir / 'report.html'}")


@app.command("collect")
def collect_cmd(
    run_dir: RunDirArg,
    config: ConfigOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing dataset in the run folder.")] = False,
) -> None:
    """Log a behaviour dataset into RUN_DIR/dataset (writes RUN_DIR/config.yaml if it is not there)."""
    from guardrl.config import load_config, save_config
    from guardrl.pipeline import CONFIG_FILE, read_run_config, stage_collect

    with _user_errors():
        cfg_path = run_dir / CONFIG_FILE
        if config is None and cfg_path.is_file():
            cfg = read_run_config(run_dir)
        else:
            from dataclasses import replace

            cfg = replace(load_config(config), name=run_dir.name)  # the folder names the run
            if cfg_path.is_file() and not overwrite:
                raise RunError(f"{cfg_path} already exists; pass --overwrite to replace it with {config}")
            save_config(cfg, cfg_path)
        ds = stage_collect(cfg, run_dir, overwrite=overwrite)
    console.print(
        f"logged {ds.n_episodes} episodes, {len(ds)} transitions ({cfg.collect.regime}) "
        f"-> {run_dir / 'dataset'}; hazard episodes: {int(ds.costs.sum())}"
    )


@app.command("train")
def train_cmd(run_dir: RunDirArg, quiet: QuietOpt = False) -> None:
    """Train the configured learners on RUN_DIR/dataset; export TorchScript and ONNX policies."""
    from guardrl.pipeline import read_run_config, stage_train

    with _user_errors():
        results = stage_train(read_run_config(run_dir), run_dir, show_progress=not quiet)
    for name, res in results.items():
        console.print(f"{name}: {res.n_steps} steps in {res.seconds:.1f}s ({res.steps_per_second:.0f} steps/s)")


@app.command("evaluate")
def evaluate_cmd(run_dir: RunDirArg) -> None:
    """Roll out the run's policies and the references on held-out seeds; write metrics.json and plots."""
    from guardrl.pipeline import read_run_config, stage_evaluate

    with _user_errors():
        metrics = stage_evaluate(read_run_config(run_dir), run_dir)
    _print_summary(metrics)


@app.command("show")
def show_cmd(run_dir: RunDirArg) -> None:
    """Print the comparison table of an evaluated run."""
    from guardrl.pipeline import read_metrics

    with _user_errors():
        _print_summary(read_metrics(run_dir))


def _print_audit(result: dict[str, Any]) -> None:
    v = result["verdict"]
    color = {"offline-RL-ready": "green", "BC-only": "yellow"}.get(v["verdict"], "red")
    size = result["size"]
    console.print(f"{size['transitions']} transitions, {size['episodes']} episodes, {size['n_actions']} actions")
    if "coverage" in result:
        cov, ends, prop = result["coverage"], result["episode_ends"], result["propensities"]
        table = Table(title="dataset audit")
        table.add_column("measure")
        table.add_column("value", justify="right")
        k = result["config"]["k"]
        for label, value in (
            ("visited states", f"{cov['visited_states']} ({cov['state_mode']})"),
            (f"transitions in states logged >= {k} times", f"{cov['covered_share']:.1%}"),
            (f"transitions in states with >= 2 actions logged >= {k} times", f"{cov['choice_share']:.1%}"),
            (f"visited states with an action logged < {k} times", f"{cov['states_with_thin_action']:.1%}"),
            ("logged action counts", str(cov["action_counts"])),
            ("reward mean / std", f"{result['distributions']['reward']['mean']:.3g} / "
                                  f"{result['distributions']['reward']['std']:.3g}"),
            ("episode return mean", f"{result['distributions']['episode_return']['mean']:.2f}"),
            ("episode length mean", f"{result['distributions']['episode_length']['mean']:.1f}"),
            ("ends: termination / truncation / unended",
             f"{ends['termination']} / {ends['truncation']} / {ends['unended']}"),
            ("ends: goal / hazard", f"{ends['goal']} / {ends['hazard']}"),
            ("min propensity / share < 0.05", f"{prop['min']:.3f} / {prop['share_below_0.05']:.1%}"),
        ):  # fmt: skip
            table.add_row(label, value)
        console.print(table)
        for finding in result["sanity"]:
            console.print(f"[yellow]sanity:[/] {finding}")
    console.print(f"verdict: [bold {color}]{v['verdict']}[/]")
    for reason in v["reasons"]:
        console.print(f"  - {reason}")


def _print_gate(result: dict[str, Any]) -> None:
    table = Table(title="deployment gate")
    table.add_column("policy")
    table.add_column("decision")
    table.add_column("reasons")
    colors = {"PASS": "green", "CAUTION": "yellow", "FAIL": "red"}
    for name, d in result["decisions"].items():
        reasons = "\n".join(
            f"[{colors[r['decision']]}]{r['decision']}[/] {r['rule']}: {r['message']}" for r in d["reasons"]
        )
        table.add_row(name, f"[bold {colors[d['decision']]}]{d['decision']}[/]", reasons)
    console.print(table)


@app.command("audit")
def audit_cmd(
    dataset: Annotated[Path, typer.Argument(help="A guardrl dataset folder (e.g. runs/default/dataset).")],
    config: ConfigOpt = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the full audit as JSON here.")] = None,
) -> None:
    """Audit a dataset's coverage before training: support, distributions, sanity, and a verdict."""
    from guardrl._io import atomic_write_json
    from guardrl.config import load_config
    from guardrl.data.audit import audit
    from guardrl.data.dataset import load_dataset

    run_dir = dataset.parent
    in_run = dataset.name == "dataset" and (run_dir / "config.yaml").is_file()
    with _user_errors():
        if in_run:  # a run's dataset: the audit goes where the gate and the report read it
            from guardrl.pipeline import read_run_config, stage_audit

            result = stage_audit(load_config(config) if config else read_run_config(run_dir), run_dir)
        else:
            result = audit(load_dataset(dataset), load_config(config).audit)
        if json_out is not None:
            atomic_write_json(json_out, result)
    _print_audit(result)
    if in_run:
        console.print(f"written: {run_dir / 'audit.json'}")


@app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="The log file (for --format minari: the dataset id).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder to write (guardrl format).")],
    n_actions: Annotated[int, typer.Option(help="Number of discrete actions; actions must lie in [0, n).")],
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", "-f", help="csv, parquet, hdf5 (d3rlpy's format) or minari (local); default: by extension."
        ),
    ] = None,
    minari_root: Annotated[
        Path | None, typer.Option(help="Local Minari datasets folder (default: Minari's own).")
    ] = None,
    mapping: Annotated[
        list[str] | None, typer.Option(help="Column name mapping FIELD=COLUMN, e.g. --mapping action=decision.")
    ] = None,
    unended_as_truncated: Annotated[
        bool, typer.Option(help="Treat an episode with no end flag at the end of the file as truncated.")
    ] = False,
    allow_negative_costs: Annotated[
        bool, typer.Option(help="Accept negative costs (refused by default: a cost counts a hazard or a harm).")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing dataset folder.")] = False,
) -> None:
    """Validate a decision log (CSV, Parquet, d3rlpy HDF5) and write it as a guardrl dataset; nothing on error."""
    from dataclasses import fields, replace

    from guardrl._io import check_output
    from guardrl.data.hdf5 import import_hdf5
    from guardrl.data.importer import LogSchema, format_from_extension, import_log
    from guardrl.data.minari_io import import_minari

    with _user_errors():
        schema = LogSchema()
        known = {f.name for f in fields(LogSchema)}
        for item in mapping or []:
            key, sep, value = item.partition("=")
            if not sep or key not in known:
                raise ValueError(f"--mapping {item!r}: expected FIELD=COLUMN with FIELD one of {sorted(known)}")
            schema = replace(schema, **{key: value})
        check_output(out, overwrite, "dataset")  # before reading a large file, not after
        fmt = fmt or format_from_extension(file)
        if fmt == "hdf5":
            ds = import_hdf5(file, n_actions)
        elif fmt == "minari":
            ds = import_minari(str(file), minari_root)
            if ds.n_actions != n_actions:
                raise ValueError(f"{file}: the Minari action space has {ds.n_actions} actions, --n-actions {n_actions}")
        else:
            ds = import_log(file, fmt, n_actions, schema, unended_as_truncated=unended_as_truncated,
                            allow_negative_costs=allow_negative_costs)  # fmt: skip
        ds.save(out, overwrite=overwrite)
    console.print(f"imported {len(ds)} transitions, {ds.n_episodes} episodes from {file} -> {out}")


@app.command("export")
def export_cmd(
    dataset: Annotated[Path, typer.Argument(help="A guardrl dataset folder.")],
    out: Annotated[str, typer.Option("--out", "-o", help="File to write (for minari: the new dataset id).")],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="hdf5 (d3rlpy's format), csv, parquet or minari (local).")
    ] = "hdf5",
    minari_root: Annotated[
        Path | None, typer.Option(help="Local Minari datasets folder (default: Minari's own).")
    ] = None,
) -> None:
    """Write a guardrl dataset as d3rlpy HDF5, a local Minari dataset, or a log in the import schema."""
    from guardrl.data.dataset import load_dataset
    from guardrl.data.hdf5 import export_hdf5
    from guardrl.data.importer import export_log
    from guardrl.data.minari_io import export_minari

    with _user_errors():
        ds = load_dataset(dataset)
        if fmt == "hdf5":
            export_hdf5(ds, Path(out))
        elif fmt == "minari":
            export_minari(ds, out, minari_root)
        else:
            export_log(ds, Path(out), fmt)
    console.print(f"wrote {len(ds)} transitions, {ds.n_episodes} episodes -> {out} ({fmt})")


@app.command("ope")
def ope_cmd(
    run_dir: RunDirArg,
    validate: Annotated[
        bool, typer.Option(help="Also estimate reference policies (behaviour, optimal, random, hazard-seeking).")
    ] = False,
) -> None:
    """Estimate the run's policies from the logs alone (PDIS, WIS, FQE, DR) and compare with the truth."""
    from guardrl.pipeline import read_run_config, stage_ope

    with _user_errors():
        from dataclasses import replace

        cfg = read_run_config(run_dir)
        if validate:
            cfg = replace(cfg, ope=replace(cfg.ope, validate=True))
        result = stage_ope(cfg, run_dir)
    table = Table(title="off-policy evaluation (95% bootstrap CIs) against rollout truth")
    for col in ("policy", "signal", "truth", "pdis", "wis", "fqe", "dr", "IS ESS"):
        table.add_column(col, justify="left" if col in ("policy", "signal") else "right")
    for name, r in result["policies"].items():
        for key, est in r["estimates"].items():
            digits = 3 if key == "cost" else 2
            cells = [_interval(est[e], digits=digits) if e in est else "-" for e in ("pdis", "wis", "fqe", "dr")]
            table.add_row(
                name, key, f"{r['truth'][key]['mean']:.{digits}f}", *cells, f"{r['weights']['ess_episodes']:.1f}"
            )
    console.print(table)
    for key, by in result["validation"].items():
        for est, v in by.items():
            rc = "-" if v["rank_correlation"] is None else f"{v['rank_correlation']:.2f}"
            console.print(f"{key} {est}: mean abs error {v['mean_abs_error']:.3f}, rank correlation {rc}")


@app.command("gate")
def gate_cmd(run_dir: RunDirArg) -> None:
    """PASS / CAUTION / FAIL for each candidate policy, with the reasons and evidence; writes gate.json."""
    from guardrl.pipeline import read_run_config, stage_gate

    with _user_errors():
        result = stage_gate(read_run_config(run_dir), run_dir)
    _print_gate(result)


@app.command("report")
def report_cmd(run_dir: RunDirArg) -> None:
    """Write RUN_DIR/report.html: one self-contained page (plots embedded, no network needed)."""
    from guardrl.pipeline import read_run_config, stage_report

    with _user_errors():
        path = stage_report(read_run_config(run_dir), run_dir)
    console.print(f"report: {path}")


@app.command("serve")
def serve_cmd(
    run_dir: RunDirArg,
    policy: Annotated[list[str], typer.Option(help="Exported policy to serve (repeat for several; first is default).")],
    mode: Annotated[str, typer.Option(help="shadow, canary or full.")] = "canary",
    fallback: Annotated[
        str | None, typer.Option(help="An exported policy that answers fallback decisions (else action null).")
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    audit_log: Annotated[
        Path | None, typer.Option(help="JSON-lines audit log (default RUN/serve/audit.jsonl).")
    ] = None,
    allow_gate_fail: Annotated[
        bool, typer.Option(help="Let a policy the gate FAILed decide in canary or full mode.")
    ] = False,
) -> None:
    """Serve exported policies over HTTP with deferral, shadow mode, canary routing and rollback."""
    try:
        import uvicorn

        from guardrl.serve.app import create_app
        from guardrl.serve.service import PolicyService
    except ImportError as exc:
        _fail(RunError(f"serving needs the serve extra: pip install 'guardrl[serve]' ({exc})"))
        return
    with _user_errors():
        service = PolicyService(
            run_dir, policy, mode=mode, fallback=fallback, audit_log=audit_log, allow_gate_fail=allow_gate_fail
        )
    status = service.status()
    gates = ", ".join(f"{n} {p['gate']}" for n, p in status["policies"].items())
    console.print(
        f"serving {', '.join(policy)} from {run_dir} in {status['mode']} mode on http://{host}:{port} "
        f"(gate: {gates}); audit log {service.audit_path}"
    )
    try:
        uvicorn.run(create_app(service), host=host, port=port, log_level="warning", access_log=False)
    finally:
        service.close()


@app.command("rollout-sim")
def rollout_sim_cmd(
    run_dir: RunDirArg,
    policy: Annotated[str, typer.Option(help="The exported policy to roll out.")] = "cql",
    shadow: Annotated[int, typer.Option(help="Shadow-phase episodes.")] = 500,
    canary: Annotated[int, typer.Option(help="Canary-phase episodes.")] = 1000,
    full: Annotated[int, typer.Option(help="Full-phase episodes.")] = 2000,
    chunk: Annotated[int, typer.Option(help="Episodes between two rollback checks.")] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the simulated episodes.")] = 7000,
) -> None:
    """Replay shadow -> canary -> full on SafeGrid; hazard events with and without deferral and rollback."""
    from guardrl.serve.rollout_sim import RolloutSimConfig, markdown, run_rollout_sim

    with _user_errors():
        cfg = RolloutSimConfig(shadow_episodes=shadow, canary_episodes=canary, full_episodes=full, chunk=chunk,
                               seed=seed)  # fmt: skip
        result = run_rollout_sim(run_dir, policy, cfg)
    console.print(markdown(result, policy), markup=False, highlight=False)
    console.print(f"written: {run_dir / 'rollout_sim' / (policy + '.json')}")


@app.command("sweep")
def sweep_cmd(
    config: Annotated[Path, typer.Argument(help="Sweep config (YAML): base, seeds, alphas, learners, regimes.")],
    sweeps_dir: Annotated[Path, typer.Option(help="Folder that holds sweep folders.")] = Path("sweeps"),
    backend: Annotated[str | None, typer.Option(help="auto, ray or sequential (overrides the config's).")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (overrides the config's).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing sweep of the same name.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Grid of seeds x conservative weight x learner x regime, each trial a full train + evaluate (Ray or not)."""
    from dataclasses import replace

    from guardrl.report import spread_text
    from guardrl.sweep import load_sweep_config, run_sweep

    with _user_errors():
        cfg = load_sweep_config(config)
        if backend is not None or address is not None:
            cfg = replace(cfg, backend=backend or cfg.backend, ray_address=address or cfg.ray_address)
        out_dir, results = run_sweep(cfg, sweeps_dir, overwrite=overwrite, show_progress=not quiet)
    table = Table(title=f"sweep {cfg.name}: {len(results['trials'])} trials, {results['backend']} backend")
    for col in ("regime", "learner", "alpha", "seeds", "normalized", "hazard %", "goal %"):
        table.add_column(col, justify="left" if col in ("regime", "learner") else "right")

    def rng(e: dict[str, float] | None, pct: bool = False) -> str:
        return spread_text(e, pct=pct, missing="-")

    for e in results["table"]:
        alpha = "-" if e["alpha"] is None else f"{e['alpha']:g}"
        table.add_row(e["regime"], e["learner"], alpha, str(e["n_seeds"]), rng(e["normalized_score"]),
                      rng(e["hazard_rate"], pct=True), rng(e["goal_rate"], pct=True))  # fmt: skip
    console.print(table)
    console.print(f"sweep folder: {out_dir}  ({results['wall_seconds']:.1f} s)\nreport: {out_dir / 'report.html'}")


def main() -> None:  # pragma: no cover - console-script entry
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
