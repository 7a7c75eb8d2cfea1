"""Build d3rlpy algorithms from guardrl learner configs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import d3rlpy
import numpy as np
from d3rlpy.models.encoders import VectorEncoderFactory
from d3rlpy.preprocessing import MinMaxObservationScaler, MultiplyRewardScaler

from guardrl.train.config import BCConfig, CQLConfig


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


def build_algo(name: str, cfg: BCConfig | CQLConfig, bounds: ObsBounds, device: str) -> Any:
    """Create the d3rlpy algorithm object for learner ``name`` (not yet built)."""
    common: dict[str, Any] = {
        "batch_size": cfg.batch_size,
        "learning_rate": cfg.learning_rate,
        "encoder_factory": VectorEncoderFactory(hidden_units=list(cfg.hidden_units)),
        "observation_scaler": MinMaxObservationScaler(minimum=bounds.low, maximum=bounds.high),
    }
    if isinstance(cfg, BCConfig):
        d3cfg = _make(d3rlpy.algos.DiscreteBCConfig, name, {**common, "beta": cfg.beta, **cfg.d3rlpy_kwargs})
    elif isinstance(cfg, CQLConfig):
        kwargs = {
            **common,
            "alpha": cfg.alpha,
            "gamma": cfg.gamma,
            "target_update_interval": cfg.target_update_interval,
            "n_critics": cfg.n_critics,
            "reward_scaler": MultiplyRewardScaler(cfg.reward_scale),
            **cfg.d3rlpy_kwargs,
        }
        d3cfg = _make(d3rlpy.algos.DiscreteCQLConfig, name, kwargs)
    else:
        raise LearnerConfigError(f"{name}: unsupported learner config {type(cfg).__name__}")
    return d3cfg.create(device=device)
