"""Environments: SafeGrid (``SafeGrid-v0``) with its vectorized twin and exact solution, SafeNav (``SafeNav-v0``,
continuous actions), MuJoCo tasks with shipped behaviour actors, CartPole's vectorized twin, scripted controllers,
and the adapter for any gymnasium env (:mod:`.gym_env`). SafeGrid's names are exported here; the others live in
their modules."""

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
