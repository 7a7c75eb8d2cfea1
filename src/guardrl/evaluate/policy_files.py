"""Policies a user brings, loaded from files for ``guardrl judge``: ONNX, TorchScript, a policy table (CSV or
Parquet), or a Python callable (only when code is explicitly allowed). Pickles are refused.

Every format maps float32 observations ``(N, d)`` to one of:

* actions ``(N,)`` (integers in ``[0, K)``): a deterministic policy;
* probabilities ``(N, K)`` (each row non-negative, summing to 1 within 1e-6): a stochastic policy, judged by its
  probabilities everywhere (importance weights, FQE's backups, the world model's rollouts);
* scores ``(N, K)`` (Q-values, logits: anything else): a deterministic policy taking the highest score.

A ``(N, K)`` output is read as probabilities when every entry lies in [0, 1] and every row sums to 1 within 0.01;
then each row must sum to 1 within 1e-6, or the policy is refused (a rounding slip in a probability table is an
error, not a silent renormalization). Outputs are checked on every logged observation before anything is written.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from guardrl.envs import sample_actions
from guardrl.errors import GuardrlError

PICKLES = (".d3", ".pkl", ".pickle", ".joblib", ".pth", ".ckpt")
TORCHSCRIPT = (".pt", ".ts", ".torchscript")
TABLES = (".csv", ".parquet")
PROB_TOLERANCE = 1e-6
FORMATS = "ONNX (.onnx), TorchScript (.pt, .ts), a policy table (.csv, .parquet) or module:function (--allow-code)"


class PolicyFileError(GuardrlError, ValueError):
    """A policy file guardrl cannot judge; the message names the file and, for bad outputs, the observation."""


@dataclass
class JudgedPolicy:
    """A user's policy: its raw output function and how that output is read (set by :meth:`check`)."""

    name: str
    source: str
    kind: str  # onnx | torchscript | table | code
    raw: Callable[[NDArray[np.float32]], NDArray[Any]]
    n_actions: int = 0
    output: str = ""  # actions | probabilities | scores, decided by check()
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def stochastic(self) -> bool:
        return self.output == "probabilities"

    def check(self, obs: NDArray[np.float32], n_actions: int) -> None:
        """Read the output on ``obs`` (the logged observations): decide its kind and refuse a bad one, naming the
        file and the first offending observation."""
        self.n_actions = n_actions
        out = self._call(obs)
        if out.ndim == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if out.shape[0] != len(obs) or out.ndim not in (1, 2):
            raise self._error(f"returned shape {out.shape} for {len(obs)} observations; expected ({len(obs)},) "
                              f"actions or ({len(obs)}, {n_actions}) probabilities or scores")  # fmt: skip
        if np.issubdtype(out.dtype, np.number) is False:
            raise self._error(f"returned dtype {out.dtype}; expected numbers")
        bad = ~np.isfinite(out) if out.ndim == 1 else ~np.isfinite(out).all(axis=1)
        if bad.any():
            raise self._first(obs, bad, "returned NaN or infinity")
        if out.ndim == 1:
            wrong = (out != np.rint(out)) | (out < 0) | (out >= n_actions)
            if wrong.any():
                i = int(np.flatnonzero(wrong)[0])
                raise self._first(obs, wrong, f"returned action {out[i].item()!r}, not an integer in [0, {n_actions})")
            self.output = "actions"
            self._relax()
            return
        if out.shape[1] != n_actions:
            raise self._error(f"returned {out.shape[1]} columns; the logs have {n_actions} actions")
        sums = out.sum(axis=1)
        looks_like_probs = bool(((out >= 0) & (out <= 1)).all() and (np.abs(sums - 1) < 0.01).all())
        if looks_like_probs:
            off = np.abs(sums - 1) > PROB_TOLERANCE
            if off.any():
                i = int(np.flatnonzero(off)[0])
                raise self._first(obs, off, f"returned probabilities summing to {sums[i]:.9f}, not 1 (within "
                                  f"{PROB_TOLERANCE:g})")  # fmt: skip
            self.output = "probabilities"
        elif self.kind in ("table", "code"):
            raise self._first(obs, np.ones(len(obs), dtype=bool), "returned a row that is not probabilities")
        else:
            self.output = "scores"
        self._relax()

    def _relax(self) -> None:
        """After the logs are checked, a table answers for observations off the logs too (see :func:`_table`)."""
        if hasattr(self.raw, "strict"):
            self.raw.strict = False

    def probs(self, obs: NDArray[np.float32]) -> NDArray[np.float64]:
        """(N, K) action probabilities (one-hot for a deterministic policy)."""
        out = self._call(obs)
        if self.output == "probabilities":
            return out.reshape(len(obs), -1).astype(np.float64)
        return np.eye(self.n_actions)[self.greedy(obs)]

    def greedy(self, obs: NDArray[np.float32]) -> NDArray[np.int64]:
        out = self._call(obs)
        if self.output == "actions":
            return np.rint(out.reshape(-1)).astype(np.int64)
        return np.argmax(out.reshape(len(obs), -1), axis=1).astype(np.int64)

    @property
    def probs_fn(self) -> Callable[[NDArray[np.float32]], NDArray[np.float64]] | None:
        """The probabilities for off-policy evaluation; None for a deterministic policy."""
        return self.probs if self.stochastic else None

    def __call__(self, obs: NDArray[np.float32], steps: NDArray[np.int64], rng: np.random.Generator) -> NDArray:
        """Actions for rollouts: drawn from the probabilities of a stochastic policy."""
        return sample_actions(self.probs(obs), rng) if self.stochastic else self.greedy(obs)

    def _call(self, obs: NDArray[np.float32]) -> NDArray[Any]:
        arr = np.ascontiguousarray(obs, dtype=np.float32)
        key = "last"
        hit = self._cache.get(key)
        if hit is not None and hit[0] is arr:
            return hit[1]
        try:
            out = np.asarray(self.raw(arr))
        except PolicyFileError:
            raise
        except Exception as exc:  # a user's model failing on the logs is their input's error, named
            raise self._error(f"failed on the logged observations ({type(exc).__name__}: {exc})") from None
        self._cache[key] = (arr, out)
        return out

    def _error(self, message: str) -> PolicyFileError:
        return PolicyFileError(f"{self.source}: {message}")

    def _first(self, obs: NDArray[np.float32], mask: NDArray[np.bool_], message: str) -> PolicyFileError:
        i = int(np.flatnonzero(mask)[0])
        return self._error(f"{message} on observation {i} {np.asarray(obs[i]).tolist()}")


