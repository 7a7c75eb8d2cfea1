"""Training loop: vectorized mini-batch sampling from flat transition arrays fed to d3rlpy's ``update()``.

d3rlpy's own ``fit()`` samples each batch transition by transition from its episode buffer in Python; here a
batch is one fancy-indexing operation over arrays built once, and the per-step work is only the update.
"""

from __future__ import annotations

import functools
import os
import pickle
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
from d3rlpy.dataset import TransitionMiniBatch
from rich.progress import Progress

from guardrl._parallel import run_forked, torch_threads
from guardrl.data import Dataset
from guardrl.data.audit import AuditConfig
from guardrl.errors import ConfigError
from guardrl.progress import make_progress
from guardrl.train.config import (
    MODEL_LEARNERS,
    TABULAR_LEARNERS,
    BCConfig,
    LearnerConfig,
    NetworkConfig,
    PlannerConfig,
    TrainConfig,
    learner_kind,
)
from guardrl.train.learners import ObsBounds, build_algo

Monitor = Callable[[Callable[[np.ndarray], np.ndarray]], dict[str, float]]
"""Given a greedy-action function over observations, returns metrics for the learning curve."""


@dataclass(frozen=True)
class TransitionArrays:
    """The dataset as float32 arrays in the shapes d3rlpy's ``TransitionMiniBatch`` wants."""

    observations: np.ndarray
    actions: np.ndarray  # (n, 1) float32 action indices, or (n, k) continuous actions
    rewards: np.ndarray  # (n, 1) float32
    next_observations: np.ndarray
    next_actions: np.ndarray  # as actions; 0 where the episode ended
    terminals: np.ndarray  # (n, 1) float32: terminations only; a truncation still bootstraps
    intervals: np.ndarray  # (n, 1) float32 ones
    episodes: np.ndarray | None = None  # (n,) episode number of each transition, where known

    @classmethod
    def from_dataset(cls, ds: Dataset) -> TransitionArrays:
        n = len(ds)
        actions = ds.actions.astype(np.float32).reshape(n, ds.action_dim)
        next_actions = np.zeros_like(actions)
        same_episode = ~ds.episode_ends[:-1]
        next_actions[:-1][same_episode] = actions[1:][same_episode]
        episodes = np.zeros(n, dtype=np.int64)
        episodes[ds.episode_starts[1:]] = 1
        return cls(
            observations=ds.observations.astype(np.float32),
            actions=actions,
            rewards=ds.rewards.astype(np.float32)[:, None],
            next_observations=ds.next_observations.astype(np.float32),
            next_actions=next_actions,
            terminals=ds.terminations.astype(np.float32)[:, None],
            intervals=np.ones((n, 1), dtype=np.float32),
            episodes=np.cumsum(episodes),
        )

    def take(self, idx: np.ndarray) -> TransitionArrays:
        """The transitions at ``idx``."""
        parts: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            parts[f.name] = None if value is None else value[idx]
        return TransitionArrays(**parts)

    def batch(self, idx: np.ndarray) -> TransitionMiniBatch:
        return TransitionMiniBatch(
            observations=self.observations[idx],
            actions=self.actions[idx],
            rewards=self.rewards[idx],
            next_observations=self.next_observations[idx],
            next_actions=self.next_actions[idx],
            terminals=self.terminals[idx],
            intervals=self.intervals[idx],
            transitions=[],
        )


@dataclass
class TrainResult:
    """A trained d3rlpy algorithm with its learning curve."""

    name: str
    algo: Any
    curve: dict[str, list[float]] = field(default_factory=dict)
    monitor: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    n_steps: int = 0
    stopped: str = ""
    """Why training ended when it followed the data (``bc.stop: held_out``)."""

    @property
    def steps_per_second(self) -> float:
        return self.n_steps / self.seconds if self.seconds > 0 else float("nan")

    def predict(self, obs: np.ndarray) -> np.ndarray:
        return np.asarray(self.algo.predict(np.asarray(obs, dtype=np.float32)), dtype=np.int64)


