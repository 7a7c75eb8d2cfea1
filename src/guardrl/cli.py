"""Command line: ``guardrl run`` for the whole pipeline, and one command per stage.

Only typer and rich load with this module; each command imports the stages it runs, so ``guardrl --help``, a
typo or a bad option answer at once instead of after torch and d3rlpy have loaded.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from guardrl.errors import GuardrlError, RunError  # light: the stages load inside their commands

app = typer.Typer(
    help="guardrl: train policies from logged data only, and measure whether they are safe enough to try.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(soft_wrap=True)  # messages keep paths whole; tables fit the 80 columns rich assumes in pipes
err_console = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML run config; missing keys take the built-in defaults.")
]
RunDirArg = Annotated[Path, typer.Argument(help="Run folder (holds config.yaml and the stage artifacts).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


class LogFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"
    hdf5 = "hdf5"
    d4rl = "d4rl"
    minari = "minari"


class Mode(StrEnum):
    shadow = "shadow"
    canary = "canary"
    full = "full"


class Backend(StrEnum):
    auto = "auto"
    ray = "ray"
    sequential = "sequential"


def _fail(exc: BaseException) -> None:
    err_console.print(f"[bold red]error:[/] {exc}", soft_wrap=True, markup=True, highlight=False)
    raise typer.Exit(code=2)


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Print a user error (a :class:`GuardrlError`) and exit with status 2; a bug keeps its traceback."""
    try:
        yield
    except GuardrlError as exc:
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


def _print(renderable: object) -> None:
    console.print(renderable, soft_wrap=False)


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

    with _user_errors():
        cfg = load_config(config)
        if name is not None:
            cfg = replace(cfg, name=name)
        run_dir, metrics = run(cfg, runs_dir, overwrite=overwrite, show_progress=not quiet)
    folder = RunFolder(run_dir)
    _print(tables.summary(metrics))
    _print(tables.gate(folder.read_json(folder.gate, "gate")))
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in metrics["timings_seconds"].items())
    console.print(f"run folder: {run_dir}  ({stages})")
    if folder.report.is_file():
        console.print(f"report: {folder.report}")


@app.command("collect")
def collect_cmd(
    run_dir: RunDirArg,
    config: ConfigOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing dataset in the run folder.")] = False,
) -> None:
    """Log a behaviour dataset into RUN_DIR/dataset (writes RUN_DIR/config.yaml if it is not there)."""
    from dataclasses import replace

    from guardrl.config import load_config, save_config
    from guardrl.run import RunContext, RunFolder, stage_collect

    folder = RunFolder(run_dir)
    with _user_errors():
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


@app.command("model")
def model_cmd(run_dir: RunDirArg, quiet: QuietOpt = False) -> None:
    """Fit the world model to RUN_DIR/dataset (after `guardrl audit`); print its held-out accuracy."""
    from guardrl.report import console as tables
    from guardrl.run import RunContext, stage_model

    ctx = None
    with _user_errors():
        ctx = RunContext.open(run_dir)
        accuracy = stage_model(ctx, show_progress=not quiet)
    _print(tables.world_model(accuracy))
    console.print(f"written: {ctx.folder.world_model}")


@app.command("train")
def train_cmd(run_dir: RunDirArg, quiet: QuietOpt = False) -> None:
    """Train the configured learners on RUN_DIR/dataset; export TorchScript and ONNX policies."""
    from guardrl.run import RunContext, stage_train

    with _user_errors():
        results = stage_train(RunContext.open(run_dir), show_progress=not quiet)
    for name, res in results.items():
        console.print(f"{name}: {res.n_steps} steps in {res.seconds:.1f}s ({res.steps_per_second:.0f} steps/s)")


@app.command("evaluate")
def evaluate_cmd(run_dir: RunDirArg, quiet: QuietOpt = False) -> None:
    """Roll out the run's policies and the references on held-out seeds; write metrics.json and plots."""
    from guardrl.report import console as tables
    from guardrl.run import RunContext, stage_evaluate

    with _user_errors():
        metrics = stage_evaluate(RunContext.open(run_dir), show_progress=not quiet)
    _print(tables.summary(metrics))


