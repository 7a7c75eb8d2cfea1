import numpy as np
import pytest

from guardrl.data import Dataset
from guardrl.data.audit import AuditConfig, StateIndex
from guardrl.errors import ConfigError
from guardrl.evaluate.fqe_tabular import fit_tabular_fqe
from guardrl.evaluate.ope import OPEConfig, evaluate_policy
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
    cut = Dataset(**{**ds.__dict__, "terminations": np.zeros(len(ds), bool)})
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
