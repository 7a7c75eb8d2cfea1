"""Collect behaviour datasets: on SafeGrid with the vectorized simulator, or on any gymnasium env."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

import guardrl
from guardrl.data.behaviour import REGIMES, Component
from guardrl.data.dataset import ARRAY_FIELDS, Dataset
from guardrl.envs import N_ACTIONS, Episodes, Tables, obs_to_states, simulate
from guardrl.envs.gym_env import BehaviourFn, GymSimulator, SampledBehaviour
from guardrl.envs.safenav import ACTION_DIM, NAV_REGIMES, NavComponent, NavLayout, simulate_nav


def episodes_to_dataset(
    episodes: Episodes,
    propensities: np.ndarray,
    first_episode_id: int,
    n_actions: int,
    action_bounds: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> Dataset:
    """Time-major (T, N) simulation records -> flat, episode-ordered transitions."""

    def flat(a: np.ndarray) -> np.ndarray:
        # (T, N, ...) -> (N, T, ...) so that each episode's steps are contiguous, then drop padding.
        return np.swapaxes(a, 0, 1)[np.swapaxes(episodes.valid, 0, 1)]

    n_per_episode = episodes.lengths
    ids = np.repeat(np.arange(first_episode_id, first_episode_id + n_per_episode.shape[0]), n_per_episode)
    return Dataset(
        episode_ids=ids.astype(np.int64),
        steps=flat(episodes.steps),
        observations=flat(episodes.obs),
        actions=flat(episodes.actions),
        rewards=flat(episodes.rewards),
        costs=flat(episodes.costs),
        terminations=flat(episodes.terminated),
        truncations=flat(episodes.truncated),
        successes=flat(episodes.success),
        propensities=flat(propensities),
        next_observations=flat(episodes.next_obs),
        n_actions=n_actions,
        action_bounds=action_bounds,
    )


def concat(datasets: list[Dataset], provenance: dict) -> Dataset:
    arrays: dict[str, Any] = {name: np.concatenate([getattr(d, name) for d in datasets]) for name in ARRAY_FIELDS}
    return Dataset(
        **arrays, n_actions=datasets[0].n_actions, provenance=provenance, action_bounds=datasets[0].action_bounds
    )


def split_counts(components: tuple[Component, ...] | tuple[NavComponent, ...], n_episodes: int) -> list[int]:
    counts = [int(round(c.fraction * n_episodes)) for c in components]
    counts[-1] = n_episodes - sum(counts[:-1])
    return counts


def collect(tables: Tables, regime: str, n_episodes: int, seed: int) -> Dataset:
    """Log ``n_episodes`` episodes of the named behaviour ``regime`` (see ``REGIMES``), seeded by ``seed``.

    Each component of a regime draws from its own child of ``SeedSequence(seed)``, so the same arguments
    always give the same dataset.
    """

    def log(comp: Component, count: int, rng: np.random.Generator, first_id: int) -> Dataset:
        policy = comp.policy(tables)
        eps = simulate(tables, policy, count, rng)
        states = obs_to_states(tables.layout, eps.obs.reshape(-1, eps.obs.shape[-1])).reshape(eps.actions.shape)
        probs = policy.state_probs(states, eps.steps)
        propensities = np.take_along_axis(probs, eps.actions[..., None], axis=-1)[..., 0]
        return episodes_to_dataset(eps, propensities, first_id, N_ACTIONS)

    layout = tables.layout.to_dict()
    return _log_regime("SafeGrid-v0", layout, REGIMES, "dataset", regime, n_episodes, seed, log)


def collect_gym(
    sim: GymSimulator,
    behaviour: BehaviourFn,
    n_episodes: int,
    seed: int,
    provenance: dict,
    batch: int = 500,
) -> Dataset:
    """Log ``n_episodes`` episodes of a user's behaviour policy on a gymnasium environment.

    Episodes run ``batch`` at a time (one behaviour call per time step for the batch); env reset seeds and
    action draws come from ``SeedSequence(seed)``, so the same arguments give the same dataset.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be at least 1, got {n_episodes}")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    parts, next_id = [], 0
    while next_id < n_episodes:
        count = min(batch, n_episodes - next_id)
        policy = SampledBehaviour(behaviour, sim)
        eps = sim.simulate(policy, count, rng)
        propensities = np.stack(policy.propensities)
        parts.append(episodes_to_dataset(eps, propensities, next_id, sim.n_actions))
        next_id += count
    full = {
        "source": "guardrl.collect",
        "guardrl_version": guardrl.__version__,
        "observation_encoding": sim.encode.describe(),
        "n_episodes": n_episodes,
        "seed": seed,
        **provenance,
    }
    return concat(parts, full)