def resolve_device(device: str) -> str:
    """``cpu`` -> ``cpu:0``; ``cuda``/``cuda:N`` only when torch sees a GPU."""
    if device == "cpu" or device.startswith("cpu:"):
        return "cpu:0" if device == "cpu" else device
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device is {device!r} but torch sees no CUDA device")
        return "cuda:0" if device == "cuda" else device
    raise ConfigError(f"train.device must be 'cpu' or 'cuda[:N]', got {device!r}")


def to_cpu(algo: Any) -> Any:
    """Move a built d3rlpy algorithm to the CPU in place (and return it): its networks, optimizer states and
    its scalers' cached tensors, and the device it converts inputs to.

    A policy trained on a GPU is evaluated, exported and served on the CPU. d3rlpy's scalers keep torch copies
    of their statistics on the device of the first tensor they saw; left on the GPU, the first CPU input (the
    trace of an export, a rollout) stops with "Expected all tensors to be on the same device". A no-op on an
    algorithm already on the CPU.
    """
    from d3rlpy.dataclass_utils import asdict_without_copy
    from d3rlpy.types import OptimizerWrapperProto

    impl = getattr(algo, "impl", None)
    if impl is None or str(getattr(algo, "_device", "cpu")).startswith("cpu"):
        return algo
    cpu = torch.device("cpu")
    for value in asdict_without_copy(impl.modules).values():
        if isinstance(value, torch.nn.Module):
            value.to(cpu)
        elif isinstance(value, OptimizerWrapperProto):  # Adam's moments sit beside their parameters
            for state in value.optim.state.values():
                for key, tensor in state.items():
                    if isinstance(tensor, torch.Tensor):
                        state[key] = tensor.to(cpu)
    config = algo.config
    for name in ("observation_scaler", "action_scaler", "reward_scaler"):
        scaler = getattr(config, name, None)
        for key, value in list(vars(scaler).items()) if scaler is not None else []:
            if isinstance(value, torch.Tensor):
                # d3rlpy rebuilds a dropped ``_torch_*`` copy from its numpy statistics on the next input's device
                setattr(scaler, key, None if key.startswith("_torch_") else value.to(cpu))
    algo._device = "cpu:0"
    impl._device = "cpu:0"
    return algo


def train_learner(
    name: str,
    cfg: NetworkConfig,
    arrays: TransitionArrays,
    n_actions: int,
    bounds: ObsBounds,
    train_cfg: TrainConfig,
    seed: int,
    monitor: Monitor | None = None,
    progress: Progress | None = None,
    grid_size: int | None = None,
    state_table: np.ndarray | None = None,
) -> TrainResult:
    """Train one learner: the Q-learners for ``cfg.n_steps`` gradient steps, BC as ``cfg.stop`` says (by epochs,
    until its held-out loss stops improving, or a fixed count); deterministic for a given ``seed`` on CPU.
    ``grid_size`` or ``state_table``: the network's state encoder (:func:`~guardrl.train.learners.build_algo`)."""
    n = arrays.observations.shape[0]
    if n == 0:
        raise ValueError("cannot train on an empty dataset")
    device = resolve_device(train_cfg.device)
    rng = np.random.default_rng(seed)
    held_out = isinstance(cfg, BCConfig) and cfg.stop == "held_out"
    most = cfg.planned_steps(n) if isinstance(cfg, BCConfig) else cfg.n_steps
    result = TrainResult(name=name, algo=None, n_steps=most)
    task = progress.add_task(f"train {name}", total=most) if progress is not None else None
    start = time.perf_counter()
    with torch_threads(train_cfg.torch_threads):
        with torch.random.fork_rng(devices=[]):  # seeds init without touching the caller's torch RNG
            torch.manual_seed(seed)
            algo = build_algo(name, cfg, bounds, device, grid_size, state_table, schedule_steps=most)
            algo.create_impl((arrays.observations.shape[1],), n_actions)
            result.algo = algo

            def after(step: int) -> None:
                if monitor is not None and step % train_cfg.monitor_every == 0:
                    result.monitor.setdefault("step", []).append(step)
                    for key, value in monitor(result.predict).items():
                        result.monitor.setdefault(key, []).append(value)
                if progress is not None and task is not None:
                    progress.advance(task)

            if held_out:
                assert isinstance(cfg, BCConfig)
                from guardrl.train.stopping import train_until_stale

                result.curve, result.n_steps, result.stopped = train_until_stale(
                    algo, arrays, cfg, rng, train_cfg.log_every, after
                )
            else:
                result.curve = run_updates(algo, arrays, most, cfg.batch_size, rng, train_cfg.log_every, after)
            if monitor is not None and (not result.monitor or result.monitor["step"][-1] != result.n_steps):
                result.monitor.setdefault("step", []).append(result.n_steps)  # the policy as it ends
                for key, value in monitor(result.predict).items():
                    result.monitor.setdefault(key, []).append(value)
            if progress is not None and task is not None:
                progress.update(task, total=result.n_steps, completed=result.n_steps)
    to_cpu(algo)  # evaluation, export and serving run on the CPU
    result.seconds = time.perf_counter() - start
    return result


