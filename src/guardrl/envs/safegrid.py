"""The SafeGrid gymnasium environment."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from guardrl.envs.dynamics import build_tables, states_to_obs, step
from guardrl.envs.layouts import ACTION_NAMES, N_ACTIONS, Layout, named_layout


class SafeGrid(gym.Env[np.ndarray, np.int64]):
    """A hazardous grid world: reach the goal, never enter a hazard.

    ## Action Space
    ``Discrete(4)``: 0 up (y-1), 1 right (x+1), 2 down (y+1), 3 left (x-1). A move off the grid stays put.
    With probability ``layout.slip`` the chosen action is replaced by a uniformly random one.

    ## Observation Space
    ``Box(0, size-1, (2,), float32)``: the agent's (x, y) cell.

    ## Rewards
    ``-1`` per step, ``-100`` on the step entering a hazard, ``+50`` on the step entering the goal
    (values come from the layout).

    ## Episode End
    Termination on entering a hazard (``info["cost"] == 1.0``) or the goal (``info["is_success"]``).
    Truncation after ``layout.max_steps`` steps (80 by default), applied by gymnasium's ``TimeLimit``
    through ``max_episode_steps``; the raw env never truncates.

    ## Arguments
    ``layout``: a :class:`Layout`, a layout name (``"default"``, ``"corridor"``) or a dict of layout fields.

    ## Version History
    * v0: first version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, layout: Layout | str | dict[str, Any] = "default", render_mode: str | None = None):
        if isinstance(layout, str):
            layout = named_layout(layout)
        elif isinstance(layout, dict):
            layout = Layout.from_dict(layout)
        self.layout = layout
        self.tables = build_tables(layout)
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(N_ACTIONS)
        self.observation_space = spaces.Box(0.0, float(layout.size - 1), shape=(2,), dtype=np.float32)
        self._state = self.tables.start_state

    def _obs(self) -> np.ndarray:
        return states_to_obs(self.layout, np.array([self._state]))[0]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):  # type: ignore[override]
        super().reset(seed=seed)
        self._state = self.tables.start_state
        return self._obs(), {"cost": 0.0, "is_success": False}

    def step(self, action):  # type: ignore[override]
        if not self.action_space.contains(action):
            raise ValueError(f"SafeGrid: action {action!r} is not in {self.action_space}")
        slip_u = self.np_random.random(1)
        slip_action = self.np_random.integers(0, N_ACTIONS, size=1)
        out = step(self.tables, np.array([self._state]), np.array([int(action)]), slip_u, slip_action)
        self._state = int(out.state[0])
        info = {"cost": float(out.cost[0]), "is_success": bool(out.success[0])}
        return self._obs(), float(out.reward[0]), bool(out.terminated[0]), False, info

    def render(self) -> str | None:  # type: ignore[override]  # ansi text, as gymnasium's toy-text envs
        if self.render_mode != "ansi":
            return None
        size = self.layout.size
        grid = [["." for _ in range(size)] for _ in range(size)]
        for x, y in self.layout.hazards:
            grid[y][x] = "X"
        gx, gy = self.layout.goal
        grid[gy][gx] = "G"
        x, y = self._state % size, self._state // size
        grid[y][x] = "A"
        return "\n".join("".join(row) for row in grid)

    @staticmethod
    def action_name(action: int) -> str:
        return ACTION_NAMES[action]


def make_safegrid(layout: Layout | str = "default", **kwargs: Any) -> gym.Env:
    """``gym.make`` a SafeGrid whose step limit is the layout's ``max_steps``."""
    lay = named_layout(layout) if isinstance(layout, str) else layout
    return gym.make("SafeGrid-v0", layout=lay, max_episode_steps=lay.max_steps, **kwargs)
