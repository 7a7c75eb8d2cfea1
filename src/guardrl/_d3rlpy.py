"""Importing d3rlpy 2.8.1 without what guardrl never uses from it.

Its import prints the legacy ``gym`` package's "unmaintained" banner to stderr, and its PRDC learner imports
``sklearn.neighbors`` at module level, which loads scikit-learn and scipy.stats: measured 2.8 s of the 7.9 s
``import d3rlpy`` takes on the 2-core machine, paid by every ``guardrl run`` for a learner guardrl does not offer.
"""

from __future__ import annotations

import contextlib
import io
import sys
import types
from typing import Any


def _deferred_neighbors() -> types.ModuleType:
    """A stand-in for ``sklearn.neighbors`` holding only the name PRDC imports. PRDC builds one instance in its
    class body; the real estimator is made (and scikit-learn loaded) when an attribute of it is first used."""
    stub = types.ModuleType("sklearn.neighbors")

    class NearestNeighbors:
        def __init__(self, *args: Any, **kwargs: Any):
            self._arguments = (args, kwargs)

        def __getattr__(self, name: str) -> Any:
            if name.startswith("__") or name == "_arguments":
                raise AttributeError(name)
            if "_real" not in self.__dict__:
                from sklearn.neighbors import NearestNeighbors as real

                args, kwargs = self._arguments
                self.__dict__["_real"] = real(*args, **kwargs)
            return getattr(self.__dict__["_real"], name)

    stub.NearestNeighbors = NearestNeighbors  # type: ignore[attr-defined]
    return stub


def import_d3rlpy() -> types.ModuleType:
    """``import d3rlpy``, quietly and without scikit-learn (see the module docstring)."""
    if "d3rlpy" in sys.modules:
        return sys.modules["d3rlpy"]
    stubbed = "sklearn.neighbors" not in sys.modules
    if stubbed:
        sys.modules["sklearn.neighbors"] = _deferred_neighbors()
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            import d3rlpy
    finally:
        if stubbed:
            # a later `import sklearn.neighbors` anywhere gets the real module
            sys.modules.pop("sklearn.neighbors", None)
    return d3rlpy