def run_updates(
    algo: Any,
    arrays: TransitionArrays,
    n_steps: int,
    batch_size: int,
    rng: np.random.Generator,
    log_every: int,
    after_step: Callable[[int], None] | None = None,
) -> dict[str, list[float]]:
    """``n_steps`` d3rlpy updates of ``algo`` on batches drawn uniformly from ``arrays``; returns the loss curve,
    each loss averaged over its window of ``log_every`` steps (the last window may be shorter)."""
    n = arrays.observations.shape[0]
    curve: dict[str, list[float]] = {}
    sums: dict[str, float] = {}
    for step in range(1, n_steps + 1):
        for key, value in algo.update(arrays.batch(rng.integers(0, n, size=batch_size))).items():
            sums[key] = sums.get(key, 0.0) + value
        if step % log_every == 0 or step == n_steps:
            count = step - (curve["step"][-1] if curve.get("step") else 0)
            curve.setdefault("step", []).append(step)
            for key, total in sums.items():
                curve.setdefault(key, []).append(total / count)
            sums = {}
        if after_step is not None:
            after_step(step)
    return curve


def learner_configs(cfg: TrainConfig) -> dict[str, LearnerConfig]:
    """The config of every candidate of ``cfg``, by name (``mopo-0.05``: MOPO with its penalty at 0.05)."""
    return {name: cfg.config_of(name) for name in cfg.chosen}


def portfolio_skips(cfg: TrainConfig, dataset: Dataset, audit_cfg: AuditConfig, world_model: Any) -> dict[str, str]:
    """With ``learners: auto``, the candidates that do not apply to these logs, each with the reason; an explicit
    list is trained as listed (a learner that cannot be trained is then an error naming why)."""
    if cfg.learners != "auto":
        return {}
    distinct = len(dataset.distinct_observations)
    indexed = distinct <= audit_cfg.max_exact_states
    listed = world_model is not None and world_model.kind != "gaussian"
    skips = {}
    for name, kind in zip(cfg.chosen, cfg.kinds, strict=True):
        if kind in TABULAR_LEARNERS and not indexed:
            skips[name] = (
                f"the logs hold {distinct} distinct observations, more than the audit indexes "
                f"(audit.max_exact_states {audit_cfg.max_exact_states}): no table of states to plan over"
            )
        elif kind in MODEL_LEARNERS and indexed and not listed:
            skips[name] = "the world model predicts a Gaussian next observation, not listed outcomes to plan over"
        elif kind == "cql" and indexed:
            skips[name] = ("the tabular planners apply to these indexed states at a fraction of CQL's training "
                           "time; list cql in train.learners to train it too")  # fmt: skip
    return skips


