"""Environments: SafeGrid (gymnasium id ``SafeGrid-v0``), its vectorized twin and its exact solution."""

from gymnasium.envs.registration import register, registry

from guardrl.envs.dynamics import Tables, build_tables, obs_to_states, states_to_obs
from guardrl.envs.layouts import (
    ACTION_NAMES,
    N_ACTIONS,
    NAMED_LAYOUTS,
    Layout,
    corridor_layout,
    default_layout,
    draw_hazards,
    named_layout,
)
from guardrl.envs.safegrid import SafeGrid, make_safegrid
from guardrl.envs.solve import (
    ExactValues,
    TablePolicy,
    evaluate_exact,
    hazard_seeking_policy,
    solve_optimal,
    stationary,
)
from guardrl.envs.vector import Episodes, SafeGridVector, simulate

if "SafeGrid-v0" not in registry:
    register(id="SafeGrid-v0", entry_point="guardrl.envs.safegrid:SafeGrid", max_episode_steps=80)

__all__ = [
    "ACTION_NAMES",
    "N_ACTIONS",
    "NAMED_LAYOUTS",
    "Episodes",
    "ExactValues",
    "Layout",
    "SafeGrid",
    "SafeGridVector",
    "TablePolicy",
    "Tables",
    "build_tables",
    "corridor_layout",
    "default_layout",
    "draw_hazards",
    "evaluate_exact",
    "make_safegrid",
    "named_layout",
    "obs_to_states",
    "simulate",
    "hazard_seeking_policy",
    "solve_optimal",
    "stationary",
    "states_to_obs",
]