def load_policy(spec: str, obs_dim: int, allow_code: bool = False, name: str | None = None) -> JudgedPolicy:
    """The policy in ``spec``: a file path, or ``module:function`` (with ``allow_code`` only)."""
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix in PICKLES:
        raise PolicyFileError(
            f"{spec}: a pickle ({suffix}) can run any code when loaded, so guardrl never loads one. Export the "
            "policy instead: ONNX (torch.onnx.export, or d3rlpy's save_policy('policy.onnx')), TorchScript "
            "(torch.jit.script / trace, or save_policy('policy.pt')), or a policy table (CSV with the observation "
            "columns and an action column)"
        )
    if not path.exists() and ":" in spec and suffix not in (".onnx", *TORCHSCRIPT, *TABLES):
        if not allow_code:
            raise PolicyFileError(f"{spec}: a Python callable runs your code inside guardrl; pass --allow-code to "
                                  "judge it")  # fmt: skip
        return JudgedPolicy(name or spec.split(":")[-1], spec, "code", _callable(spec))
    if not path.is_file():
        raise PolicyFileError(f"{spec}: no such file (formats: {FORMATS})")
    stem = name or path.stem
    if suffix == ".onnx":
        return JudgedPolicy(stem, spec, "onnx", _onnx(path))
    if suffix in TORCHSCRIPT:
        return JudgedPolicy(stem, spec, "torchscript", _torchscript(path))
    if suffix in TABLES:
        return JudgedPolicy(stem, spec, "table", _table(path, obs_dim))
    raise PolicyFileError(f"{spec}: unknown policy format {suffix or '(no suffix)'}; use {FORMATS}")


