from dataclasses import replace

import numpy as np
import pytest

from guardrl.data import Dataset
from guardrl.data.audit import AuditConfig, StateIndex
from guardrl.errors import ConfigError
from guardrl.evaluate.fqe_tabular import ModelFill, fit_tabular_fqe
from guardrl.evaluate.ope import OPEConfig, episode_horizon, evaluate_policy
from guardrl.evaluate.target import TargetPolicy

LOW, HIGH = np.zeros(1), np.full(1, 2.0)


def chain(costs_at_second_step):
    """Two-step episodes 0 -a0-> 1 -a0-> end, reward 1 per step; the second step's cost per episode as given."""
    n = len(costs_at_second_step)
    obs = np.tile([[0.0], [1.0]], (n, 1)).astype(np.float32)
    return Dataset(
        episode_ids=np.repeat(np.arange(n), 2), steps=np.tile([0, 1], n), observations=obs,
        actions=np.zeros(2 * n, np.int64), rewards=np.ones(2 * n),
        costs=np.column_stack([np.zeros(n), costs_at_second_step]).ravel().astype(float),
        terminations=np.tile([False, True], n), truncations=np.zeros(2 * n, bool), successes=np.zeros(2 * n, bool),
        propensities=np.full(2 * n, 0.5), next_observations=np.tile([[1.0], [2.0]], (n, 1)).astype(np.float32),
        n_actions=2,
    )  # fmt: skip


def fit(ds, action, signal, fill, n_boot=200, seed=0):
    index = StateIndex.fit(ds.observations, AuditConfig())
    next_probs = np.eye(2)[np.full(len(ds), action)]
    start_probs = np.eye(2)[np.full(ds.n_episodes, action)]
    return fit_tabular_fqe(ds, index, signal, fill, next_probs, start_probs, 1.0, n_boot, np.random.default_rng(seed))


def test_values_are_the_logged_averages_and_the_interval_comes_from_refits():
    ds = chain([1, 0, 0, 0, 0, 0, 0, 0])
    ret = fit(ds, 0, ds.rewards, fill=float(ds.rewards.min()))
    assert ret.starts.tolist() == [2.0] * 8  # two steps of reward 1, no randomness anywhere
    assert np.all(ret.boots == 2.0)
    cost = fit(ds, 0, ds.costs, fill=1.0)
    assert cost.q[0, 0] == pytest.approx(1 / 8) and cost.q[1, 0] == pytest.approx(1 / 8)
    assert cost.starts.mean() == pytest.approx(1 / 8)
    # each refit sees the one costly episode 0, 1, 2... times out of 8: the refits' mean is near 1/8, they spread
    assert cost.boots.mean() == pytest.approx(1 / 8, abs=0.02)
    assert cost.boots.min() == 0.0 and cost.boots.max() >= 3 / 8
    assert cost.unlogged_pairs == 0


def test_an_unlogged_action_is_worth_the_logged_ones_and_an_unlogged_state_the_fill():
    ds = chain([0, 1, 0, 0])
    cost = fit(ds, 1, ds.costs, fill=1.0)  # the target takes action 1, never logged
    assert cost.q[1, 1] == pytest.approx(0.25)  # as action 0 there, the only one logged
    assert cost.q[0, 1] == pytest.approx(0.25) and cost.starts.mean() == pytest.approx(0.25)
    assert cost.unlogged_pairs == 1  # (state 1, action 1) at the logged next observations
    # a next observation never logged as a state (the log stops without an ending) gets the fill
    cut = replace(ds, **{"terminations": np.zeros(len(ds), bool)})
    ret = fit(cut, 0, cut.rewards, fill=-5.0)
    assert ret.q[1, 0] == pytest.approx(1.0 - 5.0) and ret.starts.mean() == pytest.approx(1.0 + 1.0 - 5.0)


def test_evaluate_policy_uses_the_tabular_class_given_a_state_index():
    ds = chain([1, 0, 0, 0, 0, 0, 0, 0])
    index = StateIndex.fit(ds.observations, AuditConfig())
    target = TargetPolicy("zero", lambda obs: np.zeros(len(obs), np.int64))
    cfg = OPEConfig(estimators=("fqe",), epsilon=0.0, fqe_refits=100)
    out = evaluate_policy(ds, target, cfg, LOW, HIGH, index=index)
    assert out["fqe"]["function_class"].startswith("tabular over the audit's 2 states")
    cost = out["estimates"]["cost"]["fqe"]
    assert cost["mean"] == pytest.approx(1 / 8)
    assert cost["low"] < cost["mean"] < cost["high"]  # not zero-width
    assert out["estimates"]["return"]["fqe"]["mean"] == pytest.approx(2.0)
    with pytest.raises(ConfigError, match="fqe_max_states=1"):
        evaluate_policy(ds, target, OPEConfig(estimators=("fqe",), fqe_function_class="tabular", fqe_max_states=1),
                        LOW, HIGH, index=index)  # fmt: skip


