"""Errors that mean "the user asked for something this cannot do": the command line prints them and exits 2.

Kept in a module of their own, with no heavy imports, so that the command line can recognize them without
loading the stages that raise them.
"""

from __future__ import annotations


class RunError(RuntimeError):
    """A stage cannot run on the given run folder (missing artifacts, existing run...)."""


class OutputError(OSError):
    """An output path that cannot be written; the message names it and says why."""
