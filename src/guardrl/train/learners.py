"""Build d3rlpy algorithms from guardrl learner configs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import d3rlpy
import numpy as np
import torch
from d3rlpy.models.encoders import EncoderFactory, VectorEncoderFactory, register_encoder_factory
from d3rlpy.optimizers import AdamFactory, CosineAnnealingLRFactory
from d3rlpy.preprocessing import MinMaxObservationScaler, MultiplyRewardScaler
from torch import nn

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


class GridEncoder(nn.Module):
    """One-hot of the grid cell, then an MLP: a tabular input for (x, y) grid observations.

    A hazard is one cell; on raw coordinates a small MLP smooths its value into the neighbours' and a greedy
    policy can step into it. Inputs arrive min-max scaled to [-1, 1] (bounds 0 .. size-1), so the cell index
    is recovered by rounding; it stays inside the exported TorchScript/ONNX graph.
    """

    def __init__(self, size: int, hidden_units: list[int]):
        super().__init__()
        self.size = size
        # an embedding row per cell is exactly a linear layer on the one-hot, without materializing it
        self.embed = nn.Embedding(size * size, hidden_units[0])
        layers: list[nn.Module] = [nn.ReLU()]
        for width, units in zip(hidden_units[:-1], hidden_units[1:], strict=True):
            layers += [nn.Linear(width, units), nn.ReLU()]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xy = torch.round((x[:, :2] + 1.0) * 0.5 * (self.size - 1)).clamp(0, self.size - 1).long()
        return self.layers(self.embed(xy[:, 1] * self.size + xy[:, 0]))


@dataclass()
class GridEncoderFactory(EncoderFactory):
    """d3rlpy encoder factory for :class:`GridEncoder`."""

    size: int = 15
    hidden_units: list[int] = field(default_factory=lambda: [64, 64])

    def create(self, observation_shape: Any) -> GridEncoder:
        if tuple(observation_shape) != (2,):
            raise LearnerConfigError(f"the grid encoder needs (x, y) observations, got shape {observation_shape}")
        return GridEncoder(self.size, list(self.hidden_units))

    def create_with_action(self, observation_shape: Any, action_size: int, discrete_action: bool = False) -> Any:
        raise NotImplementedError("the grid encoder is for discrete-action Q-functions and policies")

    @staticmethod
    def get_type() -> str:
        return "guardrl_grid"


register_encoder_factory(GridEncoderFactory)


def _make(cls: Any, name: str, kwargs: dict[str, Any]) -> Any:
    try:
        return cls(**kwargs)
    except TypeError as exc:
        message = f"{name}: d3rlpy {d3rlpy.__version__} {cls.__name__} rejected an option: {exc}"
        raise LearnerConfigError(message) from None


def build_algo(name: str, cfg: LearnerConfig, bounds: ObsBounds, device: str, grid_size: int | None = None) -> Any:
    """Create the d3rlpy algorithm object for learner ``name`` (not yet built).

    With ``grid_size`` the network reads a one-hot of the (x, y) cell (:class:`GridEncoder`) instead of the raw
    coordinates.
    """
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise LearnerConfigError(f"{name}.lr_schedule: {cfg.lr_schedule!r} is not one of {list(LR_SCHEDULES)}")
    schedule = CosineAnnealingLRFactory(T_max=cfg.n_steps) if cfg.lr_schedule == "cosine" else None
    common: dict[str, Any] = {
        "optim_factory": AdamFactory(lr_scheduler_factory=schedule),
        "batch_size": cfg.batch_size,
        "learning_rate": cfg.learning_rate,
        "encoder_factory": (
            GridEncoderFactory(size=grid_size, hidden_units=list(cfg.hidden_units))
            if grid_size is not None
            else VectorEncoderFactory(hidden_units=list(cfg.hidden_units))
        ),
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