def train_all(
    dataset: Dataset,
    cfg: TrainConfig,
    bounds: ObsBounds | None = None,
    monitor: Monitor | None = None,
    show_progress: bool = True,
    grid_size: int | None = None,
    audit_cfg: AuditConfig | None = None,
    world_model: Any = None,
    hazard_budget: float | None = None,
    state_table: np.ndarray | None = None,
    skips: dict[str, str] | None = None,
) -> dict[str, TrainResult]:
    """Train every learner of ``cfg.chosen`` on ``dataset``.

    The network learners read a one-hot of the grid cell with ``grid_size``, an embedding of the nearest logged
    state with ``state_table``, else the raw observations. The tabular learners take the audit's state index
    (``audit_cfg``), ``mopo`` and ``morel`` the run's ``world_model``, and those with ``hazard_budget`` on plan
    under ``hazard_budget`` (the gate's limit). ``skips``: the portfolio's candidates to leave out, when the caller
    has already asked :func:`portfolio_skips`."""
    learner_cfgs = learner_configs(cfg)  # TrainConfig refuses unknown learner names when it is built
    if skips is None:
        skips = portfolio_skips(cfg, dataset, audit_cfg or AuditConfig(), world_model)
    arrays = TransitionArrays.from_dataset(dataset)
    bounds = bounds or ObsBounds(*dataset.observation_range())
    children = np.random.SeedSequence(cfg.seed).generate_state(len(cfg.chosen))
    seeds = {name: int(child) for name, child in zip(cfg.chosen, children, strict=True)}
    kept = [name for name in cfg.chosen if name not in skips]
    networks = [name for name in kept if learner_kind(name) not in TABULAR_LEARNERS]
    results: dict[str, TrainResult] = {}
    with make_progress(show_progress) as progress:
        for name in kept:
            if name not in networks:
                results[name] = _train_tabular(
                    name, learner_cfgs[name], dataset, audit_cfg or AuditConfig(), world_model, hazard_budget,
                    monitor, progress,
                )  # fmt: skip

        def job(name: str, in_child: bool) -> Callable[[], TrainResult]:
            network_cfg = learner_cfgs[name]
            assert not isinstance(network_cfg, PlannerConfig)  # the tabular learners went above
            # a child cannot draw on the parent's progress bar: the parent shows one task for the whole batch
            shown = None if in_child else progress
            return functools.partial(
                train_learner, name, network_cfg, arrays, dataset.n_actions, bounds, cfg, seeds[name], monitor, shown,
                grid_size, state_table,
            )  # fmt: skip

        forked = cfg.workers > 1 and len(networks) > 1 and resolve_device(cfg.device).startswith("cpu")
        if forked:
            task = progress.add_task(f"train {', '.join(networks)} ({cfg.workers} processes)", total=len(networks))
            # by value through a plain pickle: torch's reducers would pass tensors as file descriptors of a child
            # that has exited by the time the parent reads them (the bytes come from our own child process)
            packed = run_forked([_packed(job(name, True)) for name in networks], cfg.workers)
            trained = [pickle.loads(blob) for blob in packed]  # noqa: S301
            progress.update(task, completed=len(networks))
        else:
            trained = [job(name, False)() for name in networks]
        results.update(zip(networks, trained, strict=True))
    return {name: results[name] for name in kept}  # in the order of cfg.chosen


def _packed(job: Callable[[], TrainResult]) -> Callable[[], bytes]:
    """``job`` for a forked child: its result as pickled bytes, and nothing written to the standard streams (a
    child forked while the parent's progress bar refreshes may inherit their locks held)."""

    def run() -> bytes:
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the child
        return pickle.dumps(job())

    return run


def _train_tabular(
    name: str,
    cfg: LearnerConfig,
    dataset: Dataset,
    audit_cfg: AuditConfig,
    world_model: Any,
    hazard_budget: float | None,
    monitor: Monitor | None,
    progress: Progress | None,
) -> TrainResult:
    from guardrl.train.tabular import train_tabular

    assert isinstance(cfg, PlannerConfig)
    policy, seconds = train_tabular(name, cfg, dataset, audit_cfg, world_model, hazard_budget, progress)
    result = TrainResult(name=name, algo=policy, seconds=seconds, n_steps=int(policy.info.get("plans", 1)))
    result.curve = {"step": [result.n_steps], **{k: [float(v)] for k, v in policy.info.items() if _number(v)}}
    if monitor is not None:
        result.monitor = {"step": [result.n_steps], **{k: [v] for k, v in monitor(result.predict).items()}}
    return result


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