def collect_nav(layout: NavLayout, regime: str, n_episodes: int, seed: int) -> Dataset:
    """Log ``n_episodes`` SafeNav episodes of the named behaviour ``regime`` (see ``NAV_REGIMES``), seeded by
    ``seed`` as :func:`collect` is. Continuous actions; the propensity column holds the behaviour's density
    at the logged action (with respect to area on the action box)."""
    box = ((-1.0,) * ACTION_DIM, (1.0,) * ACTION_DIM)

    def log(comp: NavComponent, count: int, rng: np.random.Generator, first_id: int) -> Dataset:
        eps, log_density = simulate_nav(layout, comp.policy(layout), count, rng)
        return episodes_to_dataset(eps, np.exp(log_density), first_id, 0, action_bounds=box)

    return _log_regime("SafeNav-v0", layout.to_dict(), NAV_REGIMES, "SafeNav", regime, n_episodes, seed, log)


def collect_sepsis(regime: str, n_episodes: int, seed: int) -> Dataset:
    """Log ``n_episodes`` Sepsis-v0 patients treated by the physicians (Oberst & Sontag, 2019): the optimal
    full-state action (they see diabetes) with probability 0.95, another uniformly otherwise. ``physician`` logs
    their propensities, ``physician-hidden`` leaves the column empty (NaN). Seeded by ``seed`` alone."""
    from guardrl.envs.sepsis import N_ACTIONS as SEPSIS_ACTIONS
    from guardrl.envs.sepsis import simulate_sepsis
    from guardrl.envs.sepsis_exact import PHYSICIAN_EPSILON, physician_probs

    if regime not in ("physician", "physician-hidden"):
        raise ValueError(f"unknown sepsis regime {regime!r}; choose physician or physician-hidden")
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be at least 1, got {n_episodes}")
    probs = physician_probs()
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    episodes, propensities, _ = simulate_sepsis(lambda states, steps: probs[states], n_episodes, rng)
    if regime == "physician-hidden":
        propensities = np.full_like(propensities, np.nan)
    ds = episodes_to_dataset(episodes, propensities, 0, SEPSIS_ACTIONS)
    provenance = {
        "source": "guardrl.collect", "guardrl_version": guardrl.__version__, "environment": "Sepsis-v0",
        "regime": regime, "behaviour": f"physicians: the optimal full-state action w.p. {1 - PHYSICIAN_EPSILON}",
        "propensities": "hidden" if regime == "physician-hidden" else "logged",
        "n_episodes": n_episodes, "seed": seed,
    }  # fmt: skip
    return replace(ds, provenance=provenance)


def _log_regime(
    environment: str,
    layout: dict[str, Any],
    regimes: Mapping[str, tuple[Any, ...]],
    what: str,
    regime: str,
    n_episodes: int,
    seed: int,
    log: Callable[[Any, int, np.random.Generator, int], Dataset],
) -> Dataset:
    """A regime's episodes split among its components, each component logged by ``log(component, count, rng,
    first episode id)`` with its own child of ``SeedSequence(seed)``, then joined with their provenance."""
    if regime not in regimes:
        raise ValueError(f"unknown {what} regime {regime!r}; choose one of {sorted(regimes)}")
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be at least 1, got {n_episodes}")
    components = regimes[regime]
    counts = split_counts(components, n_episodes)
    children = np.random.SeedSequence(seed).spawn(len(components))
    parts, next_id = [], 0
    for comp, count, child in zip(components, counts, children, strict=True):
        if count == 0:
            continue
        parts.append(log(comp, count, np.random.default_rng(child), next_id))
        next_id += count
    return concat(parts, _provenance(environment, layout, regime, components, counts, seed))


def _provenance(
    environment: str,
    layout: dict[str, Any],
    regime: str,
    components: tuple[Component, ...] | tuple[NavComponent, ...],
    counts: list[int],
    seed: int,
) -> dict[str, Any]:
    """Who logged a regime's dataset: the environment, layout, each component's settings and episode count."""
    return {
        "source": "guardrl.collect",
        "guardrl_version": guardrl.__version__,
        "environment": environment,
        "layout": layout,
        "regime": regime,
        "components": [
            # uniform-random SafeNav episodes have std inf, which JSON cannot hold: null
            {
                **{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in vars(c).items()},
                "n_episodes": n,
            }
            for c, n in zip(components, counts, strict=True)
        ],
        "n_episodes": sum(counts),
        "seed": seed,
    }
