"""CartPole-v1's dynamics as a pure function over arrays, for many episodes at once (imitation benchmarks step
thousands of episodes; gymnasium's env steps one). The equations, constants, thresholds, reward and the
500-step limit are gymnasium 1.0's (checked step for step against it in the tests)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from guardrl.envs.vector import Episodes, Policy

GRAVITY, MASSCART, MASSPOLE, LENGTH, FORCE_MAG, TAU = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
TOTAL_MASS = MASSCART + MASSPOLE
POLEMASS_LENGTH = MASSPOLE * LENGTH
X_THRESHOLD, THETA_THRESHOLD = 2.4, 12 * 2 * np.pi / 360
MAX_STEPS = 500
OBSERVATION_SCALE = np.array([2.4, 3.0, 0.21, 3.0])
"""A per-dimension scale for networks' inputs: the position and angle limits, and a velocity scale."""


def cartpole_step(state: NDArray[np.float64], actions: NDArray[np.int64]) -> tuple[NDArray[np.float64], NDArray]:
    """Next states (N, 4) and terminations (N,) after ``actions`` (1 pushes right) by Euler integration."""
    x, x_dot, theta, theta_dot = state.T
    force = np.where(actions == 1, FORCE_MAG, -FORCE_MAG)
    cos, sin = np.cos(theta), np.sin(theta)
    temp = (force + POLEMASS_LENGTH * np.square(theta_dot) * sin) / TOTAL_MASS
    theta_acc = (GRAVITY * sin - cos * temp) / (LENGTH * (4.0 / 3.0 - MASSPOLE * np.square(cos) / TOTAL_MASS))
    x_acc = temp - POLEMASS_LENGTH * theta_acc * cos / TOTAL_MASS
    nxt = np.stack([x + TAU * x_dot, x_dot + TAU * x_acc, theta + TAU * theta_dot, theta_dot + TAU * theta_acc], axis=1)
    terminated = (np.abs(nxt[:, 0]) > X_THRESHOLD) | (np.abs(nxt[:, 2]) > THETA_THRESHOLD)
    return nxt, terminated


def simulate_cartpole(policy: Policy, n_episodes: int, rng: np.random.Generator) -> Episodes:
    """``n_episodes`` CartPole-v1 episodes of ``policy`` (reward 1 per step, the falling step included)."""
    state = rng.uniform(-0.05, 0.05, size=(n_episodes, 4))
    active = np.ones(n_episodes, dtype=bool)
    rec: dict[str, list[NDArray]] = {k: [] for k in Episodes.__dataclass_fields__}
    for t in range(MAX_STEPS):
        if not active.any():
            break
        obs = state.astype(np.float32)
        steps = np.full(n_episodes, t, dtype=np.int64)
        actions = np.asarray(policy(obs, steps, rng), dtype=np.int64)
        nxt, terminated = cartpole_step(state, actions)
        truncated = active & ~terminated & (t + 1 >= MAX_STEPS)
        for key, value in (
            ("obs", obs), ("next_obs", nxt.astype(np.float32)), ("steps", steps), ("actions", actions),
            ("rewards", active.astype(np.float64)), ("costs", np.zeros(n_episodes)),
            ("terminated", terminated & active), ("truncated", truncated), ("success", truncated),
            ("valid", active.copy()),
        ):  # fmt: skip
            rec[key].append(value)
        state = np.where(active[:, None], nxt, state)
        active = active & ~terminated & ~truncated
    return Episodes(**{k: np.stack(v) for k, v in rec.items()})


def balancing_expert(obs: NDArray[np.floating], steps: NDArray[np.int64] | None = None) -> NDArray[np.int64]:
    """A scripted CartPole expert: push towards where the pole is falling, with a little cart centring."""
    x, x_dot, theta, theta_dot = np.asarray(obs, dtype=np.float64).T
    return (theta + 0.5 * theta_dot + 0.05 * x + 0.1 * x_dot > 0).astype(np.int64)
