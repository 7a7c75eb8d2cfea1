"""GAIL: its advantage estimates at episode ends, its demonstrations, and that it reaches the expert's return
on SafeGrid (exact values) and CartPole-v1 without reading a reward."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from guardrl.data import collect
from guardrl.data.behaviour import optimal_noisy_policy
from guardrl.envs import evaluate_exact, simulate
from guardrl.envs.cartpole import OBSERVATION_SCALE, balancing_expert, simulate_cartpole
from guardrl.errors import ConfigError
from guardrl.run.dagger import ExactScorer
from guardrl.train import OnnxPolicy, TorchScriptPolicy, export_policy
from guardrl.train.gail import Demonstrations, GAILConfig, GridCells, Scaled, _gae, train_gail


def test_gae_uses_the_absorbing_value_after_a_termination_and_bootstraps_a_truncation():
    # two episodes of two steps: the first terminates, the second is truncated; rewards 1, values 0.5
    reward = torch.ones(2, 2)
    value = torch.full((2, 2), 0.5)
    end_value = torch.tensor([[0.0, 0.0], [-10.0, 3.0]])  # after the last step: absorbing -10, bootstrap 3
    valid = torch.ones(2, 2, dtype=torch.bool)
    ended = torch.tensor([[False, False], [True, True]])
    adv = _gae(reward, value, end_value, valid, ended, gamma=0.5, lam=1.0)
    last = 1 + 0.5 * end_value[1] - 0.5
    np.testing.assert_allclose(adv[1].numpy(), last.numpy())
    np.testing.assert_allclose(adv[0].numpy(), (1 + 0.5 * 0.5 - 0.5 + 0.5 * last).numpy())


def test_demonstrations_keep_terminations_not_truncations():
    eps = simulate_cartpole(lambda o, s, r: r.integers(0, 2, len(o)), 5, np.random.default_rng(1))
    demo = Demonstrations.from_episodes(eps)
    assert len(demo.actions) == int(eps.lengths.sum()) and len(demo.terminal_observations) == 5
    expert = simulate_cartpole(lambda o, s, r: balancing_expert(o), 2, np.random.default_rng(1))
    assert len(Demonstrations.from_episodes(expert).terminal_observations) == 0  # truncated at 500: no end


def test_config_is_checked():
    with pytest.raises(ConfigError, match="gamma"):
        GAILConfig(gamma=1.0)
    with pytest.raises(ConfigError, match=">= 1"):
        GAILConfig(iterations=0)


def test_gail_reaches_the_expert_on_safegrid_and_exports(tables, tmp_path):
    ds = collect(tables, "expert", 20, 100)
    demo = Demonstrations.from_arrays(ds.observations, ds.actions, ds.next_observations, ds.terminations)
    expert = evaluate_exact(optimal_noisy_policy(tables, 0.05)).expected_return
    cfg = GAILConfig(iterations=30, seed=100)
    policy = train_gail(lambda p, n, r: simulate(tables, p, n, r), GridCells(tables.layout.size), demo, 4, cfg)
    exact = ExactScorer(tables)(policy.predict)
    assert exact["expected_return"] >= 0.9 * expert and exact["hazard_prob"] < 0.01
    random_start = ExactScorer(tables)(lambda o: np.zeros(len(o), dtype=np.int64))
    assert random_start["expected_return"] < 0  # the bar is not met by doing nothing
    short = [
        train_gail(
            lambda p, n, r: simulate(tables, p, n, r),
            GridCells(tables.layout.size),
            demo,
            4,
            replace(cfg, iterations=3),
        )
        for _ in range(2)
    ]
    size = tables.layout.size
    grid = np.stack(np.meshgrid(np.arange(size), np.arange(size)), -1).reshape(-1, 2).astype(np.float32)
    np.testing.assert_array_equal(short[0].probs(grid), short[1].probs(grid))  # a seed gives one policy
    files = export_policy(policy, tmp_path, "gail")
    assert np.array_equal(TorchScriptPolicy(files["torchscript"]).greedy(grid), policy.predict(grid))
    assert np.array_equal(OnnxPolicy(files["onnx"]).greedy(grid), policy.predict(grid))


def test_gail_reaches_the_scripted_expert_on_cartpole():
    ex = simulate_cartpole(lambda o, s, r: balancing_expert(o), 10, np.random.default_rng([100, 1]))
    features = Scaled(OBSERVATION_SCALE)
    policy = train_gail(simulate_cartpole, features, Demonstrations.from_episodes(ex), 2, GAILConfig(seed=100))
    played = simulate_cartpole(lambda o, s, r: policy.predict(o), 50, np.random.default_rng(7))
    assert played.returns.mean() >= 0.9 * ex.returns.mean() == 450.0
    assert policy.history[0]["episode_length"] < 100  # it started far from the expert