def test_an_unlogged_action_is_backed_up_through_the_model_when_one_is_given():
    ds = chain([0, 1, 0, 0])  # states 0 (obs 0) and 1 (obs 1); only action 0 is logged
    index = StateIndex.fit(ds.observations, AuditConfig())
    # the model: action 1 in state 0 goes to state 1 with cost 0; action 1 in state 1 enters a hazard (cost 1,
    # the episode ends), which member 1 of 2 doubts (cost probability 0.5)
    pairs = np.arange(4)  # state * 2 + action
    model = ModelFill(
        pair=pairs, next_state=np.array([1, 1, -1, -1]), prob=np.ones((2, 4)),
        signal=np.array([[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.5]]), cont=np.array([[1.0, 1.0, 0.0, 0.0]] * 2),
    )  # fmt: skip
    next_probs = np.eye(2)[np.ones(len(ds), np.int64)]
    start_probs = np.eye(2)[np.ones(ds.n_episodes, np.int64)]
    state_probs = np.eye(2)[[1, 1]]
    cost = fit_tabular_fqe(ds, index, ds.costs, 1.0, next_probs, start_probs, 1.0, 200, np.random.default_rng(0),
                           model, state_probs)  # fmt: skip
    assert cost.model_filled
    assert cost.q[1, 1] == pytest.approx(0.75)  # the members' average
    assert cost.q[0, 1] == pytest.approx(0.75)  # cost 0 on the way, then the same pair
    assert cost.starts.mean() == pytest.approx(0.75)
    # refits take the members in turn: half say 1, half 0.5
    assert sorted(set(np.round(cost.boots, 6))) == [0.5, 1.0]
    plain = fit(ds, 1, ds.costs, fill=1.0)  # without the model: the logged action's 0.25
    assert not plain.model_filled and plain.starts.mean() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="lacks 1 pair"):
        short = ModelFill(model.pair[:3], model.next_state[:3], model.prob[:, :3], model.signal[:, :3],
                          model.cont[:, :3])  # fmt: skip
        fit_tabular_fqe(ds, index, ds.costs, 1.0, next_probs, start_probs, 1.0, 20, np.random.default_rng(0),
                        short, state_probs)  # fmt: skip


def test_the_horizon_sets_the_number_of_backups():
    # one state that loops on itself with cost 0.1 per step (never terminates); the one episode has 3 steps and
    # is truncated: its last transition is backed up like the others, so each backup adds 0.1
    n = 3
    ds = Dataset(
        episode_ids=np.zeros(n, np.int64), steps=np.arange(n), observations=np.zeros((n, 1), np.float32),
        actions=np.zeros(n, np.int64), rewards=np.zeros(n), costs=np.full(n, 0.1),
        terminations=np.zeros(n, bool), truncations=np.r_[False, False, True], successes=np.zeros(n, bool),
        propensities=np.ones(n), next_observations=np.zeros((n, 1), np.float32), n_actions=1,
    )  # fmt: skip
    index = StateIndex.fit(ds.observations, AuditConfig())
    ones = (np.ones((n, 1)), np.ones((1, 1)))
    for horizon, expected in [(None, 0.3), (1, 0.1), (2, 0.2), (80, 8.0)]:
        out = fit_tabular_fqe(ds, index, ds.costs, 1.0, *ones, 1.0, 10, np.random.default_rng(0), horizon=horizon)
        assert out.starts.mean() == pytest.approx(expected)


def test_episode_horizon_reads_the_config_then_the_truncations_then_the_longest_episode():
    ds = chain([0, 0, 0])  # three 2-step episodes ending in a termination
    assert episode_horizon(ds, OPEConfig()) == (2, "the longest logged episode (the logs record no truncation)")
    assert episode_horizon(ds, OPEConfig(horizon=80)) == (80, "ope.horizon")
    cut = replace(ds, **{"terminations": np.zeros(len(ds), bool), "truncations": np.tile([False, True], 3)})
    assert episode_horizon(cut, OPEConfig()) == (2, "the longest truncated logged episode")
    with pytest.raises(ValueError, match="ope.horizon must be >= 1"):
        OPEConfig(horizon=0)
