"""Importance sampling for continuous-action policies, with the behaviour densities the logs carry.

A deterministic continuous policy has density 0 at every logged action but its own, so no importance weight
exists for it. As the discrete estimators soften a greedy target, these evaluate the *smoothed* target: in the
box's coordinates mapped to [-1, 1]^k, ``a = tanh(u)`` with ``u ~ N(atanh(clip(mu(s), ±0.95)), std^2)`` per
axis, around the policy's action ``mu(s)`` (the same squashed Gaussian SafeNav's loggers use, so its density
is exact, with respect to area on the box like the logged propensities). The ratio of densities is the weight.
The output names the smoothing, and the estimate is the smoothed policy's value, not the deterministic one's:
with ``std`` small the two meet but the weights grow heavy (the effective sample size is reported).

FQE (:func:`continuous_fqe`) evaluates the deterministic policy itself: d3rlpy's continuous ``FQE`` built
directly, fed by guardrl's batch loop with the policy's actions at every logged next observation computed once.
As the discrete network FQE, the logged horizon ends the value, and its interval is a bootstrap over start
observations only (the fit's own error is not in it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from guardrl.data import Dataset
from guardrl.envs.safenav import squashed_gaussian_log_density
from guardrl.errors import ConfigError
from guardrl.evaluate.fqe_network import d3rlpy
from guardrl.evaluate.importance import Padded, _bootstrap_ratio, _ess, pdis_values, wis_parts
from guardrl.evaluate.metrics import bootstrap
from guardrl.evaluate.ope_config import OPEConfig

CENTRE_CLIP = 0.95
"""The smoothed target's centre is kept this far inside the unit box (atanh of ±1 is infinite)."""


def to_unit_box(actions: NDArray[np.floating], bounds: tuple[tuple[float, ...], tuple[float, ...]]) -> NDArray:
    """Actions (n, k) in the box ``bounds`` mapped affinely onto [-1, 1]^k."""
    low, high = np.asarray(bounds[0], dtype=np.float64), np.asarray(bounds[1], dtype=np.float64)
    return (2.0 * np.asarray(actions, dtype=np.float64) - (high + low)) / (high - low)


def smoothed_log_density(
    policy_actions: NDArray[np.floating],
    actions: NDArray[np.floating],
    bounds: tuple[tuple[float, ...], tuple[float, ...]],
    std: float,
) -> NDArray[np.float64]:
    """Log density, with respect to area on the box ``bounds``, of ``actions`` (n, k) under the target smoothed
    around ``policy_actions`` (n, k) with ``std`` (see the module docstring)."""
    if not std > 0:
        raise ConfigError(f"ope: the smoothing std must be > 0, got {std}")
    low, high = np.asarray(bounds[0], dtype=np.float64), np.asarray(bounds[1], dtype=np.float64)
    centre = np.arctanh(np.clip(to_unit_box(policy_actions, bounds), -CENTRE_CLIP, CENTRE_CLIP))
    jacobian = float(np.log(2.0 / (high - low)).sum())  # unit-box density -> density on the box
    return squashed_gaussian_log_density(to_unit_box(actions, bounds), centre, std) + jacobian


def continuous_is(
    ds: Dataset,
    policy: Callable[[NDArray[np.float32]], NDArray[np.floating]],
    cfg: OPEConfig,
    std: float = 0.2,
    name: str = "policy",
) -> dict[str, Any]:
    """PDIS and WIS of return (and cost, with ``cfg.cost``) for ``policy`` (observations -> actions in the box)
    smoothed with ``std``, from logs with continuous actions and their behaviour densities; each estimate with
    a percentile bootstrap interval over episodes (``cfg.n_bootstrap``, ``cfg.confidence``, ``cfg.seed``)."""
    if ds.action_bounds is None:
        raise ConfigError("ope: continuous importance sampling needs logs with continuous actions")
    dens = ds.propensities
    missing = int((~np.isfinite(dens) | (dens <= 0)).sum())
    if missing:
        raise ConfigError(
            f"ope: {missing} transitions have no behaviour density (propensity), which importance sampling needs; "
            "log the behaviour's density of each action"
        )
    mu = np.asarray(policy(ds.observations.astype(np.float32)), dtype=np.float64)
    if mu.shape != ds.actions.shape:
        raise ValueError(f"ope: the policy returned actions of shape {mu.shape}, expected {ds.actions.shape}")
    log_ratio = smoothed_log_density(mu, ds.actions, ds.action_bounds, std) - np.log(dens)
    padded = Padded.from_ratios(ds, np.exp(log_ratio))
    rng = np.random.default_rng(cfg.seed)
    signals = {"return": padded.rewards, "cost": padded.costs} if cfg.cost else {"return": padded.rewards}
    weights = np.prod(padded.ratios, axis=1)
    out: dict[str, Any] = {
        "policy": name,
        "smoothing": {"std": std, "rule": "squashed Gaussian around the policy's action on the unit box"},
        "weights": {
            "mean_ratio": float(padded.ratios[padded.valid].mean()),
            "ess_episodes": _ess(weights),
            "episodes": int(padded.valid.shape[0]),
        },
        "estimates": {},
    }
    for key, signal in signals.items():
        pdis = pdis_values(padded, signal, cfg.gamma)
        w, g = wis_parts(padded, signal, cfg.gamma)
        out["estimates"][key] = {
            "pdis": bootstrap({"pdis": pdis}, cfg.n_bootstrap, cfg.confidence, rng)["pdis"].to_dict(),
            "wis": _bootstrap_ratio(w, g, rng, cfg.n_bootstrap, cfg.confidence).to_dict(),
        }
    return out


