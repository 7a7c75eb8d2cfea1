"""Command line: ``guardrl run`` for the whole pipeline, one command per stage, and the commands around it.

Only typer and rich load with this package; each command imports the stages it runs, so ``guardrl --help``, a
typo or a bad option answer at once instead of after torch and d3rlpy have loaded. The commands live by group:
:mod:`.pipeline` (run, the stages, sweep), :mod:`.data` (import, export, mujoco-data) and :mod:`.deploy` (serve,
rollout-sim, dagger, gail); :mod:`._common` holds the app, the shared options and the exit codes.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated

import typer

from guardrl.cli._common import USER_ERROR, app, console, user_errors

COMMAND_GROUPS = ("pipeline", "data", "deploy")
"""The modules that register commands on the app, in the order ``--help`` lists them."""
for _group in COMMAND_GROUPS:
    importlib.import_module(f"guardrl.cli.{_group}")

__all__ = ["USER_ERROR", "app", "main", "user_errors"]


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


def main() -> None:  # pragma: no cover - console-script entry
    sys.exit(app())