@app.command("show")
def show_cmd(run_dir: RunDirArg) -> None:
    """Print the comparison table (and the gate, if it ran) of an evaluated run."""
    from guardrl.report import console as tables
    from guardrl.run import RunFolder, read_metrics

    folder = RunFolder(run_dir)
    with _user_errors():
        _print(tables.summary(read_metrics(folder)))
        gate = folder.read_optional(folder.gate)
    if gate:
        _print(tables.gate(gate))


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
    from guardrl.report import console as tables
    from guardrl.run import RunContext, RunFolder, stage_audit

    folder = RunFolder(dataset.parent)
    in_run = dataset.name == folder.dataset.name and folder.is_run()
    with _user_errors():
        if in_run:  # a run's dataset: the audit goes where the gate and the report read it
            ctx = RunContext.open(folder, load_config(config) if config else None)
            result = stage_audit(ctx)
        else:
            result = audit(load_dataset(dataset), load_config(config).audit)
        if json_out is not None:
            atomic_write_json(json_out, result)
    _print(tables.audit(result))
    if in_run:
        console.print(f"written: {folder.audit}")


@app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="The log file (for --format minari: the dataset id).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder to write (guardrl format).")],
    n_actions: Annotated[
        int | None, typer.Option(help="Discrete actions: their number; actions must lie in [0, n).")
    ] = None,
    fmt: Annotated[
        LogFormat | None,
        typer.Option(
            "--format",
            "-f",
            help="hdf5 is d3rlpy's format, d4rl D4RL's HDF5 layout (continuous actions), minari a local dataset; "
            "default: by extension.",
        ),
    ] = None,
    action_low: Annotated[
        float, typer.Option(help="Continuous actions (d4rl; csv/parquet action_0.. columns): the box's lower bound.")
    ] = -1.0,
    action_high: Annotated[
        float, typer.Option(help="Continuous actions (d4rl; csv/parquet action_0.. columns): the box's upper bound.")
    ] = 1.0,
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
    """Validate a decision log (CSV, Parquet, d3rlpy HDF5, D4RL HDF5, Minari) and write it as a guardrl dataset."""
    from guardrl._io import check_output
    from guardrl.data.formats import ImportOptions, read_log
    from guardrl.data.importer import schema_from_mapping

    with _user_errors():
        schema = schema_from_mapping(mapping or [])
        check_output(out, overwrite, "dataset")  # before reading a large file, not after
        options = ImportOptions(
            n_actions=n_actions, schema=schema, unended_as_truncated=unended_as_truncated,
            allow_negative_costs=allow_negative_costs, minari_root=minari_root,
            action_bounds=(action_low, action_high),
        )  # fmt: skip
        ds = read_log(file, fmt.value if fmt else None, options)
        ds.save(out, overwrite=overwrite)
    console.print(f"imported {len(ds)} transitions, {ds.n_episodes} episodes from {file} -> {out}")


class MujocoTask(StrEnum):
    hopper = "hopper"
    halfcheetah = "halfcheetah"
    walker2d = "walker2d"


class MujocoKind(StrEnum):
    random = "random"
    medium = "medium"
    medium_replay = "medium-replay"
    medium_expert = "medium-expert"
    expert = "expert"


@app.command("mujoco-data")
def mujoco_data_cmd(
    task: Annotated[MujocoTask, typer.Argument(help="The MuJoCo task (gymnasium v5).")],
    kind: Annotated[MujocoKind, typer.Argument(help="D4RL's dataset level.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder to write (guardrl format).")],
    steps: Annotated[int, typer.Option(help="Transitions to log (whole episodes: at least this many).")] = 100_000,
    seed: Annotated[int, typer.Option(help="Seed of every draw: the same seed gives the same dataset.")] = 0,
    actors: Annotated[
        Path | None, typer.Option(help="A folder of actors from scripts/train_mujoco_actors.py (default: shipped).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing dataset folder.")] = False,
) -> None:
    """Roll the shipped behaviour policies out into a D4RL-style dataset (needs the mujoco extra)."""
    from guardrl._io import check_output
    from guardrl.data.mujoco import collect_mujoco
    from guardrl.envs.mujoco import actor_set

    with _user_errors():
        check_output(out, overwrite, "dataset")
        chosen = actor_set(task.value, actors) if actors is not None else None
        ds = collect_mujoco(task.value, kind.value, steps, seed, chosen)
        ds.save(out, overwrite=overwrite)
    returns = ds.episode_returns()
    console.print(
        f"logged {len(ds)} transitions, {ds.n_episodes} episodes of {task.value}-{kind.value} (seed {seed}) -> {out}; "
        f"episode return mean {returns.mean():.1f}"
    )


