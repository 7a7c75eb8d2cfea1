"""Export trained policies as TorchScript and ONNX (no pickle), and load them back as batch policies."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from guardrl._io import atomic_write


def export_policy(algo: Any, out_dir: Path, name: str) -> dict[str, Path]:
    """Write ``<name>.pt`` (d3rlpy ``save_policy``, or a tabular policy's traced module) and ``<name>.onnx``;
    returns both paths.

    d3rlpy 2.8.1's own ONNX branch calls ``torch.onnx.export`` on a traced function, which torch >= 2.9's
    default (dynamo) exporter rejects; so the ONNX file is converted from the TorchScript file that
    ``save_policy`` wrote, with torch's TorchScript-based exporter. Both compute the same greedy action.
    """
    out_dir = Path(out_dir)
    pt_path, onnx_path = out_dir / f"{name}.pt", out_dir / f"{name}.onnx"
    own = _is_module_policy(algo)
    if not own:
        _on_cpu(algo)
    observation_shape = algo.observation_shape if own else algo.impl.observation_shape

    def write_pt(tmp: Path) -> None:
        if own:
            _trace(algo.module(greedy=True), observation_shape).save(str(tmp))
            return
        target = tmp.with_suffix(".pt")  # save_policy picks the format from the extension
        with warnings.catch_warnings():
            # tracing d3rlpy's scaler asserts on shapes; the trace is checked against the model in the tests
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            algo.save_policy(str(target))
        target.replace(tmp)

    atomic_write(pt_path, write_pt)

    def write_onnx(tmp: Path) -> None:
        module = torch.jit.load(str(pt_path), map_location="cpu")
        dummy = torch.zeros(1, *observation_shape, dtype=torch.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
            torch.onnx.export(
                module,
                (dummy,),
                str(tmp),
                dynamo=False,
                opset_version=17,
                input_names=["observation"],
                output_names=["action"],
                dynamic_axes={"observation": {0: "batch"}, "action": {0: "batch"}},
            )

    atomic_write(onnx_path, write_onnx)
    return {"torchscript": pt_path, "onnx": onnx_path}


SCORE_KINDS = ("q", "logprob")


def _on_cpu(algo: Any) -> Any:
    """``algo`` moved to the CPU (in place): the files are traced there, so that they load on any machine."""
    from guardrl.train.trainer import to_cpu

    return to_cpu(algo)


def _is_module_policy(algo: Any) -> bool:
    """guardrl's own policies (tabular, GAIL), which give their torch module; the rest are d3rlpy's."""
    from guardrl.train.gail import GAILPolicy
    from guardrl.train.tabular import TabularPolicy

    return isinstance(algo, TabularPolicy | GAILPolicy)


def _trace(fn: Any, observation_shape: tuple[int, ...]) -> Any:
    """TorchScript of ``fn`` (a module or a function of observations) traced on a batch of two zero
    observations, parameters baked in as constants."""
    dummy = torch.zeros(2, *observation_shape, dtype=torch.float32)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit.trace(fn, dummy, check_trace=False)


def _scores_function(algo: Any) -> tuple[Any, str]:
    """A function observations -> (batch, n_actions) action scores whose argmax is the greedy action.

    Q-learners (DQN, CQL) give their expected Q-values; BCQ its Q-values with the actions its imitator rules out
    pushed to the bottom (as its own greedy rule does); BC the log-probabilities of its imitator.
    """
    from d3rlpy.algos.qlearning.torch.bc_impl import DiscreteBCImpl
    from d3rlpy.algos.qlearning.torch.bcq_impl import DiscreteBCQImpl
    from d3rlpy.algos.qlearning.torch.dqn_impl import DQNImpl

    impl = algo.impl
    scaler = algo.config.observation_scaler

    def scaled(x: torch.Tensor) -> torch.Tensor:
        return scaler.transform(x) if scaler is not None else x

    if isinstance(impl, DiscreteBCQImpl):
        threshold = float(np.log(impl._action_flexibility))

        def bcq(x: torch.Tensor) -> torch.Tensor:
            x = scaled(x)
            log_probs = torch.log_softmax(impl._modules.imitator(x).logits, dim=1)
            keep = (log_probs - log_probs.max(dim=1, keepdim=True).values) > threshold
            q = impl._q_func_forwarder.compute_expected_q(x)
            return torch.where(keep, q, q.min(dim=1, keepdim=True).values - 1e3)

        return bcq, "q"
    if isinstance(impl, DQNImpl):
        return (lambda x: impl._q_func_forwarder.compute_expected_q(scaled(x))), "q"
    if isinstance(impl, DiscreteBCImpl):
        return (lambda x: torch.log_softmax(impl._modules.imitator(scaled(x)).logits, dim=1)), "logprob"
    raise TypeError(f"no action scores for {type(impl).__name__}")


def export_scores(algo: Any, out_dir: Path, name: str) -> tuple[Path, str]:
    """Write ``<name>.scores.pt``: TorchScript of observations -> action scores; returns the path and kind."""
    path = Path(out_dir) / f"{name}.scores.pt"
    if _is_module_policy(algo):
        fn, kind, shape = algo.module(greedy=False), algo.kind, algo.observation_shape
    else:
        fn, kind = _scores_function(_on_cpu(algo))
        algo.impl.modules.freeze()  # tracing bakes parameters in as constants; save_policy freezes them too
        shape = algo.impl.observation_shape
    atomic_write(path, lambda tmp: _trace(fn, shape).save(str(tmp)))
    return path, kind


class ScoresModel:
    """Action scores from an exported ``<name>.scores.pt``: observations (N, d) -> (N, A) float64."""

    def __init__(self, path: Path, kind: str):
        if kind not in SCORE_KINDS:
            raise ValueError(f"{path}: unknown score kind {kind!r}")
        self.path, self.kind = Path(path), kind
        self.module = torch.jit.load(str(self.path), map_location="cpu")

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = self.module(torch.as_tensor(np.asarray(obs, dtype=np.float32)))
        return out.cpu().numpy().astype(np.float64)


class TorchScriptPolicy:
    """A greedy policy loaded from an exported TorchScript file: observations (N, d) -> actions (N,)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.module = torch.jit.load(str(self.path), map_location="cpu")

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        out = []
        with torch.no_grad():
            # in chunks: a tabular policy compares each observation with every logged state
            for start in range(0, max(len(obs), 1), 8192):
                out.append(self.module(torch.as_tensor(obs[start : start + 8192])).cpu().numpy())
        return np.concatenate(out).astype(np.int64).reshape(-1)

    def __call__(self, obs: np.ndarray, steps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.greedy(obs)


class TorchScriptActor:
    """A continuous policy loaded from an exported TorchScript file: observations (N, d) -> actions (N, k),
    clipped to the action box ``bounds`` (low, high) the logs declared."""

    def __init__(self, path: Path, bounds: tuple[tuple[float, ...], tuple[float, ...]]):
        self.path = Path(path)
        self.low, self.high = np.asarray(bounds[0]), np.asarray(bounds[1])
        self.module = torch.jit.load(str(self.path), map_location="cpu")

    def act(self, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = self.module(torch.as_tensor(np.asarray(obs, dtype=np.float32))).cpu().numpy()
        return np.clip(out.astype(np.float64).reshape(len(obs), -1), self.low, self.high)

    def __call__(self, obs: np.ndarray, steps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.act(obs)


class OnnxPolicy:
    """A greedy policy loaded from an exported ONNX file with onnxruntime."""

    def __init__(self, path: Path):
        import onnxruntime as ort

        self.path = Path(path)
        self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def greedy(self, obs: np.ndarray) -> np.ndarray:
        (out,) = self.session.run(None, {self.input_name: np.asarray(obs, dtype=np.float32)})
        return np.asarray(out, dtype=np.int64).reshape(-1)

    def __call__(self, obs: np.ndarray, steps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.greedy(obs)
