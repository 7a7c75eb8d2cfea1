import dataclasses

import numpy as np
import pytest

from guardrl.data import audit as audit_module
from guardrl.data import collect
from guardrl.data.audit import AuditConfig, ExactRows, StateIndex, Support, audit
from guardrl.data.collect import episodes_to_dataset
from guardrl.envs import simulate, solve_optimal, stationary


def narrow_dataset(tables, n_episodes=300, seed=0):
    """A deterministic logger (the exact optimal policy, no noise): one action per state."""
    opt = stationary(solve_optimal(tables)[0])
    eps = simulate(tables, opt, n_episodes, np.random.default_rng(seed))
    return episodes_to_dataset(eps, np.ones_like(eps.rewards), 0, 4)


def test_adequate_noisy_data_is_offline_rl_ready(tables):
    result = audit(collect(tables, "safe", 300, seed=0))
    assert result["verdict"]["verdict"] == "offline-RL-ready"
    cov = result["coverage"]
    assert cov["choice_share"] > 0.9 and cov["covered_share"] > 0.99
    assert sum(cov["action_counts"]) == result["size"]["transitions"]
    assert result["episode_ends"]["termination"] + result["episode_ends"]["truncation"] == 300
    assert result["episode_ends"]["goal"] + result["episode_ends"]["hazard"] == result["episode_ends"]["termination"]
    # the safe controller's propensities: eps/4 for an off-policy move
    assert result["propensities"]["min"] == pytest.approx(0.22 / 4)
    assert result["sanity"] == []


def test_noisy_logs_cover_more_actions_and_are_ready(tables):
    safe, noisy = audit(collect(tables, "safe", 300, seed=0)), audit(collect(tables, "noisy", 300, seed=0))
    assert noisy["verdict"]["verdict"] == "offline-RL-ready"
    # more randomness, fewer thinly logged actions per state
    assert noisy["coverage"]["states_with_thin_action"] < safe["coverage"]["states_with_thin_action"]
    assert noisy["propensities"]["ess_uniform_target"] > safe["propensities"]["ess_uniform_target"]


def test_narrow_deterministic_logs_are_bc_only(tables):
    result = audit(narrow_dataset(tables))
    assert result["verdict"]["verdict"] == "BC-only"
    assert "too narrow" in result["verdict"]["reasons"][0]
    assert result["coverage"]["choice_share"] < 0.3


def test_too_few_episodes_are_insufficient(tables):
    result = audit(collect(tables, "safe", 5, seed=0))
    assert result["verdict"]["verdict"] == "insufficient"
    reasons = " ".join(result["verdict"]["reasons"])
    assert "5 episodes < min_episodes 20" in reasons and "min_transitions" in reasons
    # thresholds are configurable: the same data passes looser ones
    loose = AuditConfig(min_transitions=10, min_episodes=2, min_covered_share=0.0, min_choice_share=0.0)
    assert audit(collect(tables, "safe", 5, seed=0), loose)["verdict"]["verdict"] == "offline-RL-ready"


def test_constant_rewards_and_recording_errors_are_found(tables):
    ds = collect(tables, "safe", 100, seed=1)
    flat = dataclasses.replace(ds, rewards=np.full(len(ds), -1.0))
    result = audit(flat)
    assert result["verdict"]["verdict"] == "BC-only" and "rewards are constant" in result["verdict"]["reasons"]
    # a termination in the middle of episode 0
    term = ds.terminations.copy()
    term[2] = True
    findings = audit(dataclasses.replace(ds, terminations=term))["sanity"]
    assert any("end before their last row, e.g. episode 0" in f for f in findings)
    # action 3 never taken
    acts = np.where(ds.actions == 3, 1, ds.actions)
    findings = audit(dataclasses.replace(ds, actions=acts))["sanity"]
    assert any("action(s) [3] never taken" in f for f in findings)


def test_time_limits_recorded_as_terminals_are_flagged(tables):
    ds = collect(tables, "noisy", 200, seed=2)
    assert ds.truncations.sum() > 0
    wrong = dataclasses.replace(ds, terminations=ds.terminations | ds.truncations, truncations=np.zeros(len(ds), bool))
    findings = audit(wrong)["sanity"]
    assert any("time limits recorded as terminals" in f for f in findings)


