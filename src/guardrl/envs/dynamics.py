"""SafeGrid's dynamics as arrays: one set of tables shared by the gymnasium env, its vectorized twin and the
exact solver, so the three cannot drift apart."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from guardrl.envs.layouts import MOVES, N_ACTIONS, Layout


@dataclass(frozen=True)
class Tables:
    """Transition and reward tables of a layout, indexed by state ``s = y * size + x``."""

    layout: Layout
    next_state: NDArray[np.int64]
    """(S, A): the cell an intended move leads to; moves off the grid stay in place."""
    reward: NDArray[np.float64]
    """(S,): reward of the step that *enters* state s."""
    hazard: NDArray[np.bool_]
    """(S,): s is a hazard cell."""
    goal: NDArray[np.bool_]
    """(S,): s is the goal cell."""

    @property
    def terminal(self) -> NDArray[np.bool_]:
        return self.hazard | self.goal

    @property
    def start_state(self) -> int:
        return cell_to_state(self.layout, self.layout.start)

    def effective_action_probs(self) -> NDArray[np.float64]:
        """(A, A) matrix: P(executed action = b | chosen action = a) under slipping."""
        slip = self.layout.slip
        return (1.0 - slip) * np.eye(N_ACTIONS) + slip / N_ACTIONS


def cell_to_state(layout: Layout, cell: tuple[int, int]) -> int:
    return cell[1] * layout.size + cell[0]


def states_to_obs(layout: Layout, states: NDArray[np.int64]) -> NDArray[np.float32]:
    """(N,) state ids -> (N, 2) float32 (x, y) observations."""
    return np.stack([states % layout.size, states // layout.size], axis=-1).astype(np.float32)


def obs_to_states(layout: Layout, obs: NDArray[np.floating]) -> NDArray[np.int64]:
    """(N, 2) (x, y) observations -> (N,) state ids."""
    xy = np.rint(obs).astype(np.int64)
    return xy[:, 1] * layout.size + xy[:, 0]


def build_tables(layout: Layout) -> Tables:
    size = layout.size
    grid_x, grid_y = np.meshgrid(np.arange(size), np.arange(size))
    xs, ys = grid_x.ravel(), grid_y.ravel()
    next_state = np.empty((size * size, N_ACTIONS), dtype=np.int64)
    for a, (dx, dy) in MOVES.items():
        nx = np.clip(xs + dx, 0, size - 1)
        ny = np.clip(ys + dy, 0, size - 1)
        next_state[:, a] = ny * size + nx
    hazard = np.zeros(size * size, dtype=bool)
    for cell in layout.hazards:
        hazard[cell_to_state(layout, cell)] = True
    goal = np.zeros(size * size, dtype=bool)
    goal[cell_to_state(layout, layout.goal)] = True
    reward = np.full(size * size, layout.step_reward)
    reward[hazard] = layout.hazard_reward
    reward[goal] = layout.goal_reward
    return Tables(layout=layout, next_state=next_state, reward=reward, hazard=hazard, goal=goal)


@dataclass(frozen=True)
class StepResult:
    """Outcome of one vectorized step (all arrays have shape (N,))."""

    state: NDArray[np.int64]
    reward: NDArray[np.float64]
    cost: NDArray[np.float64]
    terminated: NDArray[np.bool_]
    success: NDArray[np.bool_]
    executed_action: NDArray[np.int64]


def step(
    tables: Tables,
    states: NDArray[np.int64],
    actions: NDArray[np.int64],
    slip_u: NDArray[np.float64],
    slip_action: NDArray[np.int64],
) -> StepResult:
    """Pure SafeGrid step for N states at once.

    ``slip_u`` are uniforms in [0, 1): where below the slip probability, ``slip_action`` (uniform over the
    actions) replaces the chosen one. Passing the draws in keeps this function pure and testable.
    """
    executed = np.where(slip_u < tables.layout.slip, slip_action, actions)
    nxt = tables.next_state[states, executed]
    hazard = tables.hazard[nxt]
    goal = tables.goal[nxt]
    return StepResult(
        state=nxt,
        reward=tables.reward[nxt],
        cost=hazard.astype(np.float64),
        terminated=hazard | goal,
        success=goal,
        executed_action=executed,
    )