@app.command("export")
def export_cmd(
    dataset: Annotated[Path, typer.Argument(help="A guardrl dataset folder.")],
    out: Annotated[str, typer.Option("--out", "-o", help="File to write (for minari: the new dataset id).")],
    fmt: Annotated[
        LogFormat,
        typer.Option(
            "--format", "-f", help="hdf5 is d3rlpy's format, d4rl D4RL's (continuous actions), minari a local dataset."
        ),
    ] = LogFormat.hdf5,
    minari_root: Annotated[
        Path | None, typer.Option(help="Local Minari datasets folder (default: Minari's own).")
    ] = None,
) -> None:
    """Write a guardrl dataset as d3rlpy HDF5, a local Minari dataset, or a log in the import schema."""
    from guardrl.data.dataset import load_dataset
    from guardrl.data.formats import write_log

    with _user_errors():
        ds = load_dataset(dataset)
        write_log(ds, out, fmt.value, minari_root)
    console.print(f"wrote {len(ds)} transitions, {ds.n_episodes} episodes -> {out} ({fmt.value})")


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

    with _user_errors():
        ctx = RunContext.open(run_dir)
        if validate:
            ctx = RunContext(replace(ctx.cfg, ope=replace(ctx.cfg.ope, validate=True)), ctx.folder)
        result = stage_ope(ctx, show_progress=not quiet)
    _print(tables.ope(result))


@app.command("gate")
def gate_cmd(run_dir: RunDirArg) -> None:
    """PASS / CAUTION / FAIL for each candidate policy, with the reasons and evidence; writes gate.json."""
    from guardrl.report import console as tables
    from guardrl.run import RunContext, stage_gate

    with _user_errors():
        result = stage_gate(RunContext.open(run_dir))
    _print(tables.gate(result))


@app.command("report")
def report_cmd(run_dir: RunDirArg) -> None:
    """Write RUN_DIR/report.html: one self-contained page (plots embedded, no network needed)."""
    from guardrl.run import RunContext, stage_report

    with _user_errors():
        path = stage_report(RunContext.open(run_dir))
    console.print(f"report: {path}")


