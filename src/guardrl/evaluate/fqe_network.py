"""FQE with a network (``ope.fqe_function_class: network``): d3rlpy's ``DiscreteFQE`` built directly
(``FQEConfig.create()`` is not implemented in d3rlpy 2.8.1) and trained with guardrl's batch loop. Any policy
works as its target through :class:`PolicyAlgo`, which exposes a greedy-action function as the d3rlpy algorithm
``DiscreteFQE`` queries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from guardrl._d3rlpy import import_d3rlpy
from guardrl._parallel import torch_threads
from guardrl.data import Dataset
from guardrl.evaluate.ope_config import OPEConfig

d3rlpy = import_d3rlpy()


class _PolicyImpl:
    """What ``DiscreteFQE`` asks of its target algorithm: best actions for (scaled) torch observations.

    ``pending`` short-cuts the call: the training loop knows the batch's next observations and puts the
    policy's actions for them (computed once for the whole dataset) here before each update.
    """

    def __init__(self, act: Callable[[NDArray[np.float32]], NDArray[np.int64]], low: NDArray, high: NDArray):
        self._act, self._low, self._high = act, low, high
        self.pending: torch.Tensor | None = None

    def predict_best_action(self, x: torch.Tensor) -> torch.Tensor:
        if self.pending is not None and self.pending.shape[0] == x.shape[0]:
            actions, self.pending = self.pending, None
            return actions.to(x.device)
        scaled = x.detach().cpu().numpy().astype(np.float64)
        obs = ((scaled + 1.0) / 2.0 * (self._high - self._low) + self._low).astype(np.float32)  # MinMax inverse
        return torch.as_tensor(self._act(obs), dtype=torch.int64, device=x.device)


class PolicyAlgo:
    """Any policy as the ``algo`` of d3rlpy's ``DiscreteFQE`` (it only calls ``algo.impl.predict_best_action``)."""

    def __init__(self, act: Callable[[NDArray[np.float32]], NDArray[np.int64]], low: NDArray, high: NDArray):
        self.impl = _PolicyImpl(act, low, high)


@dataclass
class FQEModel:
    """A fitted FQE: Q(s, a) of one target policy for one signal (reward or cost)."""

    fqe: Any
    scale: float = 1.0
    loss: list[float] = field(default_factory=list)

    def q(self, obs: NDArray[np.float32]) -> NDArray[np.float64]:
        """(N, A) action values in original (unscaled) signal units."""
        n_actions = self.fqe.impl.action_size
        obs = np.asarray(obs, dtype=np.float32)
        cols = [self.fqe.predict_value(obs, np.full(len(obs), a)) for a in range(n_actions)]
        return np.stack(cols, axis=1).astype(np.float64) / self.scale


def fit_fqe(
    ds: Dataset,
    signal: NDArray[np.float64],
    act: Callable[[NDArray[np.float32]], NDArray[np.int64]],
    cfg: OPEConfig,
    low: NDArray,
    high: NDArray,
    seed: int,
    next_act: Callable[[NDArray[np.int64]], NDArray[np.int64]] | None = None,
    scale: float = 1.0,
    grid_size: int | None = None,
) -> FQEModel:
    """Fit d3rlpy ``DiscreteFQE`` for the policy ``act`` on transitions whose reward is ``signal``.

    ``next_act(idx)`` gives the policy's actions at the next observations of transitions ``idx`` (precomputed);
    by default ``act`` is called on them.
    """
    if next_act is None:

        def next_act(idx: NDArray[np.int64]) -> NDArray[np.int64]:
            return act(ds.next_observations[idx].astype(np.float32))

    from d3rlpy.models.encoders import VectorEncoderFactory
    from d3rlpy.preprocessing import MinMaxObservationScaler

    from guardrl.train.learners import FusedAdamFactory, GridEncoderFactory, SquaredErrorQFunctionFactory
    from guardrl.train.trainer import TransitionArrays

    n = len(ds)
    # the learners' batch arrays, with the signal as reward and the logged horizon ending every episode
    arrays = replace(
        TransitionArrays.from_dataset(ds),
        rewards=(signal * scale).astype(np.float32)[:, None],
        terminals=(ds.terminations | ds.truncations).astype(np.float32)[:, None],
    )
    config = d3rlpy.ope.FQEConfig(
        learning_rate=cfg.fqe_learning_rate,
        batch_size=cfg.fqe_batch_size,
        gamma=cfg.gamma,
        target_update_interval=cfg.fqe_target_update_interval,
        encoder_factory=(
            GridEncoderFactory(size=grid_size, hidden_units=list(cfg.fqe_hidden_units))
            if grid_size is not None
            else VectorEncoderFactory(hidden_units=list(cfg.fqe_hidden_units))
        ),
        observation_scaler=MinMaxObservationScaler(minimum=low, maximum=high),
        optim_factory=FusedAdamFactory(),
        **({"q_func_factory": SquaredErrorQFunctionFactory()} if cfg.fqe_td_loss == "mse" else {}),
    )
    rng = np.random.default_rng(seed)
    model = FQEModel(fqe=None, scale=scale)
    with torch_threads(1):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            algo = PolicyAlgo(act, low, high)
            fqe = d3rlpy.ope.DiscreteFQE(algo=algo, config=config, device="cpu:0")
            fqe.create_impl((ds.obs_dim,), ds.n_actions)
            model.fqe = fqe
            for _ in range(cfg.fqe_steps):
                idx = rng.integers(0, n, size=cfg.fqe_batch_size)
                algo.impl.pending = torch.as_tensor(next_act(idx), dtype=torch.int64)
                model.loss.append(fqe.update(arrays.batch(idx))["loss"])
    return model
