import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from guardrl.envs import Layout, SafeGrid, default_layout, make_safegrid, named_layout
from guardrl.envs.layouts import DOWN, LEFT, MOVES, RIGHT, UP


def run_episode(env, seed, actions_rng):
    obs, _ = env.reset(seed=seed)
    traj = [tuple(obs)]
    while True:
        obs, r, term, trunc, info = env.step(int(actions_rng.integers(4)))
        traj.append((tuple(obs), r, term, trunc, info["cost"], info["is_success"]))
        if term or trunc:
            return traj


def test_registered_env_passes_gymnasium_checker():
    env = gym.make("SafeGrid-v0")
    check_env(env.unwrapped)
    assert env.spec.max_episode_steps == 80
    assert env.observation_space.shape == (2,) and env.observation_space.dtype == np.float32


def test_same_seed_same_trajectory_and_different_seed_differs():
    env = make_safegrid()
    a = run_episode(env, 7, np.random.default_rng(0))
    b = run_episode(env, 7, np.random.default_rng(0))
    c = run_episode(env, 8, np.random.default_rng(0))
    assert a == b
    assert a != c


def test_env_pickles_and_resumes_identically():
    env = make_safegrid()
    env.reset(seed=3)
    env.step(RIGHT)
    clone = pickle.loads(pickle.dumps(env))
    for a in (DOWN, RIGHT, DOWN, DOWN):
        o1, r1, t1, *_ = env.step(a)
        o2, r2, t2, *_ = clone.step(a)
        assert o1.tolist() == o2.tolist() and (r1, t1) == (r2, t2)


def test_hazard_costs_and_terminates():
    lay = Layout(size=3, start=(0, 0), goal=(2, 2), hazards=((1, 0),), slip=0.0, max_steps=10)
    env = make_safegrid(lay)
    env.reset(seed=0)
    obs, r, term, trunc, info = env.step(RIGHT)
    assert (r, term, trunc, info["cost"], info["is_success"]) == (-100.0, True, False, 1.0, False)
    assert tuple(obs) == (1.0, 0.0)


def test_goal_reward_and_success():
    lay = Layout(size=2, start=(0, 0), goal=(1, 0), hazards=(), slip=0.0, max_steps=10)
    env = make_safegrid(lay)
    env.reset(seed=0)
    _, r, term, trunc, info = env.step(RIGHT)
    assert (r, term, trunc, info["cost"], info["is_success"]) == (50.0, True, False, 0.0, True)


def test_step_limit_is_a_truncation_not_a_termination():
    lay = Layout(size=4, start=(0, 0), goal=(3, 3), hazards=(), slip=0.0, max_steps=5)
    env = make_safegrid(lay)
    env.reset(seed=0)
    flags = [env.step(UP)[2:4] for _ in range(5)]  # walking into the top wall
    assert flags[:4] == [(False, False)] * 4
    assert flags[4] == (False, True)


def test_wall_bump_stays_in_place_with_step_reward():
    env = make_safegrid(Layout(size=3, start=(0, 0), goal=(2, 2), slip=0.0))
    env.reset(seed=0)
    obs, r, *_ = env.step(UP)
    assert tuple(obs) == (0.0, 0.0) and r == -1.0


def test_action_ids_are_the_tutorials():
    # 0: y+1, 1: x+1, 2: y-1, 3: x-1, so logs and policies carry over from the tutorial
    assert (DOWN, RIGHT, UP, LEFT) == (0, 1, 2, 3)
    assert [MOVES[a] for a in range(4)] == [(0, 1), (1, 0), (0, -1), (-1, 0)]
    env = make_safegrid(Layout(size=5, start=(2, 2), goal=(4, 4), slip=0.0))
    moved = []
    for a in range(4):
        env.reset(seed=0)
        moved.append(tuple(int(v) for v in env.step(a)[0]))
    assert moved == [(2, 3), (3, 2), (2, 1), (1, 2)]


def test_default_layout_is_the_tutorials_draw():
    # the tutorial: rng = default_rng(42); size // 2 pairs of rng.integers(2, size - 2), kept in a set
    rng = np.random.default_rng(42)
    expected = {(int(rng.integers(2, 13)), int(rng.integers(2, 13))) for _ in range(7)}
    assert set(default_layout().hazards) == expected
    assert default_layout().hazards == ((2, 9), (2, 10), (4, 3), (6, 11), (7, 12), (9, 6), (10, 10))


def test_named_layouts_and_validation():
    assert len(default_layout().hazards) == 7
    assert all(2 <= x <= 12 and 2 <= y <= 12 for x, y in default_layout().hazards)
    assert default_layout(1).hazards != default_layout(2).hazards
    assert len(named_layout("drawn").hazards) == 7 and named_layout("drawn") != default_layout()
    assert len(named_layout("corridor").hazards) == 22
    with pytest.raises(ValueError, match="unknown layout"):
        named_layout("nope")
    with pytest.raises(ValueError, match="outside"):
        Layout(hazards=((15, 3),))
    with pytest.raises(ValueError, match="hazard"):
        Layout(hazards=((14, 14),))


def test_invalid_action_is_rejected():
    env = SafeGrid()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="not in"):
        env.step(4)


def test_ansi_render_marks_agent_goal_and_hazards():
    env = SafeGrid(render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    rows = text.splitlines()
    assert rows[0][0] == "A" and rows[14][14] == "G"
    assert text.count("X") == 7
