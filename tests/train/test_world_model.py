"""The world model: which target it predicts, what it learns on a known MDP, and a pickle-free round trip."""

import json
from dataclasses import replace

import numpy as np
import pytest

from guardrl.data import collect
from guardrl.train.config import WorldModelConfig
from guardrl.train.world_model import LoggedTransitions, WorldModel, WorldModelError
from guardrl.train.world_model_fit import _transition_kind, fit_world_model

FAST = WorldModelConfig(n_members=3, steps=1000, hidden_units=(64, 64))


@pytest.fixture(scope="module")
def grid_logs(tables):
    return collect(tables, "safe", 120, 5)


@pytest.fixture(scope="module")
def grid_model(grid_logs):
    return fit_world_model(grid_logs, FAST)


def test_grid_moves_are_classes_of_change(grid_logs):
    kind, classes, label = _transition_kind(grid_logs, 64)
    assert kind == "delta"
    assert {tuple(c) for c in classes.tolist()} <= {(-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0), (0.0, 0.0)}
    delta = grid_logs.next_observations - grid_logs.observations
    np.testing.assert_array_equal(classes[label], delta)


def test_continuous_changes_are_gaussian(grid_logs):
    rng = np.random.default_rng(0)
    noisy = replace(
        grid_logs,
        next_observations=grid_logs.next_observations
        + rng.normal(size=grid_logs.next_observations.shape).astype(np.float32),
    )
    kind, classes, label = _transition_kind(noisy, 64)
    assert kind == "gaussian" and len(classes) == 0 and (label == -1).all()


def test_it_learns_the_grid_moves_and_the_hazards(grid_model, grid_logs, tables):
    # intended move 'down' (0: y+1) from a logged cell: most of the mass on (0, +1); slips share the rest
    obs = np.array([[7.0, 7.0]], dtype=np.float32)
    probs = grid_model.predict(obs, np.array([0]))["probs"].mean(axis=0)[0]
    classes = [tuple(c) for c in grid_model.meta["classes"]]
    assert probs[classes.index((0.0, 1.0))] > 0.8
    acc = grid_model.meta["accuracy"]
    assert acc["next_obs_accuracy"] > 0.9 and acc["termination_accuracy"] > 0.97
    # the logged hazard entries are costs and endings; plain steps are neither
    hit = grid_logs.costs > 0
    assert hit.sum() >= 5
    into = grid_model.predict_outcome(
        grid_logs.observations[hit], grid_logs.actions[hit], grid_logs.next_observations[hit]
    )
    plain = grid_model.predict_outcome(obs, np.array([0]), np.array([[7.0, 8.0]], np.float32))
    # (a member whose bootstrap resample missed a rare entry may not know it: the ensemble mean on most of them)
    assert np.median(into["cost"].mean(axis=0)) > 0.5 > plain["cost"].mean()
    assert np.median(into["termination"].mean(axis=0)) > 0.5 > plain["termination"].mean()
    assert grid_model.meta["reward_classes"] == sorted(set(grid_logs.rewards.tolist()))


def test_rollouts_stay_on_the_logged_map_and_stop_at_the_horizon(grid_model, grid_logs):
    starts = grid_logs.observations[grid_logs.episode_starts[:50]]
    seen = []

    def policy(obs):
        seen.append(obs.copy())
        return np.full(len(obs), 3)  # always x-1: walks into the wall

    roll = grid_model.rollout(policy, starts, np.random.default_rng(0))
    assert roll.returns.shape == (3, 50) and (roll.lengths <= grid_model.horizon).all()
    visited = np.concatenate(seen)
    assert visited.min() >= 0 and visited.max() <= 14  # clipped to the logged range
    again = grid_model.rollout(policy, starts, np.random.default_rng(0))
    np.testing.assert_array_equal(roll.returns, again.returns)  # the same generator gives the same episodes


def test_unknown_pairs_are_flagged(grid_model, grid_logs):
    starts = grid_logs.observations[grid_logs.episode_starts[:20]]
    roll = grid_model.rollout(lambda o: np.zeros(len(o), np.int64), starts, np.random.default_rng(1),
                              unknown=lambda o, a: np.ones(len(o), bool))  # fmt: skip
    assert roll.hit_unknown.all()


