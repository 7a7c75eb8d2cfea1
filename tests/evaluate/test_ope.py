from dataclasses import replace

import numpy as np
import pytest

from guardrl.data import Dataset, collect
from guardrl.data.behaviour import constrained_policy
from guardrl.envs import evaluate_exact
from guardrl.evaluate.importance import Padded, dr_values, pdis_values, survival_is, weighted_dr, wis_parts
from guardrl.evaluate.ope import OPEConfig, evaluate_policy
from guardrl.evaluate.target import TargetPolicy
from guardrl.evaluate.validation import rank_correlation

LOW, HIGH = np.zeros(1), np.ones(1)


def bandit(actions, rewards, propensities, n_actions=2):
    """One-step episodes: observation 0, the logged action, its reward, then termination."""
    n = len(actions)
    return Dataset(
        episode_ids=np.arange(n), steps=np.zeros(n, dtype=np.int64), observations=np.zeros((n, 1), np.float32),
        actions=np.asarray(actions), rewards=np.asarray(rewards, float), costs=(np.asarray(rewards) < 0).astype(float),
        terminations=np.ones(n, bool), truncations=np.zeros(n, bool), successes=np.zeros(n, bool),
        propensities=np.asarray(propensities, float), next_observations=np.zeros((n, 1), np.float32),
        n_actions=n_actions,
    )  # fmt: skip


def always(action):
    return TargetPolicy(f"always-{action}", lambda obs: np.full(len(obs), action))


def test_is_estimators_on_a_hand_computed_bandit():
    ds = bandit([1, 0, 1, 0], [1.0, 0.0, 1.0, 0.0], [0.5] * 4)
    cfg = OPEConfig(estimators=("pdis", "wis"), epsilon=0.0, cost=False)
    est = evaluate_policy(ds, always(1), cfg, LOW, HIGH)["estimates"]["return"]
    assert est["pdis"]["mean"] == pytest.approx(1.0)  # (2*1 + 0 + 2*1 + 0) / 4
    assert est["wis"]["mean"] == pytest.approx(1.0)  # (2*1 + 2*1) / (2 + 2)
    # softened target: pi(1) = 0.9, pi(0) = 0.1, whose true value is 0.9
    soft = evaluate_policy(ds, always(1), OPEConfig(estimators=("pdis",), epsilon=0.2, cost=False), LOW, HIGH)
    assert soft["estimates"]["return"]["pdis"]["mean"] == pytest.approx((1.8 + 1.8) / 4)
    assert soft["epsilon"] == 0.2


def test_survival_is_estimates_the_hazard_through_the_survivors():
    # costs per episode 1, 0, 0, 1 (rewards < 0 mark them); behaviour 0.5; the target always takes action 1
    ds = bandit([1, 0, 1, 1], [-1.0, 1.0, 1.0, -1.0], [0.5] * 4)
    p = Padded.build(ds, np.array([[0.0, 1.0]] * 4))
    est = survival_is(p, p.costs, np.random.default_rng(0), 200, 0.95)
    # weights 2, 0, 2, 2; survivors: episode 2 only -> survival 2 * 1 / 4 = 0.5, hazard 0.5 (PDIS: 4 / 4 = 1.0)
    assert est.mean == pytest.approx(0.5) and est.low <= 0.5 <= est.high
    assert pdis_values(p, p.costs, 1.0).mean() == pytest.approx(1.0)
    # an episode with two hazard events: the estimator does not apply
    twice = Padded(p.rewards, np.array([[1.0], [0.0], [0.0], [2.0]]), p.ratios, p.valid, p.index)
    assert survival_is(twice, twice.costs, np.random.default_rng(0), 200, 0.95) is None
    cfg = OPEConfig(estimators=("pdis", "wis"), epsilon=0.0)
    out = evaluate_policy(ds, always(1), cfg, LOW, HIGH)["estimates"]
    assert out["cost"]["survival_is"]["mean"] == pytest.approx(0.5) and "survival_is" not in out["return"]


def test_per_decision_weights_multiply_along_the_episode():
    # one 3-step episode, behaviour 0.5 everywhere, target matches on steps 0 and 2, not on 1 (eps = 0)
    ds = bandit([1, 0, 1], [1.0, 2.0, 4.0], [0.5] * 3)
    ds = replace(ds, **{"episode_ids": np.zeros(3, np.int64), "steps": np.arange(3),
                    "terminations": np.array([False, False, True])})  # fmt: skip
    probs = np.array([[0.0, 1.0]] * 3)
    p = Padded.build(ds, probs)
    assert p.ratios.tolist() == [[2.0, 0.0, 2.0]]
    # rho_0 r_0 + rho_01 r_1 + rho_012 r_2 = 2*1 + 0*2 + 0*4
    assert pdis_values(p, p.rewards, 1.0).tolist() == [2.0]
    assert pdis_values(p, p.rewards, 0.5).tolist() == [2.0]
    w, g = wis_parts(p, p.rewards, 0.5)
    assert w.tolist() == [0.0] and g.tolist() == [1.0 + 0.5 * 2.0 + 0.25 * 4.0]


def test_doubly_robust_with_an_exact_model_has_no_variance():
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 2, 200)
    ds = bandit(actions, actions.astype(float), [0.5] * 200)
    p = Padded.build(ds, np.tile([0.2, 0.8], (200, 1)))
    q = np.array([0.0, 1.0])
    q_taken = q[actions][:, None]
    v = np.full((200, 1), 0.8)
    values = dr_values(p, p.rewards, q_taken, v, 1.0)
    assert values == pytest.approx(np.full(200, 0.8))  # exact model: every episode gives the true value
    # the weighted form gives the truth for any resampling of the episodes
    counts = np.vstack([np.ones(200), rng.integers(0, 3, 200)])
    assert weighted_dr(p, p.rewards, q_taken, v, 1.0, counts) == pytest.approx([0.8, 0.8])


