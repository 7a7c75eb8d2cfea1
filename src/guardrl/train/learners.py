"""Build d3rlpy algorithms from guardrl learner configs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import d3rlpy
import numpy as np
from d3rlpy.models.encoders import VectorEncoderFactory
from d3rlpy.optimizers import AdamFactory, CosineAnnealingLRFactory
from d3rlpy.preprocessing import MinMaxObservationScaler, MultiplyRewardScaler

from guardrl.train.config import LR_SCHEDULES, BCConfig, BCQConfig, CQLConfig, DQNConfig, LearnerConfig, QLearnerConfig


class LearnerConfigError(ValueError):
    """A learner option that d3rlpy does not accept."""


@dataclass(frozen=True)
class ObsBounds:
    """Observation bounds used to scale inputs to [-1, 1] inside the network (and the exported policy)."""

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def from_arrays(cls, *arrays: np.ndarray) -> ObsBounds:
        stacked = np.concatenate(arrays, axis=0)
        low, high = stacked.min(axis=0).astype(np.float64), stacked.max(axis=0).astype(np.float64)
        high = np.where(high > low, high, low + 1.0)  # a constant feature must not divide by zero
        return cls(low, high)


def _make(cls: Any, name: str, kwargs: dict[str, Any]) -> Any:
    try:
        return cls(**kwargs)
    except TypeError as exc:
        message = f"{name}: d3rlpy {d3rlpy.__version__} {cls.__name__} rejected an option: {exc}"
        raise LearnerConfigError(message) from None


def build_algo(name: str, cfg: LearnerConfig, bounds: ObsBounds, device: str) -> Any:
    """Create the d3rlpy algorithm object for learner ``name`` (not yet built)."""
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise LearnerConfigError(f"{name}.lr_schedule: {cfg.lr_schedule!r} is not one of {list(LR_SCHEDULES)}")
    schedule = CosineAnnealingLRFactory(T_max=cfg.n_steps) if cfg.lr_schedule == "cosine" else None
    common: dict[str, Any] = {
        "optim_factory": AdamFactory(lr_scheduler_factory=schedule),
        "batch_size": cfg.batch_size,
        "learning_rate": cfg.learning_rate,
        "encoder_factory": VectorEncoderFactory(hidden_units=list(cfg.hidden_units)),
        "observation_scaler": MinMaxObservationScaler(minimum=bounds.low, maximum=bounds.high),
    }
    if isinstance(cfg, BCConfig):
        return _make(d3rlpy.algos.DiscreteBCConfig, name, {**common, "beta": cfg.beta, **cfg.d3rlpy_kwargs}).create(
            device=device
        )
    if not isinstance(cfg, QLearnerConfig):
        raise LearnerConfigError(f"{name}: unsupported learner config {type(cfg).__name__}")
    q_common = {
        **common,
        "gamma": cfg.gamma,
        "target_update_interval": cfg.target_update_interval,
        "n_critics": cfg.n_critics,
        "reward_scaler": MultiplyRewardScaler(cfg.reward_scale),
    }
    cls: Any
    if isinstance(cfg, CQLConfig):
        cls, extra = d3rlpy.algos.DiscreteCQLConfig, {"alpha": cfg.alpha}
    elif isinstance(cfg, DQNConfig):
        cls, extra = d3rlpy.algos.DQNConfig, {}
    elif isinstance(cfg, BCQConfig):
        cls, extra = (
            d3rlpy.algos.DiscreteBCQConfig,
            {
                "action_flexibility": cfg.action_flexibility,
                "beta": cfg.beta,
                "share_encoder": cfg.share_encoder,
            },
        )
    else:
        raise LearnerConfigError(f"{name}: unsupported learner config {type(cfg).__name__}")
    return _make(cls, name, {**q_common, **extra, **cfg.d3rlpy_kwargs}).create(device=device)