def test_save_and_load_without_pickle(grid_model, grid_logs, tmp_path):
    grid_model.save(tmp_path / "wm")
    loaded = WorldModel.load(tmp_path / "wm")
    obs, act = grid_logs.observations[:30], grid_logs.actions[:30]
    np.testing.assert_allclose(loaded.predict(obs, act)["probs"], grid_model.predict(obs, act)["probs"])
    with np.load(tmp_path / "wm" / "weights.npz", allow_pickle=False) as z:
        assert all(z[k].dtype == np.float32 for k in z.files)
    meta = json.loads((tmp_path / "wm" / "model.json").read_text())
    meta["format_version"] = 99
    (tmp_path / "wm" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(WorldModelError, match="format_version 99"):
        WorldModel.load(tmp_path / "wm")
    with pytest.raises(WorldModelError, match="no saved world model"):
        WorldModel.load(tmp_path / "nowhere")


def test_same_config_same_model(grid_logs):
    cfg = replace(FAST, steps=30)
    a, b = fit_world_model(grid_logs, cfg), fit_world_model(grid_logs, cfg)
    obs, act = grid_logs.observations[:10], grid_logs.actions[:10]
    np.testing.assert_array_equal(a.predict(obs, act)["probs"], b.predict(obs, act)["probs"])
    c = fit_world_model(grid_logs, replace(cfg, seed=1))
    assert not np.array_equal(a.predict(obs, act)["probs"], c.predict(obs, act)["probs"])


def test_one_episode_is_refused(tables):
    with pytest.raises(WorldModelError, match="needs 2\\+"):
        fit_world_model(collect(tables, "safe", 1, 0), FAST)


def test_packed_rows_match_each_column():
    import torch

    from guardrl.train.world_model_fit import _Table

    rng = np.random.default_rng(3)
    floats = {"x": torch.as_tensor(rng.normal(size=(50, 4)).astype(np.float32)),
              "r": torch.as_tensor(rng.normal(size=50).astype(np.float32))}  # fmt: skip
    ints = {"label": torch.as_tensor(rng.integers(0, 9, size=50)), "other": torch.arange(50)}
    idx = rng.integers(0, 50, size=(3, 7))
    rows = _Table(floats, ints).rows(idx)
    for name, col in {**floats, **ints}.items():
        assert rows[name].shape == col[idx].shape and rows[name].dtype == col.dtype
        torch.testing.assert_close(rows[name], col[torch.as_tensor(idx)], rtol=0, atol=0)


def test_two_fitting_threads_give_the_same_weights(grid_logs, monkeypatch):
    import guardrl.train.world_model as wm

    cfg = replace(FAST, steps=60)
    weights = []
    for threads in (1, 2):
        monkeypatch.setattr(wm, "FIT_THREADS", threads)
        model = fit_world_model(grid_logs, cfg)
        weights.append([p.detach().numpy().copy() for p in model.transition.parameters()])
    for one, two in zip(*weights, strict=True):
        np.testing.assert_array_equal(one, two)


def test_rollouts_run_for_a_given_horizon(grid_model, grid_logs):
    starts = grid_logs.observations[grid_logs.episode_starts[:10]]
    loop = grid_model.rollout(lambda o: np.full(len(o), 3), starts, np.random.default_rng(0), horizon=200)
    # walking into the wall never ends an episode: every episode runs the given horizon, past the logged one
    assert grid_model.horizon < 200 and (loop.lengths == 200).mean() > 0.9


def test_one_step_lists_each_members_outcomes(grid_model, tables):
    obs = np.array([[7.0, 7.0], [0.0, 0.0]], dtype=np.float32)
    out = grid_model.one_step(obs, np.array([0, 3]))
    total = np.zeros((grid_model.n_members, 2))
    np.add.at(total, (slice(None), out.row), out.prob)
    np.testing.assert_allclose(total, 1.0)  # each row's outcomes are a distribution in every member
    # the outcomes are the row's observation plus a logged change, clipped to the logged map
    for e in range(len(out.row)):
        change = out.next_obs[e] - obs[out.row[e]]
        assert np.abs(change).sum() <= 1 and out.next_obs[e].min() >= 0
    # 'down' from (7, 7): (7, 8) most likely; x-1 from (0, 0) stays in the corner (the wall)
    best = [out.next_obs[out.row == r][out.prob.mean(axis=0)[out.row == r].argmax()].tolist() for r in (0, 1)]
    assert best == [[7.0, 8.0], [0.0, 0.0]]
    assert out.cost.shape == out.prob.shape and (out.termination >= 0).all() and (out.termination <= 1).all()
    gaussian = WorldModel({**grid_model.meta, "kind": "gaussian"}, grid_model.transition, grid_model.outcome)
    with pytest.raises(WorldModelError, match="Gaussian"):
        gaussian.one_step(obs, np.array([0, 3]))


def test_logged_transitions_are_grouped_by_pair(grid_logs):
    logged = LoggedTransitions.from_dataset(grid_logs, prior=5.0)
    pair = logged.index(grid_logs.observations) * grid_logs.n_actions + grid_logs.actions
    counts = np.diff(logged.start)
    np.testing.assert_array_equal(counts, np.bincount(pair, minlength=len(counts)))
    for i in range(0, len(grid_logs), 97):  # every transition sits in its own pair's slice
        rows = slice(logged.start[pair[i]], logged.start[pair[i] + 1])
        same = (logged.next_obs[rows] == grid_logs.next_observations[i]).all(axis=1)
        assert same.any() and (logged.cost[rows][same] == grid_logs.costs[i]).any()
    with pytest.raises(WorldModelError, match=">= 0"):
        LoggedTransitions.from_dataset(grid_logs, prior=-1.0)


def test_draws_follow_the_logs_at_their_rates_and_the_prior_weighs_them(grid_logs):
    logged = LoggedTransitions.from_dataset(grid_logs, prior=0.0)
    counts = np.diff(logged.start)
    # the most-logged pair whose logged outcomes differ (a slip among the intended moves)
    varied = [
        p
        for p in np.argsort(-counts)
        if len(np.unique(logged.next_obs[logged.start[p] : logged.start[p + 1]], axis=0)) > 1
    ]
    p = int(varied[0])
    s, a = divmod(p, grid_logs.n_actions)
    obs = np.repeat(logged.index.exact[s][None], 400, axis=0)
    actions = np.full(400, a)
    member = np.repeat(np.arange(4), 100)
    rng = np.random.default_rng(0)
    picked = []
    for _ in range(50):  # over many bootstrap resamples, each outcome comes at its logged rate
        take, pick = logged.draw(obs, actions, member, logged.resample(4, rng), rng)
        assert take.all() and ((pick >= logged.start[p]) & (pick < logged.start[p + 1])).all()
        picked.append(pick)
    drawn = np.bincount(np.concatenate(picked) - logged.start[p], minlength=counts[p]) / (50 * 400)
    np.testing.assert_allclose(drawn, np.full(counts[p], 1 / counts[p]), atol=0.1 / counts[p] ** 0.5)
    # an unlogged observation never takes a logged outcome; a prior of n takes about half of a pair's draws
    off_map = np.full((400, 2), -5.0, np.float32)
    take, _ = logged.draw(off_map, actions, member, logged.resample(4, rng), rng)
    assert not take.any()
    even = replace(logged, prior=float(counts[p]))
    take, _ = even.draw(obs, actions, member, even.resample(4, rng), rng)
    assert 0.3 < take.mean() < 0.7


def test_rollouts_on_logged_pairs_follow_the_logs(grid_model, grid_logs):
    logged = LoggedTransitions.from_dataset(grid_logs, prior=0.0)
    counts = np.diff(logged.start).reshape(-1, grid_logs.n_actions)
    most_logged = counts.argmax(axis=1)  # every logged state's most-logged action: a policy the logs hold
    seen = []

    def policy(obs):
        seen.append(obs.copy())
        state = logged.index(obs)
        assert (state >= 0).all()  # only logged observations are ever reached
        return most_logged[state]

    starts = grid_logs.observations[grid_logs.episode_starts[:40]]
    roll = grid_model.rollout(policy, starts, np.random.default_rng(3), logged=logged,
                              unknown=lambda o, a: counts[logged.index(o), a] == 0)  # fmt: skip
    assert not roll.hit_unknown.any() and len(seen) > 1
