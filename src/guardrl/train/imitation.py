"""Behaviour cloning on labelled states: the learner DAgger retrains on its aggregate (logged actions plus an
expert's labels), with the run's own BC config, so a DAgger policy exports and is served like any other."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from guardrl.train.config import TrainConfig
from guardrl.train.learners import ObsBounds
from guardrl.train.trainer import TrainResult, TransitionArrays, train_learner


def label_arrays(observations: NDArray[np.floating], actions: NDArray[np.integer]) -> TransitionArrays:
    """(observation, action) pairs in the shapes the trainer feeds d3rlpy; BC reads nothing else, so rewards,
    next observations and endings are placeholders."""
    obs = np.asarray(observations, dtype=np.float32)
    n = len(obs)
    zeros = np.zeros((n, 1), dtype=np.float32)
    return TransitionArrays(
        observations=obs, actions=np.asarray(actions, dtype=np.float32).reshape(n, 1), rewards=zeros,
        next_observations=obs, next_actions=zeros, terminals=np.ones((n, 1), dtype=np.float32),
        intervals=np.ones((n, 1), dtype=np.float32),
    )  # fmt: skip


def fit_bc(
    observations: NDArray[np.floating],
    actions: NDArray[np.integer],
    n_actions: int,
    cfg: TrainConfig,
    bounds: ObsBounds,
    seed: int,
    grid_size: int | None = None,
    state_table: NDArray[np.floating] | None = None,
) -> TrainResult:
    """BC (``cfg.bc``) on the given pairs; deterministic for a given ``seed`` on CPU. ``grid_size`` or
    ``state_table``: the network's state encoder, as :func:`~guardrl.train.trainer.train_all` takes them."""
    actions = np.asarray(actions)
    if len(actions) and not (0 <= actions.min() and actions.max() < n_actions):
        raise ValueError(f"labels hold actions outside [0, {n_actions})")
    return train_learner(
        "bc", cfg.bc, label_arrays(observations, actions), n_actions, bounds, cfg, seed, grid_size=grid_size,
        state_table=state_table,
    )  # fmt: skip