def test_support_counts_and_unsupported_actions(tables):
    ds = collect(tables, "safe", 200, seed=0)
    sup = Support.from_dataset(ds, AuditConfig(k=5))
    start = ds.observations[:1]
    counts = sup.action_counts(np.repeat(start, 4, axis=0), np.arange(4))
    # the start cell's counts add up to the logged transitions from it (every episode starts there)
    assert counts.sum() == (ds.observations == start).all(axis=1).sum() >= 200
    assert list(sup.unsupported(np.repeat(start, 4, axis=0), np.arange(4))) == list(counts < 5)
    never = np.array([[100.0, 100.0]], dtype=np.float32)
    assert sup.unsupported(never, np.array([0]))[0]
    probs = sup.behaviour_probs(np.concatenate([start, never]))
    assert probs[0] == pytest.approx(counts / counts.sum()) and probs[1] == pytest.approx([0.25] * 4)


def test_continuous_observations_are_binned():
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(20_000, 3)).astype(np.float32)
    index = StateIndex.fit(obs, AuditConfig(n_bins=4))
    assert index.exact is None and index.n_states == 64
    ids = index(obs)
    assert ids.min() >= 0 and ids.max() < 64
    assert np.bincount(ids, minlength=64).min() > 0  # quantile bins: every cell of independent normals is hit


def test_world_model_needs_enough_and_varied_logs(tables):
    ok = audit(collect(tables, "safe", 60, seed=0))["world_model"]
    assert ok == {"fit": True, "reasons": ["enough logs for a world model"]}
    few = audit(collect(tables, "safe", 6, seed=0))["world_model"]
    assert few["fit"] is False
    assert any("< min_model_transitions 500" in r for r in few["reasons"])
    assert any("6 episodes" in r for r in few["reasons"])
    ds = collect(tables, "safe", 60, seed=0)
    one_action = dataclasses.replace(ds, actions=np.zeros(len(ds), dtype=np.int64))
    narrow = audit(one_action)["world_model"]
    assert narrow["fit"] is False and "too narrow" in " ".join(narrow["reasons"])
    still = dataclasses.replace(ds, observations=np.zeros_like(ds.observations))
    assert "every logged observation is the same" in " ".join(audit(still)["world_model"]["reasons"])


def _brute_find(rows, queries):
    """Position of each query among rows by comparing values one row at a time (-1 when absent)."""
    out = []
    for q in queries:
        same = np.flatnonzero((rows == q).all(axis=1))
        out.append(int(same[0]) if len(same) else -1)
    return np.array(out)


@pytest.mark.parametrize("width", [1, 2, 48, 147])
def test_exact_rows_find_every_logged_row_and_nothing_else(width):
    rng = np.random.default_rng(width)
    rows = np.unique(rng.integers(0, 3, (400, width)).astype(np.float32), axis=0)
    queries = np.concatenate([rows[rng.integers(0, len(rows), 300)], rng.integers(0, 3, (300, width))]).astype(
        np.float32
    )
    queries[:20] *= -1.0  # zeros become -0.0, which equals 0.0 as a value; the rest become rows never logged
    queries[20:25, 0] = np.nan
    found = ExactRows(rows).find(queries)
    np.testing.assert_array_equal(found, _brute_find(rows, queries))
    assert (found[:300][~np.isnan(queries[:300]).any(axis=1) & (queries[:300] >= 0).all(axis=1)] >= 0).all()
    assert (found[20:25] == -1).all()
    index = StateIndex(exact=rows, edges=None)
    np.testing.assert_array_equal(index(queries), found)


def test_exact_rows_colliding_keys_fall_back_to_comparing_rows(monkeypatch):
    """Keys that collide (forced here: every row keyed 0) must not lose rows: the row search takes over."""
    rows = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]], dtype=np.float32)
    monkeypatch.setattr(audit_module, "row_keys", lambda r: np.zeros(len(r), dtype=np.uint64))
    exact = ExactRows(rows)
    assert not exact.unique_keys
    queries = np.array([[2.0, 2.0], [0.0, 1.0], [5.0, 5.0], [1.0, 0.0]], dtype=np.float32)
    np.testing.assert_array_equal(exact.find(queries), [2, 0, -1, 1])
