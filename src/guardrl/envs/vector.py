"""Vectorized SafeGrid: N episodes stepped at once with array operations and the same dynamics tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from guardrl.envs.dynamics import Tables, states_to_obs, step
from guardrl.envs.layouts import N_ACTIONS


class Policy(Protocol):
    """Maps a batch of observations (N, obs_dim) at steps (N,) to actions (N,)."""

    def __call__(
        self, obs: NDArray[np.float32], steps: NDArray[np.int64], rng: np.random.Generator
    ) -> NDArray[np.int64]: ...


class SafeGridVector:
    """N SafeGrid episodes in lockstep. Finished episodes stay finished (``active`` turns False)."""

    def __init__(self, tables: Tables, n_envs: int):
        self.tables = tables
        self.n_envs = n_envs
        self.states = np.full(n_envs, tables.start_state, dtype=np.int64)
        self.steps = np.zeros(n_envs, dtype=np.int64)
        self.active = np.ones(n_envs, dtype=bool)

    def reset(self) -> NDArray[np.float32]:
        self.states[:] = self.tables.start_state
        self.steps[:] = 0
        self.active[:] = True
        return self.observations()

    def observations(self) -> NDArray[np.float32]:
        return states_to_obs(self.tables.layout, self.states)

    def step(self, actions: NDArray[np.int64], rng: np.random.Generator):
        """Step every env; inactive ones are left unchanged. Returns the pure step's result and truncations."""
        out = step(self.tables, self.states, actions, rng.random(self.n_envs), rng.integers(0, N_ACTIONS, self.n_envs))
        self.states = np.where(self.active, out.state, self.states)
        self.steps = self.steps + self.active
        truncated = self.active & ~out.terminated & (self.steps >= self.tables.layout.max_steps)
        self.active = self.active & ~out.terminated & ~truncated
        return out, truncated


@dataclass(frozen=True)
class Episodes:
    """Time-major records of N simulated episodes: arrays of shape (T, N), with ``valid`` marking real steps."""

    obs: NDArray[np.float32]  # (T, N, 2)
    next_obs: NDArray[np.float32]  # (T, N, 2)
    steps: NDArray[np.int64]
    actions: NDArray[np.int64]
    rewards: NDArray[np.float64]
    costs: NDArray[np.float64]
    terminated: NDArray[np.bool_]
    truncated: NDArray[np.bool_]
    success: NDArray[np.bool_]
    valid: NDArray[np.bool_]

    @property
    def returns(self) -> NDArray[np.float64]:
        return np.where(self.valid, self.rewards, 0.0).sum(axis=0)

    @property
    def lengths(self) -> NDArray[np.int64]:
        return self.valid.sum(axis=0)

    @property
    def hazard(self) -> NDArray[np.bool_]:
        return np.asarray((self.costs * self.valid).sum(axis=0) > 0)

    @property
    def goal(self) -> NDArray[np.bool_]:
        return np.asarray((self.success & self.valid).any(axis=0))


def simulate(tables: Tables, policy: Policy, n_episodes: int, rng: np.random.Generator) -> Episodes:
    """Run ``n_episodes`` episodes of ``policy`` to their end; one policy call per time step for all of them."""
    env = SafeGridVector(tables, n_episodes)
    obs = env.reset()
    T = tables.layout.max_steps
    rec: dict[str, list[NDArray]] = {k: [] for k in Episodes.__dataclass_fields__}
    for _ in range(T):
        if not env.active.any():
            break
        valid = env.active.copy()
        steps = env.steps.copy()
        actions = np.asarray(policy(obs, steps, rng), dtype=np.int64)
        out, truncated = env.step(actions, rng)
        next_obs = env.observations()
        for key, value in (
            ("obs", obs), ("next_obs", next_obs), ("steps", steps), ("actions", actions),
            ("rewards", out.reward), ("costs", out.cost), ("terminated", out.terminated & valid),
            ("truncated", truncated), ("success", out.success & valid), ("valid", valid),
        ):  # fmt: skip
            rec[key].append(value)
        obs = next_obs
    return Episodes(**{k: np.stack(v) for k, v in rec.items()})
