"""Example behaviour policies for gymnasium environments: known-good controllers with epsilon noise.

They play the part of the safe controller whose logs a user would have. Each is a *factory*: called with its
keyword arguments (``collect.behaviour_kwargs``), it returns a behaviour function
``(observations (N, d), envs) -> action probabilities (N, A)`` as :class:`~guardrl.envs.gym_env.GymSimulator`
collection expects. Rows of episodes that already ended are ignored, so a function may return anything valid
for them.

* :func:`toy_text_controller`: value iteration on the transition table ``env.unwrapped.P`` of gymnasium's
  toy-text environments (FrozenLake, CliffWalking, Taxi), acting greedily with ties split evenly.
* :func:`minigrid_lava_controller`: shortest path to the goal around lava and walls in MiniGrid, found by
  breadth-first search over (cell, direction) with the privileged full grid, which the learner never sees.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

from guardrl.envs.gym_env import BehaviourFn, GymEnvError


def _mix(greedy_mask: NDArray[np.bool_], epsilon: float) -> NDArray[np.float64]:
    n_actions = greedy_mask.shape[-1]
    greedy = greedy_mask / greedy_mask.sum(axis=-1, keepdims=True)
    return (1.0 - epsilon) * greedy + epsilon / n_actions


@dataclass(frozen=True)
class ToyTextTables:
    """A toy-text env's transition table ``env.unwrapped.P`` (``P[s][a] = [(p, s', r, done), ...]``) as arrays."""

    reward: NDArray[np.float64]
    """(S, A) expected one-step reward."""
    ending_without_reward: NDArray[np.float64]
    """(S, A) probability that the step ends the episode with no reward (a FrozenLake hole)."""
    cont: NDArray[np.float64]
    """(S, A, S) probability of each next state when the episode goes on."""

    @classmethod
    def of(cls, env: gym.Env) -> ToyTextTables:
        table = getattr(env.unwrapped, "P", None)
        if table is None:
            raise GymEnvError(f"{env.spec.id if env.spec else env}: has no transition table P (not a toy-text env)")
        n_states, n_actions = len(table), len(table[0])
        reward = np.zeros((n_states, n_actions))
        ending = np.zeros((n_states, n_actions))
        cont = np.zeros((n_states, n_actions, n_states))
        for s in range(n_states):
            for a in range(n_actions):
                for p, s2, r, done in table[s][a]:
                    reward[s, a] += p * r
                    if done and r <= 0:
                        ending[s, a] += p
                    if not done:
                        cont[s, a, s2] += p
        return cls(reward, ending, cont)


def toy_text_values(env: gym.Env, gamma: float, iterations: int = 2000, tol: float = 1e-10) -> NDArray[np.float64]:
    """Optimal Q(s, a) by value iteration on ``env.unwrapped.P``."""
    tables = ToyTextTables.of(env)
    reward, cont = tables.reward, tables.cont
    n_states = reward.shape[0]
    v = np.zeros(n_states)
    q = reward.copy()
    for _ in range(iterations):
        q = reward + gamma * cont @ v
        new_v = q.max(axis=1)
        if np.max(np.abs(new_v - v)) < tol:
            break
        v = new_v
    return q


def toy_text_controller(epsilon: float = 0.2, gamma: float = 0.99) -> BehaviourFn:
    """Epsilon-greedy on the exact optimal Q of a toy-text environment (one-hot observations)."""
    if not 0.0 <= epsilon <= 1.0:
        raise GymEnvError(f"collect.behaviour_kwargs.epsilon must lie in [0, 1], got {epsilon}")
    cache: dict[str, NDArray[np.float64]] = {}

    def behaviour(obs: NDArray[np.float32], envs: list[gym.Env]) -> NDArray[np.float64]:
        if "probs" not in cache:
            q = toy_text_values(envs[0], gamma)
            cache["probs"] = _mix(np.isclose(q, q.max(axis=1, keepdims=True), rtol=0, atol=1e-9), epsilon)
        return cache["probs"][np.argmax(obs, axis=1)]

    return behaviour


_DIRS = ((1, 0), (0, 1), (-1, 0), (0, -1))  # MiniGrid's agent_dir 0..3: right, down, left, up
_LEFT, _RIGHT, _FORWARD = 0, 1, 2


def _minigrid_first_moves(env: Any) -> list[int]:
    """Actions (left, right, forward) that start a shortest lava-free path to the goal; [] if none."""
    u = env.unwrapped
    grid = u.grid
    blocked = np.zeros((grid.width, grid.height), dtype=bool)
    goals = set()
    for x in range(grid.width):
        for y in range(grid.height):
            cell = grid.get(x, y)
            if cell is None:
                continue
            if cell.type == "goal":
                goals.add((x, y))
            elif cell.type in ("lava", "wall") or not cell.can_overlap():
                blocked[x, y] = True
    start = (int(u.agent_pos[0]), int(u.agent_pos[1]), int(u.agent_dir))
    if blocked[start[0], start[1]]:
        return []  # the episode already ended in lava
    first: dict[tuple[int, int, int], int] = {start: -1}
    depth = {start: 0}
    queue = deque([start])
    best: set[int] = set()
    best_depth = None
    while queue:
        state = queue.popleft()
        x, y, d = state
        if best_depth is not None and depth[state] >= best_depth:
            break
        dx, dy = _DIRS[d]
        moves = ((_LEFT, (x, y, (d - 1) % 4)), (_RIGHT, (x, y, (d + 1) % 4)), (_FORWARD, (x + dx, y + dy, d)))
        for action, nxt in moves:
            if blocked[nxt[0], nxt[1]]:
                continue
            origin = action if state == start else first[state]
            if (nxt[0], nxt[1]) in goals:
                best_depth = depth[state] + 1
                best.add(origin)
                continue
            if nxt not in depth:
                depth[nxt] = depth[state] + 1
                first[nxt] = origin
                queue.append(nxt)
    return sorted(best)


def minigrid_lava_controller(epsilon: float = 0.2) -> BehaviourFn:
    """Epsilon-greedy shortest-path controller for MiniGrid lava worlds (uses the full grid, not the view)."""
    if not 0.0 <= epsilon <= 1.0:
        raise GymEnvError(f"collect.behaviour_kwargs.epsilon must lie in [0, 1], got {epsilon}")

    def behaviour(obs: NDArray[np.float32], envs: list[gym.Env]) -> NDArray[np.float64]:
        n_actions = int(envs[0].action_space.n)  # type: ignore[attr-defined]
        mask = np.zeros((len(envs), n_actions), dtype=bool)
        for i, env in enumerate(envs):
            moves = _minigrid_first_moves(env)
            mask[i, moves if moves else [_LEFT, _RIGHT, _FORWARD]] = True
        return _mix(mask, epsilon)

    return behaviour
