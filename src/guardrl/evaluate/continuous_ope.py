"""Importance sampling for continuous-action policies, with the behaviour densities the logs carry.

A deterministic continuous policy has density 0 at every logged action but its own, so no importance weight
exists for it. As the discrete estimators soften a greedy target, these evaluate the *smoothed* target: in the
box's coordinates mapped to [-1, 1]^k, ``a = tanh(u)`` with ``u ~ N(atanh(clip(mu(s), ±0.95)), std^2)`` per
axis, around the policy's action ``mu(s)`` (the same squashed Gaussian SafeNav's loggers use, so its density
is exact, with respect to area on the box like the logged propensities). The ratio of densities is the weight.
The output names the smoothing, and the estimate is the smoothed policy's value, not the deterministic one's:
with ``std`` small the two meet but the weights grow heavy (the effective sample size is reported).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from guardrl.data import Dataset
from guardrl.envs.safenav import squashed_gaussian_log_density
from guardrl.errors import ConfigError
from guardrl.evaluate.metrics import bootstrap
from guardrl.evaluate.ope import Padded, _bootstrap_ratio, _ess, pdis_values, wis_parts
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


__all__ = ["continuous_is", "smoothed_log_density", "to_unit_box"]
