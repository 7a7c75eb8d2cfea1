"""One-step (contextual bandit) estimators: a hand-computed bandit, cross-fitting, and coverage."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from guardrl.evaluate.bandit import BanditConfig, bandit_estimates, is_one_step, mean_interval, reward_model
from guardrl.evaluate.metrics import wilson_interval

# four rows in one context, two actions; the target plays [0.2, 0.8] everywhere
ACTIONS = np.array([0, 1, 0, 1])
REWARDS = np.array([1.0, 0.0, 0.0, 1.0])
PROPENSITIES = np.array([0.5, 0.5, 0.25, 0.75])
TARGET = np.tile([0.2, 0.8], (4, 1))
Z95 = 1.959963984540054


def hand_bandit(**cfg: float) -> dict:
    # four folds on four rows: every row's reward model is fitted on the three others (leave-one-out)
    bcfg = BanditConfig(folds=4, prior_rows=0.0, **cfg)  # type: ignore[arg-type]
    return bandit_estimates(np.zeros(4, dtype=np.int64), ACTIONS, PROPENSITIES, TARGET, {"return": REWARDS},
                            bcfg, 0.95, seed=0)  # fmt: skip


def test_ips_and_snips_equal_the_hand_computed_values() -> None:
    out = hand_bandit()
    # weights 0.2/0.5, 0.8/0.5, 0.2/0.25, 0.8/0.75 = 0.4, 1.6, 0.8, 16/15
    terms = [0.4, 0.0, 0.0, 16 / 15]
    ips = out["estimates"]["return"]["ips"]
    assert ips.mean == pytest.approx(22 / 60)  # (0.4 + 16/15) / 4
    normal = mean_interval(np.array(terms), 0.95)
    half = Z95 * statistics.stdev(terms) / 2
    assert (normal.low, normal.high) == pytest.approx((22 / 60 - half, 22 / 60 + half))
    # widened to Wilson's interval of 0.3667 among the ESS of 3.5 rows, then clipped to the rewards' range [0, 1]
    ess = out["weights"]["ess_episodes"]
    w_lo, w_hi = wilson_interval(22 / 60, ess)
    assert ips.low == pytest.approx(max(min(normal.low, w_lo), 0.0))
    assert ips.high == pytest.approx(min(max(normal.high, w_hi), 1.0))
    assert normal.low < 0.0 == ips.low  # a click rate is never below 0
    assert out["estimates"]["return"]["snips"].mean == pytest.approx((0.4 + 16 / 15) / (0.4 + 1.6 + 0.8 + 16 / 15))
    assert out["weights"]["max_ratio"] == pytest.approx(1.6)
    assert out["weights"]["ess_episodes"] == pytest.approx((58 / 15) ** 2 / (0.16 + 2.56 + 0.64 + (16 / 15) ** 2))
    assert out["weights"]["min_propensity"] == 0.25


def test_dr_is_cross_fitted_and_equals_the_hand_computed_value() -> None:
    out = hand_bandit()["estimates"]["return"]
    # leave-one-out reward model: row 1 (a0, r1) sees a0 -> 0, a1 -> 0.5: dm 0.4, correction 0.4 * (1 - 0)
    # row 2 (a1, r0): a0 -> 0.5, a1 -> 1: dm 0.9, correction 1.6 * (0 - 1); row 3 (a0, r0): a0 -> 1, a1 -> 0.5:
    # dm 0.6, correction 0.8 * (0 - 1); row 4 (a1, r1): a0 -> 0.5, a1 -> 0: dm 0.1, correction (16/15) * 1
    assert out["dm"].mean == pytest.approx((0.4 + 0.9 + 0.6 + 0.1) / 4)
    assert out["dr"].mean == pytest.approx((0.8 - 0.7 - 0.2 + 0.1 + 16 / 15) / 4)
    # fitted on the same rows, the model would equal each action's logged mean and DR would equal DM: not so here
    assert out["dr"].mean != pytest.approx(out["dm"].mean)


def test_switch_dr_drops_the_correction_of_heavy_rows() -> None:
    out = hand_bandit(switch_weight=1.0)
    # rows 2 (w 1.6) and 4 (w 16/15) lose their corrections: 0.8, 0.9, -0.2, 0.1
    assert out["estimates"]["return"]["switch_dr"].mean == pytest.approx(1.6 / 4)
    assert out["weights"]["rows_over_switch_weight"] == 2


def test_reward_model_shrinks_toward_the_action_mean_and_fills_unlogged_pairs() -> None:
    contexts = np.array([0, 0, 1])
    actions = np.array([0, 0, 0])
    rewards = np.array([1.0, 1.0, 0.0])
    model = reward_model(contexts, actions, rewards, n_contexts=2, n_actions=2, prior_rows=1.0)
    overall = 2 / 3
    a0 = (2 + overall) / (3 + 1)
    assert model[0, 0] == pytest.approx((2 + a0) / 3)
    assert model[1, 0] == pytest.approx((0 + a0) / 2)
    assert model[0, 1] == pytest.approx(overall)  # action 1 never logged: the overall mean (its prior)
    assert model[1, 1] == pytest.approx(overall)


def test_unlogged_mass_is_the_target_probability_on_pairs_the_logs_lack() -> None:
    contexts = np.array([0, 0, 1, 1])
    actions = np.array([0, 1, 0, 0])  # context 1 never logs action 1
    target = np.tile([0.3, 0.7], (4, 1))
    out = bandit_estimates(contexts, actions, np.full(4, 0.5), target, {"return": np.ones(4)},
                           BanditConfig(folds=2), 0.95, seed=0)  # fmt: skip
    assert out["unlogged_mass"] == pytest.approx(0.5 * 0.7)
    assert out["contexts"] == 2


def test_intervals_cover_the_true_value_over_repeated_logs() -> None:
    """A logged softmax policy over 5 contexts x 20 actions with known click rates, heavy weights (the largest
    near 190); the uniform target's true value is their mean. IPS, SNIPS and DR's 95% intervals cover it in at
    least 95% of 300 logs (their normal intervals alone: 79-82%)."""
    rng = np.random.default_rng(11)
    n_ctx, n_act, n = 5, 20, 3000
    rates = rng.uniform(0.0, 0.1, size=(n_ctx, n_act))
    logits = rng.normal(0.0, 2.0, size=(n_ctx, n_act))
    mu = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    truth = rates.mean()
    hits = {"ips": 0, "snips": 0, "dr": 0}
    normal_hits = 0
    for rep in range(300):
        r = np.random.default_rng([11, rep])
        ctx = r.integers(0, n_ctx, size=n)
        act = (r.random(n)[:, None] > mu[ctx].cumsum(axis=1)).sum(axis=1)
        click = (r.random(n) < rates[ctx, act]).astype(float)
        out = bandit_estimates(ctx, act, mu[ctx, act], np.full((n, n_act), 1 / n_act), {"return": click},
                               BanditConfig(), 0.95, seed=rep)  # fmt: skip
        for k in hits:
            e = out["estimates"]["return"][k]
            hits[k] += e.low <= truth <= e.high
        w = 1 / n_act / mu[ctx, act]
        normal = mean_interval(w * click, 0.95)
        normal_hits += normal.low <= truth <= normal.high
    assert all(h >= 285 for h in hits.values()), hits
    assert normal_hits < 270  # the widening is what covers


def test_one_step_logs_are_recognized_by_their_episode_starts() -> None:
    assert is_one_step(np.arange(5), 5)
    assert not is_one_step(np.array([0, 2, 3]), 5)
    assert not is_one_step(np.zeros(0, dtype=np.int64), 0)
