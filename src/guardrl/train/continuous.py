"""Offline learners for continuous actions through d3rlpy 2.8.1: BC, TD3+BC, IQL and CQL.

Each learner is a small frozen config with the reference implementation's hyper-parameters and its input
normalization (written into :attr:`ContinuousResult.normalization` for the model card):

* BC: observations standardized; a deterministic policy regressed on the logged actions (mean squared error).
* TD3+BC (Fujimoto & Gu, 2021): observations standardized as the paper does; rewards as logged; ``alpha`` 2.5.
* IQL (Kostrikov et al., 2022; CORL): observations standardized; rewards times ``1000 / (max - min episode
  return)`` (IQL's rule for D4RL locomotion); expectile 0.7, temperature 3.0.
* CQL (Kumar et al., 2020; d3rlpy's D4RL settings): observations standardized; a fixed conservative weight (5.0),
  10 sampled actions.

Training feeds d3rlpy's ``update()`` with batches drawn by one fancy-index over arrays built once, as the
discrete trainer does, and every optimizer is torch's fused Adam. ``fit_with_d3rlpy`` runs d3rlpy's own
``fit()`` on the same config, for the throughput comparison in ``bench/continuous.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from guardrl._d3rlpy import import_d3rlpy
from guardrl._parallel import torch_threads
from guardrl.data import Dataset
from guardrl.errors import ConfigError
from guardrl.progress import make_progress
from guardrl.train.config import CONTINUOUS_LEARNERS, ContinuousLearner

d3rlpy = import_d3rlpy()  # before the modules below import it loudly (the legacy gym banner)
from d3rlpy.models import VectorEncoderFactory  # noqa: E402
from d3rlpy.preprocessing import MultiplyRewardScaler, StandardObservationScaler  # noqa: E402

from guardrl.train.learners import FusedAdamFactory, LearnerConfigError, _make  # noqa: E402
from guardrl.train.trainer import (  # noqa: E402
    TrainResult,
    TransitionArrays,
    resolve_device,
    run_updates,
    to_cpu,
)


@dataclass(frozen=True)
class ContinuousLearnerConfig:
    """One continuous learner: its name, steps, network and d3rlpy options beyond the reference defaults."""

    name: ContinuousLearner
    n_steps: int = 20_000
    batch_size: int = 256
    hidden_units: tuple[int, ...] = (256, 256)
    learning_rate: float | None = None
    """None: the reference's (BC 1e-3; TD3+BC, IQL and CQL's critic 3e-4; CQL's actor 1e-4)."""
    gamma: float = 0.99
    reward_multiplier: float | None = None
    """Rewards are multiplied by this; None: the reference's rule (IQL: 1000 / (max - min episode return); the
    others: 1). IQL's rule was made for D4RL locomotion's 1000-step episodes; on short episodes with large
    terminal rewards it inflates advantages until every weight hits IQL's clip."""
    conservative_weight: float = 5.0
    """CQL only: the weight of its conservative term (CORL's D4RL setting, held fixed)."""
    d3rlpy_kwargs: dict[str, Any] = field(default_factory=dict)
    """Passed to d3rlpy's config as they are; an option d3rlpy does not know is an error, never dropped."""

    def __post_init__(self) -> None:
        if self.name not in CONTINUOUS_LEARNERS:
            raise ConfigError(f"continuous learner {self.name!r} is not one of {list(CONTINUOUS_LEARNERS)}")
        if self.n_steps < 1 or self.batch_size < 1 or not self.hidden_units:
            raise ConfigError(f"{self.name}: n_steps and batch_size must be >= 1, hidden_units non-empty")


def normalization(name: ContinuousLearner, ds: Dataset, reward_multiplier: float | None = None) -> dict[str, Any]:
    """The input normalization for ``name`` on ``ds`` (the reference's, unless ``reward_multiplier`` is given),
    as the model card records it."""
    mean = ds.observations.mean(axis=0)
    std = ds.observations.std(axis=0) + 1e-3  # TD3+BC's epsilon
    out: dict[str, Any] = {
        "observation": {"rule": "standardized with the logs' mean and std (+1e-3)", "mean": mean.tolist(),
                        "std": std.tolist()},
        "reward": {"rule": "as logged", "multiplier": 1.0},
    }  # fmt: skip
    if name == "iql":
        returns = ds.episode_returns()
        span = float(returns.max() - returns.min())
        multiplier = 1000.0 / span if span > 0 else 1.0
        out["reward"] = {
            "rule": "times 1000 / (max - min episode return), IQL's locomotion rule",
            "multiplier": multiplier,
        }
    return out


