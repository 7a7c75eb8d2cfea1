"""Imported logs fitted to a run's environment: discrete states one-hot encoded, missing events from rules."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from guardrl.data import Dataset, load_dataset
from guardrl.envs.gym_env import GymSimulator, rule_events
from guardrl.errors import RunError
from guardrl.run.context import RunContext, discrete_only


def encode_discrete_logs(sim: GymSimulator, ds: Dataset, where: str) -> Dataset:
    """Logs of a ``Discrete``-observation env with one state column -> the one-hot observations guardrl uses."""
    encode = sim.encode
    if ds.obs_dim != 1 or encode.kind != "onehot" or encode.dim == 1:
        return ds
    return replace(
        ds,
        observations=encode.indices_to_onehot(ds.observations, f"{where} observation"),
        next_observations=encode.indices_to_onehot(ds.next_observations, f"{where} next observation"),
        provenance={**ds.provenance, "observation_encoding": f"state column -> {encode.describe()}"},
    )


def events_from_rules(ctx: RunContext, ds: Dataset) -> Dataset:
    """Imported logs without cost (all zero) or success (all false) get them from the env's rules."""
    sim = ctx.simulator
    cost, success = rule_events(sim.cost_rule, sim.success_rule, ds.rewards, ds.terminations)
    derived: dict[str, Any] = {}
    if success is not None and not ds.successes.any():
        derived["successes"] = np.asarray(success, dtype=bool)
    if cost is not None and not ds.costs.any():
        derived["costs"] = cost
    if not derived:
        return ds
    env = ctx.cfg.env
    note = {k: env.cost_rule if k == "costs" else env.success_rule for k in derived}
    provenance: dict[str, Any] = {**ds.provenance, "derived_from_env_rules": note}
    if "costs" in derived:  # the env's rule records the costs the log lacked: the hazard can be judged
        provenance["costs_logged"] = True
    return replace(ds, **derived, provenance=provenance)


def imported_logs(ctx: RunContext, path: Path) -> Dataset:
    """``collect.dataset``: imported logs fitted to the run's environment, or a clear error if they do not fit.

    On a gymnasium env a one-column discrete state is one-hot encoded and missing events come from the rules.
    A logs-only run takes the logs as they are.
    """
    where = f"collect.dataset {path}"
    ds = discrete_only(load_dataset(Path(path)), where)
    if ctx.logs_only:  # no environment to fit: the logs are the whole world
        return ds
    if ctx.is_safegrid:
        obs_dim, n_actions, env = 2, 4, "SafeGrid-v0 ((x, y) observations)"
    else:
        sim = ctx.simulator
        ds = events_from_rules(ctx, encode_discrete_logs(sim, ds, where))
        obs_dim, n_actions, env = sim.obs_dim, sim.n_actions, f"{ctx.cfg.env.gym_id} ({sim.encode.describe()})"
    if ds.obs_dim != obs_dim or ds.n_actions != n_actions:
        raise RunError(
            f"{where}: {ds.obs_dim} observation features and {ds.n_actions} actions, but {env} has "
            f"{obs_dim} features and {n_actions} actions"
        )
    return ds