@app.command("serve")
def serve_cmd(
    run_dir: RunDirArg,
    policy: Annotated[list[str], typer.Option(help="Exported policy to serve (repeat for several; first is default).")],
    mode: Annotated[
        Mode, typer.Option(help="Who decides: shadow (nobody but the fallback), canary or full.")
    ] = Mode.canary,
    fallback: Annotated[
        str | None, typer.Option(help="An exported policy that answers fallback decisions (else action null).")
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    audit_log: Annotated[
        Path | None, typer.Option(help="JSON-lines audit log (default RUN/serve/audit.jsonl).")
    ] = None,
    allow_gate_fail: Annotated[
        bool, typer.Option(help="Let a policy the gate FAILed, or never judged, decide in canary or full mode.")
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
            run_dir, policy, mode=mode.value, fallback=fallback, audit_log=audit_log, allow_gate_fail=allow_gate_fail
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
    quiet: QuietOpt = False,
) -> None:
    """Replay shadow -> canary -> full on SafeGrid; hazard events with and without deferral and rollback."""
    from guardrl.run import RunFolder
    from guardrl.serve.rollout_sim import RolloutSimConfig, markdown, run_rollout_sim

    with _user_errors():
        cfg = RolloutSimConfig(shadow_episodes=shadow, canary_episodes=canary, full_episodes=full, chunk=chunk,
                               seed=seed)  # fmt: skip
        result = run_rollout_sim(run_dir, policy, cfg, show_progress=not quiet)
    console.print(markdown(result, policy), markup=False, highlight=False)
    console.print(f"written: {RunFolder(run_dir).rollout_sim(policy, '.json')}")


@app.command("dagger")
def dagger_cmd(
    run_dir: RunDirArg,
    expert: Annotated[
        str, typer.Option(help="Who labels: 'optimal' (SafeGrid's exact planner) or package.module:function.")
    ] = "optimal",
    iterations: Annotated[int, typer.Option(help="Rounds of roll out -> label -> retrain.")] = 5,
    labels: Annotated[int, typer.Option(help="Expert labels per round (the budget is rounds x labels).")] = 100,
    episodes: Annotated[int, typer.Option(help="Episodes the learner plays per round.")] = 50,
    beta_decay: Annotated[float, typer.Option(help="beta_i = beta_decay**i: the expert's share of round i.")] = 0.5,
    validation: Annotated[
        int, typer.Option(help="Episodes each round's learner plays alone to pick the best round (0: the last).")
    ] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the rollouts, the queries and the training.")] = 0,
    from_labels: Annotated[
        bool, typer.Option(help="Train on the labels people posted to the server (POST /labels), not a simulator.")
    ] = False,
    audit_log: Annotated[
        Path | None, typer.Option(help="The server's audit log holding the labels (default RUN/serve/audit.jsonl).")
    ] = None,
    name: Annotated[str, typer.Option(help="Name of the exported policy.")] = "dagger",
    quiet: QuietOpt = False,
) -> None:
    """DAgger: BC retrained on the run's logs plus an expert's labels of the states the learner visits."""
    from guardrl.run import RunContext, RunFolder
    from guardrl.run.dagger import DaggerConfig, dagger_in_run, labels_in_run

    with _user_errors():
        ctx = RunContext.open(RunFolder(run_dir))
        if from_labels:
            from guardrl.serve.service import read_labels

            log = audit_log or RunFolder(run_dir).serve_log
            found = read_labels(log, ctx.dataset.obs_dim, ctx.dataset.n_actions)
            record = labels_in_run(ctx, found.observations, found.actions, source=str(log), name=name)
            console.print(f"trained {name} on the logs plus {record['labels']} labels from {log}")
        else:
            cfg = DaggerConfig(iterations=iterations, labels_per_iteration=labels, episodes_per_iteration=episodes,
                               beta_decay=beta_decay, validation_episodes=validation, seed=seed)  # fmt: skip
            record = dagger_in_run(ctx, cfg, expert, name=name, show_progress=not quiet)
            for r in record["rounds"]:
                e = r["exact"]
                console.print(f"round {r['round']}: {r['labels']} labels, exact normalized score "
                              f"{e['normalized_score']:.1f}, hazard {e['hazard_prob']:.2%}")  # fmt: skip
        if "exact" in record:
            e = record["exact"]
            console.print(f"exact: normalized score {e['normalized_score']:.1f}, hazard {e['hazard_prob']:.2%}")
    console.print(f"exported: {RunFolder(run_dir).card(name)}  (serve it with --policy {name} --mode shadow)")


@app.command("gail")
def gail_cmd(
    run_dir: RunDirArg,
    demos: Annotated[
        Path | None, typer.Option(help="Dataset folder of demonstrations (default: the run's own logs).")
    ] = None,
    iterations: Annotated[int, typer.Option(help="Rounds of roll out -> discriminator -> PPO.")] = 80,
    episodes: Annotated[int, typer.Option(help="Episodes the policy plays per round.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of the networks and the rollouts.")] = 0,
    name: Annotated[str, typer.Option(help="Name of the exported policy.")] = "gail",
    quiet: QuietOpt = False,
) -> None:
    """GAIL: imitate demonstrations in SafeGrid's simulator without reading a reward; exported into the run."""
    from guardrl.run import RunContext, RunFolder
    from guardrl.run.gail import gail_in_run
    from guardrl.train.gail import GAILConfig

    with _user_errors():
        ctx = RunContext.open(RunFolder(run_dir))
        cfg = GAILConfig(iterations=iterations, episodes_per_iteration=episodes, seed=seed)
        record = gail_in_run(ctx, cfg, demos, name=name, show_progress=not quiet)
    e = record["exact"]
    console.print(f"exact: return {e['expected_return']:.2f} (demonstrations' mean logged return "
                  f"{record['demonstration_mean_return']:.2f}), normalized score {e['normalized_score']:.1f}, "
                  f"hazard {e['hazard_prob']:.2%}")  # fmt: skip
    console.print(f"exported: {RunFolder(run_dir).card(name)}  (serve it with --policy {name} --mode shadow)")


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

    with _user_errors():
        cfg = load_sweep_config(config)
        if backend is not None or address is not None:
            cfg = replace(
                cfg, backend=backend.value if backend else cfg.backend, ray_address=address or cfg.ray_address
            )
        out_dir, results = run_sweep(cfg, sweeps_dir, overwrite=overwrite, show_progress=not quiet)
    _print(tables.sweep(results, cfg.name))
    console.print(f"sweep folder: {out_dir}  ({results['wall_seconds']:.1f} s)\nreport: {out_dir / 'report.html'}")


def main() -> None:  # pragma: no cover - console-script entry
    sys.exit(app())


if __name__ == "__main__":  # pragma: no cover
    main()