def build_continuous(cfg: ContinuousLearnerConfig, norm: dict[str, Any], device: str) -> Any:
    """The d3rlpy algorithm object for ``cfg`` (not yet built), with the normalization ``norm``."""
    obs = norm["observation"]
    encoder = VectorEncoderFactory(hidden_units=list(cfg.hidden_units))
    common: dict[str, Any] = {
        "batch_size": cfg.batch_size,
        "gamma": cfg.gamma,
        "observation_scaler": StandardObservationScaler(mean=np.asarray(obs["mean"]), std=np.asarray(obs["std"])),
    }
    lr = cfg.learning_rate
    if cfg.name == "bc":
        kwargs = {
            **common,
            "encoder_factory": encoder,
            "learning_rate": lr or 1e-3,
            "optim_factory": FusedAdamFactory(),
        }
        kwargs.pop("gamma")
        return _make(d3rlpy.algos.BCConfig, cfg.name, {**kwargs, **cfg.d3rlpy_kwargs}).create(device=device)
    q_common = {
        **common,
        "actor_encoder_factory": encoder, "critic_encoder_factory": encoder,
        "actor_optim_factory": FusedAdamFactory(), "critic_optim_factory": FusedAdamFactory(),
        "reward_scaler": MultiplyRewardScaler(norm["reward"]["multiplier"]),
    }  # fmt: skip
    cls: Any
    if cfg.name == "td3bc":
        cls = d3rlpy.algos.TD3PlusBCConfig
        extra: dict[str, Any] = {"actor_learning_rate": lr or 3e-4, "critic_learning_rate": lr or 3e-4, "alpha": 2.5}
    elif cfg.name == "iql":
        cls = d3rlpy.algos.IQLConfig
        extra = {
            "actor_learning_rate": lr or 3e-4, "critic_learning_rate": lr or 3e-4, "expectile": 0.7,
            "weight_temp": 3.0, "value_encoder_factory": encoder,
        }  # fmt: skip
    else:
        cls = d3rlpy.algos.CQLConfig
        extra = {
            "actor_learning_rate": lr or 1e-4, "critic_learning_rate": lr or 3e-4,
            "conservative_weight": cfg.conservative_weight, "n_action_samples": 10,
            "alpha_learning_rate": 0.0,  # a fixed conservative weight, as CORL's
            "temp_optim_factory": FusedAdamFactory(), "alpha_optim_factory": FusedAdamFactory(),
        }  # fmt: skip
    return _make(cls, cfg.name, {**q_common, **extra, **cfg.d3rlpy_kwargs}).create(device=device)


@dataclass
class ContinuousResult(TrainResult):
    """A trained continuous learner: the d3rlpy algorithm, its loss curve, and the normalization and action box
    it was trained with."""

    normalization: dict[str, Any] = field(default_factory=dict)
    action_bounds: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())

    def predict(self, obs: np.ndarray) -> np.ndarray:
        """The policy's actions (n, k) at observations (n, d), clipped to the logged action box."""
        low, high = self.action_bounds
        action = self.algo.predict(np.asarray(obs, dtype=np.float32))
        return np.clip(np.asarray(action, dtype=np.float64), low, high)


def train_continuous(
    cfg: ContinuousLearnerConfig,
    ds: Dataset,
    seed: int,
    device: str = "cpu",
    threads: int = 1,
    log_every: int = 1000,
    show_progress: bool = False,
) -> ContinuousResult:
    """Train ``cfg`` on ``ds`` for ``cfg.n_steps`` gradient steps; the same seed gives the same policy on CPU."""
    if ds.action_bounds is None:
        raise ValueError("continuous learners need a dataset with continuous actions (action_bounds)")
    arrays = TransitionArrays.from_dataset(ds)
    norm = normalization(cfg.name, ds, cfg.reward_multiplier)
    result = ContinuousResult(cfg.name, None, normalization=norm, action_bounds=ds.action_bounds, n_steps=cfg.n_steps)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    with torch_threads(threads), torch.random.fork_rng(devices=[]), make_progress(show_progress) as progress:
        task = progress.add_task(f"train {cfg.name}", total=cfg.n_steps)
        torch.manual_seed(seed)
        algo = build_continuous(cfg, norm, resolve_device(device))
        algo.create_impl((ds.obs_dim,), ds.action_dim)
        result.algo = algo
        result.curve = run_updates(
            algo, arrays, cfg.n_steps, cfg.batch_size, rng, log_every, lambda step: progress.advance(task)
        )
    to_cpu(algo)  # evaluation, export and serving run on the CPU
    result.seconds = time.perf_counter() - start
    return result


def fit_with_d3rlpy(cfg: ContinuousLearnerConfig, ds: Dataset, seed: int, threads: int = 1) -> float:
    """Seconds d3rlpy's own ``fit()`` takes for ``cfg.n_steps`` steps of the same learner, same config (fused
    Adam included) on the same data, with its own episode buffer and sampler."""
    from guardrl.train.mdp import to_mdp_dataset

    norm = normalization(cfg.name, ds, cfg.reward_multiplier)
    mdp = to_mdp_dataset(ds)
    with torch_threads(threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        d3rlpy.seed(seed)
        algo = build_continuous(cfg, norm, "cpu:0")
        start = time.perf_counter()
        algo.fit(
            mdp, n_steps=cfg.n_steps, n_steps_per_epoch=cfg.n_steps, show_progress=False, save_interval=10**9,
            logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
        )  # fmt: skip
        return time.perf_counter() - start


__all__ = [
    "CONTINUOUS_LEARNERS",
    "ContinuousLearnerConfig",
    "ContinuousResult",
    "LearnerConfigError",
    "build_continuous",
    "fit_with_d3rlpy",
    "normalization",
    "train_continuous",
]
