"""Environments: SafeGrid (gymnasium id ``SafeGrid-v0``), its vectorized twin and its exact solution."""

import gymnasium.envs.registration  # noqa: F401  (importing guardrl registered SafeGrid-v0 by now)

from guardrl.envs.dynamics import Tables, build_tables, obs_to_states, states_to_obs
from guardrl.envs.layouts import (
    ACTION_NAMES,
    N_ACTIONS,
    NAMED_LAYOUTS,
    Layout,
    corridor_layout,
    default_layout,
    draw_hazards,
    drawn_layout,
    named_layout,
    tutorial_hazards,
)
from guardrl.envs.safegrid import SafeGrid, make_safegrid
from guardrl.envs.solve import (
    ExactValues,
    TablePolicy,
    evaluate_exact,
    evaluate_greedy,
    hazard_seeking_policy,
    sample_actions,
    solve_optimal,
    stationary,
)
from guardrl.envs.vector import Episodes, SafeGridVector, simulate

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
    "drawn_layout",
    "tutorial_hazards",
    "sample_actions",
    "evaluate_exact",
    "evaluate_greedy",
    "make_safegrid",
    "named_layout",
    "obs_to_states",
    "simulate",
    "hazard_seeking_policy",
    "solve_optimal",
    "stationary",
    "states_to_obs",
]
