"""The vectorized CartPole against gymnasium 1.0's CartPole-v1, step for step, and its episode records."""

import gymnasium as gym
import numpy as np
import pytest

from guardrl.envs.cartpole import MAX_STEPS, balancing_expert, cartpole_step, simulate_cartpole


def test_steps_match_gymnasium_step_for_step():
    env = gym.make("CartPole-v1").unwrapped
    env.reset(seed=5)
    rng = np.random.default_rng(5)
    state = np.asarray(env.state, dtype=np.float64)[None]  # the float64 state, not the float32 observation
    for t in range(200):
        action = int(rng.integers(0, 2)) if t % 3 else int(balancing_expert(state)[0])
        obs, reward, terminated, _, _ = env.step(action)
        state, ended = cartpole_step(state, np.asarray([action]))
        np.testing.assert_allclose(state[0], np.asarray(env.state, dtype=np.float64), rtol=1e-12, atol=1e-12)
        assert bool(ended[0]) == terminated and reward == 1.0
        if terminated:
            break
    assert terminated, "a partly random policy drops the pole within 200 steps"


def test_expert_balances_to_the_step_limit_and_random_play_falls():
    eps = simulate_cartpole(lambda o, s, r: balancing_expert(o), 8, np.random.default_rng(0))
    assert (eps.returns == MAX_STEPS).all() and eps.truncated[-1].all() and not eps.terminated.any()
    rand = simulate_cartpole(lambda o, s, r: r.integers(0, 2, len(o)), 64, np.random.default_rng(0))
    assert rand.returns.mean() == pytest.approx(22, abs=6)  # CartPole's random policy averages about 22
    last = rand.lengths - 1
    assert rand.terminated[last, np.arange(64)].all() and not rand.truncated.any()
    assert np.array_equal(rand.returns, rand.lengths.astype(float))  # reward 1 per step, the falling step too