def _callable(spec: str) -> Callable[[NDArray[np.float32]], NDArray[Any]]:
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise PolicyFileError(f"{spec}: cannot import {module_name!r} ({exc})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise PolicyFileError(f"{spec}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise PolicyFileError(f"{spec}: not callable")
    return obj  # type: ignore[no-any-return]


def _onnx(path: Path) -> Callable[[NDArray[np.float32]], NDArray[Any]]:
    try:
        import onnxruntime as ort
    except ImportError:
        raise PolicyFileError(f"{path}: judging ONNX needs onnxruntime (pip install onnxruntime)") from None
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for a broken model
        raise PolicyFileError(f"{path}: not a loadable ONNX model ({exc})") from None
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise PolicyFileError(f"{path}: the model takes {len(inputs)} inputs; guardrl feeds one, the observations")
    input_name = inputs[0].name

    def run(obs: NDArray[np.float32]) -> NDArray[Any]:
        return np.asarray(session.run(None, {input_name: obs})[0])

    return run


def _torchscript(path: Path) -> Callable[[NDArray[np.float32]], NDArray[Any]]:
    import torch

    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError or its own for a non-TorchScript file
        raise PolicyFileError(
            f"{path}: not a TorchScript archive ({type(exc).__name__}); a torch.save pickle is refused: export "
            "with torch.jit.script or torch.jit.trace"
        ) from None

    def run(obs: NDArray[np.float32]) -> NDArray[Any]:
        with torch.no_grad():
            parts = [module(torch.as_tensor(obs[i : i + 8192])).cpu().numpy() for i in range(0, max(len(obs), 1), 8192)]
        return np.concatenate(parts)

    return run


def _table(path: Path, obs_dim: int) -> Callable[[NDArray[np.float32]], NDArray[Any]]:
    import pandas as pd

    try:
        frame = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    except Exception as exc:  # pandas' parser errors vary by engine
        raise PolicyFileError(f"{path}: cannot read the table ({exc})") from None
    obs_cols = [f"obs_{j}" for j in range(obs_dim)]
    missing = [c for c in obs_cols if c not in frame.columns]
    if missing:
        raise PolicyFileError(
            f"{path}: missing observation column(s) {missing} (the dataset's obs_0..obs_{obs_dim - 1})"
        )
    prob_cols = sorted((c for c in frame.columns if c.startswith("prob_")), key=lambda c: int(c[5:]))
    if "action" in frame.columns and prob_cols:
        raise PolicyFileError(f"{path}: give either an action column or prob_0..prob_K-1 columns, not both")
    if "action" not in frame.columns and not prob_cols:
        raise PolicyFileError(f"{path}: no action column and no prob_0..prob_K-1 columns")
    if prob_cols and prob_cols != [f"prob_{k}" for k in range(len(prob_cols))]:
        raise PolicyFileError(f"{path}: probability columns must be prob_0..prob_{len(prob_cols) - 1}, got {prob_cols}")
    keys = frame[obs_cols].to_numpy(np.float32)
    values = frame[prob_cols].to_numpy(np.float64) if prob_cols else frame["action"].to_numpy(np.float64)
    index: dict[bytes, int] = {}
    for i, row in enumerate(keys):
        key = row.tobytes()
        if key in index:
            raise PolicyFileError(
                f"{path}: observation {row.tolist()} appears twice (rows {index[key] + 2} and {i + 2})"
            )
        index[key] = i

    def run(obs: NDArray[np.float32]) -> NDArray[Any]:
        rows = np.fromiter((index.get(o.tobytes(), -1) for o in obs), dtype=np.int64, count=len(obs))
        absent = rows < 0
        if absent.any() and run.strict:  # type: ignore[attr-defined]
            few = [obs[i].tolist() for i in np.flatnonzero(absent)[:3]]
            raise PolicyFileError(f"{path}: {int(absent.sum())} logged observation(s) are not in the table, e.g. {few}")
        where = np.flatnonzero(absent)
        for start in range(0, len(where), 1024):  # off the logs (a terminal state, a rollout): the nearest listed
            chunk = where[start : start + 1024]
            rows[chunk] = ((obs[chunk][:, None, :] - keys[None, :, :]) ** 2).sum(axis=-1).argmin(axis=1)
        return values[rows]

    run.strict = True  # type: ignore[attr-defined]  # check() reads the logs strictly, then relaxes it
    return run
