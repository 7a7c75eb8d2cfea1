"""Errors that mean "the user asked for something this cannot do": the command line prints them and exits 2.

Every one derives from :class:`GuardrlError`, and the command line catches only that: any other exception is a
bug and shows its traceback. Kept in a module of their own, with no heavy imports, so that the command line
can recognize them without loading the stages that raise them.
"""

from __future__ import annotations


class GuardrlError(Exception):
    """Base of the errors a user can cause and fix (bad input, a missing artifact, an unwritable output)."""


class ConfigError(GuardrlError, ValueError):
    """A config file or value that cannot be used; the message names the field."""


class RunError(GuardrlError, RuntimeError):
    """A stage cannot run on the given run folder (missing artifacts, existing run...)."""


class OutputError(GuardrlError, OSError):
    """An output path that cannot be written; the message names it and says why."""


class OutputExistsError(OutputError, FileExistsError):
    """An output that exists already; the message names ``--overwrite``."""