class _PendingActions:
    """What d3rlpy's ``FQE`` asks of its target algorithm (``impl.predict_best_action``), answered with the
    policy's actions for the batch's next observations, which the loop puts in ``pending`` before each update."""

    def __init__(self) -> None:
        self.impl = self
        self.pending: Any = None

    def predict_best_action(self, x: Any) -> Any:
        if self.pending is None or self.pending.shape[0] != x.shape[0]:
            raise RuntimeError("continuous FQE: the next actions of this batch were not set")
        actions, self.pending = self.pending, None
        return actions.to(x.device)


def continuous_fqe(
    ds: Dataset,
    policy: Callable[[NDArray[np.float32]], NDArray[np.floating]],
    cfg: OPEConfig,
    name: str = "policy",
    device: str = "cpu:0",
) -> dict[str, Any]:
    """FQE of return (and cost, with ``cfg.cost``) for the deterministic ``policy`` (observations -> actions in
    the box) from logs with continuous actions: ``cfg.fqe_steps`` updates of ``cfg.fqe_batch_size`` on the
    squared TD error (d3rlpy's continuous mean Q-function has no Huber form; ``fqe_td_loss`` is for discrete),
    rewards times ``cfg.fqe_reward_scale`` (costs ``fqe_cost_scale``),
    observations standardized; the start value ``Q(s0, policy(s0))`` averaged over the logged episode starts,
    with a percentile bootstrap over them."""
    import torch
    from d3rlpy.models.encoders import VectorEncoderFactory
    from d3rlpy.preprocessing import StandardObservationScaler

    from guardrl._parallel import torch_threads
    from guardrl.train.learners import FusedAdamFactory
    from guardrl.train.trainer import TransitionArrays

    if ds.action_bounds is None:
        raise ConfigError("ope: continuous FQE needs logs with continuous actions")
    low, high = (np.asarray(b, dtype=np.float64) for b in ds.action_bounds)

    def act(obs: NDArray[np.floating]) -> NDArray[np.float32]:
        a = np.asarray(policy(np.asarray(obs, dtype=np.float32)), dtype=np.float64)
        if a.shape != (len(obs), ds.action_dim):
            raise ValueError(
                f"ope: the policy returned actions of shape {a.shape}, expected {(len(obs), ds.action_dim)}"
            )
        return np.clip(a, low, high).astype(np.float32)

    next_actions = act(ds.next_observations)
    start_obs = ds.observations[ds.episode_starts]
    start_actions = act(start_obs)
    n = len(ds)
    signals = {"return": (ds.rewards, cfg.fqe_reward_scale), "cost": (ds.costs, cfg.fqe_cost_scale)}
    if not cfg.cost:
        signals.pop("cost")
    fqe_info = {"function_class": "network (d3rlpy's continuous FQE, squared TD error)", "steps": cfg.fqe_steps,
                "interval": "bootstrap over start observations only"}  # fmt: skip
    out: dict[str, Any] = {"policy": name, "fqe": fqe_info,
                           "estimates": {}, "final_loss": {}}  # fmt: skip
    rng = np.random.default_rng(cfg.seed)
    # what both signals' fits share: the batch arrays (the logged horizon ends every episode), the scaling
    base = replace(
        TransitionArrays.from_dataset(ds), terminals=(ds.terminations | ds.truncations).astype(np.float32)[:, None]
    )
    mean, std = ds.observations.mean(axis=0), ds.observations.std(axis=0) + 1e-3
    pending = torch.as_tensor(next_actions)
    for job, (key, (signal, scale)) in enumerate(signals.items()):
        arrays = replace(base, rewards=(signal * scale).astype(np.float32)[:, None])
        config = d3rlpy.ope.FQEConfig(
            learning_rate=cfg.fqe_learning_rate, batch_size=cfg.fqe_batch_size, gamma=cfg.gamma,
            target_update_interval=cfg.fqe_target_update_interval,
            encoder_factory=VectorEncoderFactory(hidden_units=list(cfg.fqe_hidden_units)),
            observation_scaler=StandardObservationScaler(mean=mean, std=std), optim_factory=FusedAdamFactory(),
        )  # fmt: skip
        seed = int(np.random.SeedSequence([cfg.seed, job]).generate_state(1)[0])
        batch_rng = np.random.default_rng(seed)
        losses: list[float] = []
        with torch_threads(1), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            target = _PendingActions()
            fqe = d3rlpy.ope.FQE(algo=target, config=config, device=device)  # type: ignore[arg-type]
            fqe.create_impl((ds.obs_dim,), ds.action_dim)
            for _ in range(cfg.fqe_steps):
                idx = batch_rng.integers(0, n, size=cfg.fqe_batch_size)
                target.pending = pending[idx]
                losses.append(fqe.update(arrays.batch(idx))["loss"])
            starts = np.asarray(fqe.predict_value(start_obs.astype(np.float32), start_actions), dtype=np.float64)
        values = starts / scale
        out["estimates"][key] = {
            "fqe": bootstrap({"fqe": values}, cfg.n_bootstrap, cfg.confidence, rng)["fqe"].to_dict()
        }
        out["final_loss"][key] = float(np.mean(losses[-50:]))
    return out


__all__ = ["continuous_fqe", "continuous_is", "smoothed_log_density", "to_unit_box"]
