"""What every command shares: the Typer app, the consoles, the common options and the user-error boundary.

Exit codes: 0 success, 1 a user error (a :class:`~guardrl.errors.GuardrlError`: a missing file, a bad config, a
refused request; one line on stderr naming the cause and the fix), 2 a usage error (an unknown option or a choice
that does not exist; Click's own). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from guardrl.errors import GuardrlError  # light: the stages load inside their commands

USER_ERROR = 1
"""Exit status of a user error (a :class:`GuardrlError`); Click's usage errors exit with 2."""

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
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bars and no tables: only the result line and errors.")
]


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


def fail(exc: BaseException) -> None:
    """Print a user error on stderr and exit with status 1."""
    # the message is the user's text (paths, bounds like [-1, 1]): never read as markup
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True, markup=True, highlight=False)
    raise typer.Exit(code=USER_ERROR)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Print a user error (a :class:`GuardrlError`) and exit with status 1; a bug keeps its traceback."""
    try:
        yield
    except GuardrlError as exc:
        fail(exc)


def show(renderable: object, quiet: bool = False) -> None:
    """Print a table (or any rich renderable) unless ``quiet``."""
    if not quiet:
        console.print(renderable, soft_wrap=False)