def test_weighted_dr_self_normalizes_per_step():
    # two one-step episodes with a useless model (Q = V = 0): WDR is then weighted IS of the rewards
    ds = bandit([1, 0], [3.0, 1.0], [0.5, 0.5])
    p = Padded.build(ds, np.tile([0.25, 0.75], (2, 1)))  # ratios 1.5 and 0.5
    zeros = np.zeros((2, 1))
    est = weighted_dr(p, p.rewards, zeros, zeros, 1.0, np.ones((1, 2)))
    # episode 0 (action 1, ratio 1.5) earned 3, episode 1 (ratio 0.5) earned 1: the target's true value is 2.5
    assert est[0] == pytest.approx((1.5 * 3.0 + 0.5 * 1.0) / 2.0) == pytest.approx(0.75 * 3.0 + 0.25 * 1.0)
    assert weighted_dr(p, p.rewards, zeros, zeros, 1.0, np.array([[2.0, 0.0]]))[0] == pytest.approx(3.0)


def test_fqe_and_dr_recover_a_bandit_value():
    rng = np.random.default_rng(1)
    actions = rng.integers(0, 2, 2000)
    rewards = np.where(actions == 1, 1.0, -1.0) + rng.normal(0, 0.1, 2000)
    ds = bandit(actions, rewards, [0.5] * 2000)
    cfg = OPEConfig(epsilon=0.0, fqe_steps=300, cost=True, n_bootstrap=300)
    out = evaluate_policy(ds, always(1), cfg, LOW, HIGH)
    est = out["estimates"]
    for name in ("pdis", "wis", "fqe", "dr"):
        assert est["return"][name]["mean"] == pytest.approx(1.0, abs=0.1), name
    assert est["cost"]["dr"]["mean"] == pytest.approx(0.0, abs=0.05)  # the target never pays the cost
    assert est["return"]["pdis"]["low"] <= 1.0 <= est["return"]["pdis"]["high"]
    # same config, same numbers, whether the return and cost FQEs ran in two forked processes or here
    again = evaluate_policy(ds, always(1), cfg, LOW, HIGH)["estimates"]
    assert again == est
    inline = evaluate_policy(ds, always(1), replace(cfg, fqe_workers=1), LOW, HIGH)["estimates"]
    assert inline == est


def test_stochastic_target_fqe_is_the_same_in_any_process():
    rng = np.random.default_rng(2)
    actions = rng.integers(0, 2, 500)
    ds = bandit(actions, np.where(actions == 1, 1.0, -1.0), [0.5] * 500)
    coin = TargetPolicy("coin", lambda obs: np.zeros(len(obs), np.int64), lambda obs: np.full((len(obs), 2), 0.5))
    cfg = OPEConfig(estimators=("fqe",), fqe_steps=50, n_bootstrap=50)
    forked = evaluate_policy(ds, coin, cfg, LOW, HIGH)
    inline = evaluate_policy(ds, coin, replace(cfg, fqe_workers=1), LOW, HIGH)
    assert forked["estimates"] == inline["estimates"]
    assert forked["fqe_final_loss"] == inline["fqe_final_loss"]


def test_is_ci_covers_the_truth_for_the_behaviour_policy_itself(tables):
    ds = collect(tables, "safe", 500, seed=0)
    behaviour = constrained_policy(tables, 0.22)
    target = TargetPolicy(
        "behaviour",
        lambda o: behaviour.action_probs(o, np.zeros(len(o), int)).argmax(1),
        lambda o: behaviour.action_probs(o, np.zeros(len(o), int)),
    )
    cfg = OPEConfig(estimators=("pdis", "wis"), n_bootstrap=2000)
    out = evaluate_policy(ds, target, cfg, np.zeros(2), np.full(2, 14.0))
    truth = evaluate_exact(behaviour)
    assert out["weights"]["mean_ratio"] == pytest.approx(1.0)
    for est in ("pdis", "wis"):
        r = out["estimates"]["return"][est]
        assert r["low"] <= truth.expected_return <= r["high"], (est, r, truth.expected_return)
        c = out["estimates"]["cost"][est]
        assert c["low"] <= truth.hazard_prob <= c["high"], (est, c, truth.hazard_prob)


def test_rank_correlation():
    assert rank_correlation(np.array([1.0, 2, 3, 4]), np.array([10.0, 20, 30, 40])) == pytest.approx(1.0)
    assert rank_correlation(np.array([1.0, 2, 3]), np.array([3.0, 2, 1])) == pytest.approx(-1.0)
    assert np.isnan(rank_correlation(np.array([1.0, 1, 1]), np.array([1.0, 2, 3])))


def test_bad_ope_config_is_an_error():
    with pytest.raises(ValueError, match="dr needs fqe"):
        OPEConfig(estimators=("pdis", "dr"))
    with pytest.raises(ValueError, match="unknown"):
        OPEConfig(estimators=("magic",))


def test_missing_propensities_are_a_clear_error():
    ds = bandit([1, 0], [1.0, 0.0], [np.nan, 0.5])
    with pytest.raises(ValueError, match="1 transitions have no behaviour propensity"):
        evaluate_policy(ds, always(1), OPEConfig(cost=False), LOW, HIGH)
