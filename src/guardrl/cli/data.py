"""Logs in and out: ``guardrl import``, ``guardrl export`` and ``guardrl mujoco-data``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from guardrl.cli._common import LogFormat, QuietOpt, app, console, user_errors


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
    quiet: QuietOpt = False,
) -> None:
    """Validate a decision log (CSV, Parquet, d3rlpy HDF5, D4RL HDF5, Minari) and write it as a guardrl dataset."""
    from guardrl._io import check_output
    from guardrl.data.formats import ImportOptions, read_log
    from guardrl.data.importer import schema_from_mapping
    from guardrl.progress import make_progress

    with user_errors(), make_progress(not quiet) as progress:
        schema = schema_from_mapping(mapping or [])
        check_output(out, overwrite, "dataset")  # before reading a large file, not after
        task = progress.add_task(f"import {file.name} (rows)", total=None)
        options = ImportOptions(
            n_actions=n_actions, schema=schema, unended_as_truncated=unended_as_truncated,
            allow_negative_costs=allow_negative_costs, minari_root=minari_root,
            action_bounds=(action_low, action_high),
            on_rows=lambda rows, total: progress.update(task, completed=rows, total=total),
        )  # fmt: skip
        ds = read_log(file, fmt.value if fmt else None, options)
        progress.update(task, description=f"save {len(ds):,} transitions")
        ds.save(out, overwrite=overwrite)
    console.print(f"imported {len(ds)} transitions, {ds.n_episodes} episodes from {file} -> {out}")


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
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Write a guardrl dataset as d3rlpy HDF5, D4RL HDF5, a local Minari dataset, or a log in the import schema."""
    from guardrl.data.dataset import load_dataset
    from guardrl.data.formats import write_log
    from guardrl.errors import RunError

    with user_errors():
        if fmt != LogFormat.minari and Path(out).exists() and not overwrite:
            raise RunError(f"{out} already exists; pass --overwrite to replace it")
        ds = load_dataset(dataset)
        write_log(ds, out, fmt.value, minari_root)
    console.print(f"wrote {len(ds)} transitions, {ds.n_episodes} episodes -> {out} ({fmt.value})")


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
    quiet: QuietOpt = False,
) -> None:
    """Roll the shipped behaviour policies out into a D4RL-style dataset (needs the mujoco extra)."""
    from guardrl._io import check_output
    from guardrl.data.mujoco import collect_mujoco
    from guardrl.envs.mujoco import actor_set

    with user_errors():
        check_output(out, overwrite, "dataset")
        chosen = actor_set(task.value, actors) if actors is not None else None
        ds = collect_mujoco(task.value, kind.value, steps, seed, chosen)
        ds.save(out, overwrite=overwrite)
    returns = ds.episode_returns()
    console.print(
        f"logged {len(ds)} transitions, {ds.n_episodes} episodes of {task.value}-{kind.value} (seed {seed}) -> {out}; "
        f"episode return mean {returns.mean():.1f}"
    )
