"""Tabular learners: SPIBB on a hand-built MDP, the Lagrangian on a constrained bandit, MOReL's halt, export."""

from __future__ import annotations

import numpy as np
import pytest

from guardrl.data import Dataset
from guardrl.data.audit import AuditConfig, StateIndex
from guardrl.train.config import MOPOConfig, MOReLConfig, SPIBBConfig, TrainConfig, WorldModelConfig
from guardrl.train.planning import (
    TabularError,
    TabularMDP,
    behaviour_policy,
    mle_mdp,
    plan_with_budget,
    spibb_improve,
    value_iteration,
)
from guardrl.train.tabular import TabularPolicy, train_model_planner, train_spibb


def one_step_logs(
    counts: dict[int, int], rewards: dict[int, float], n_actions: int = 3, costs: dict[int, float] | None = None
) -> Dataset:
    """One-step episodes from a single state: ``counts[a]`` episodes took action ``a`` and got ``rewards[a]``."""
    actions = np.concatenate([np.full(c, a) for a, c in counts.items()]).astype(np.int64)
    n = len(actions)
    costs = costs or {}
    return Dataset(
        episode_ids=np.arange(n, dtype=np.int64),
        steps=np.zeros(n, dtype=np.int64),
        observations=np.zeros((n, 1), dtype=np.float32),
        actions=actions,
        rewards=np.array([rewards[a] for a in actions], dtype=np.float64),
        costs=np.array([costs.get(int(a), 0.0) for a in actions], dtype=np.float64),
        terminations=np.ones(n, dtype=bool),
        truncations=np.zeros(n, dtype=bool),
        successes=np.zeros(n, dtype=bool),
        propensities=np.full(n, np.nan),
        next_observations=np.ones((n, 1), dtype=np.float32),
        n_actions=n_actions,
    )


def test_spibb_keeps_the_behaviour_probability_of_a_rarely_logged_action() -> None:
    # action 2 looks best (reward 10) but was logged 3 times: with N∧ = 10 it keeps its behaviour probability
    # 3/103, and the rest (100/103) goes to the best well-logged action, 1
    ds = one_step_logs({0: 50, 1: 50, 2: 3}, {0: 0.0, 1: 1.0, 2: 10.0})
    policy = train_spibb(ds, SPIBBConfig(n_wedge=10, hazard_budget=False), AuditConfig(), budget=None)
    probs = np.exp(policy.scores[0])
    np.testing.assert_allclose(probs, [0.0, 100 / 103, 3 / 103], atol=1e-9)
    assert policy.predict(np.zeros((1, 1))).tolist() == [1]
    # with N∧ = 2 the 3 samples are enough: all the mass moves to action 2
    trusting = train_spibb(ds, SPIBBConfig(n_wedge=2, hazard_budget=False), AuditConfig(), budget=None)
    np.testing.assert_allclose(np.exp(trusting.scores[0]), [0.0, 0.0, 1.0], atol=1e-9)


def test_spibb_improvement_step_matches_the_paper() -> None:
    q = np.array([[1.0, 5.0, 9.0], [3.0, 2.0, 1.0]])
    behaviour = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    boot = np.array([[False, False, True], [True, True, True]])
    pi = spibb_improve(q, behaviour, boot)
    np.testing.assert_allclose(pi, [[0.0, 0.7, 0.3], [0.6, 0.3, 0.1]])  # a fully bootstrapped state keeps pi_b


def test_behaviour_policy_uses_logged_propensities() -> None:
    ds = one_step_logs({0: 40, 1: 60}, {0: 0.0, 1: 0.0}, n_actions=3)
    ds.propensities[:] = np.where(ds.actions == 0, 0.3, 0.6)  # action 2 (never logged) has the remaining 0.1
    index = StateIndex.fit(ds.observations, AuditConfig())
    _, counts = mle_mdp(ds, index, unknown_reward=-1.0)
    np.testing.assert_allclose(behaviour_policy(ds, index, counts)[0], [0.3, 0.6, 0.1])


def test_never_logged_pair_halts_pessimistically_in_the_mle_model() -> None:
    ds = one_step_logs({0: 5, 1: 5}, {0: 1.0, 1: 2.0})
    index = StateIndex.fit(ds.observations, AuditConfig())
    mdp, counts = mle_mdp(ds, index, unknown_reward=-7.0)
    assert counts.tolist() == [[5, 5, 0]]
    q, _ = value_iteration(mdp, mdp.reward, horizon=3, gamma=1.0)
    np.testing.assert_allclose(q[0], [1.0, 2.0, -7.0])
    assert mdp.cost[0, 2, 0] == 1.0  # counted as a hazard


def bandit(budget: float | None, rewards=(1.0, 0.5, 0.8), hazard=(0.5, 0.0, 0.05)):  # type: ignore[no-untyped-def]
    """A one-step constrained bandit: arm a pays rewards[a] and ends in a hazard with probability hazard[a]."""
    shape = (1, len(rewards), 1)
    mdp = TabularMDP(
        next_state=np.full(shape, -1), prob=np.ones(shape), reward=np.asarray(rewards, float).reshape(shape),
        cost=np.asarray(hazard, float).reshape(shape), termination=np.ones(shape), start=np.ones(1),
    )  # fmt: skip
    return plan_with_budget(mdp, mdp.reward, lambda r: value_iteration(mdp, r, 1, 1.0), 1, budget)


@pytest.mark.parametrize(("budget", "arm", "hazard"), [(None, 0, 0.5), (0.6, 0, 0.5), (0.1, 2, 0.05), (0.01, 1, 0.0)])
def test_lagrangian_respects_the_hazard_budget_on_a_constrained_bandit(
    budget: float | None, arm: int, hazard: float
) -> None:
    res = bandit(budget)
    assert int(res.policy[0].argmax()) == arm
    assert res.expected_hazard == pytest.approx(hazard)
    assert res.feasible
    if budget is not None:
        assert res.expected_hazard <= budget
    assert (res.multiplier > 0) == (budget is not None and budget < 0.5)


def test_lagrangian_reports_an_infeasible_budget_with_the_safest_arm() -> None:
    res = bandit(0.01, rewards=(1.0, 0.5), hazard=(0.5, 0.2))
    assert not res.feasible
    assert int(res.policy[0].argmax()) == 1 and res.expected_hazard == pytest.approx(0.2)


@pytest.fixture(scope="module")
def grid_logs_and_model():  # type: ignore[no-untyped-def]
    from guardrl.data import collect
    from guardrl.envs import build_tables, named_layout
    from guardrl.train.world_model_fit import fit_world_model

    tables = build_tables(named_layout("default"))
    ds = collect(tables, "safe", 150, 7)
    model = fit_world_model(ds, WorldModelConfig(n_members=2, steps=150, batch_size=128))
    return tables, ds, model


def test_morel_halts_on_an_unseen_pair(grid_logs_and_model) -> None:  # type: ignore[no-untyped-def]
    tables, ds, model = grid_logs_and_model
    audit = AuditConfig()
    policy = train_model_planner(ds, MOReLConfig(halt_penalty=500.0), audit, model, None, "morel")
    rows = policy.index.exact
    assert rows is not None
    counts = np.zeros((len(rows), ds.n_actions), dtype=np.int64)
    np.add.at(counts, (policy.index(ds.observations), ds.actions), 1)
    unseen = counts == 0
    assert unseen.any() and policy.info["unknown_pairs"] >= int(unseen.sum())
    # an unseen pair's value is the halt: -500 at once, nothing after
    np.testing.assert_allclose(policy.scores[unseen], -500.0)
    # and where some action is known (logged >= audit.k times), the plan never takes an unknown one
    taken = policy.scores.argmax(axis=1)
    unknown = counts < audit.k
    has_known = (~unknown).any(axis=1)
    assert has_known.sum() > 50
    assert not unknown[np.arange(len(rows)), taken][has_known].any()


def test_mopo_penalty_lowers_values(grid_logs_and_model) -> None:  # type: ignore[no-untyped-def]
    _, ds, model = grid_logs_and_model
    plain = train_model_planner(ds, MOPOConfig(penalty=0.0, hazard_budget=False), AuditConfig(), model, None, "m")
    penalized = train_model_planner(ds, MOPOConfig(penalty=1.0, hazard_budget=False), AuditConfig(), model, None, "m")
    assert (penalized.scores <= plain.scores + 1e-9).all()
    assert penalized.scores.mean() < plain.scores.mean() - 1.0


def test_planners_refuse_too_many_states(grid_logs_and_model) -> None:  # type: ignore[no-untyped-def]
    _, ds, model = grid_logs_and_model
    with pytest.raises(TabularError, match="max_states"):
        train_model_planner(ds, MOReLConfig(max_states=10), AuditConfig(), model, None, "morel")
    with pytest.raises(TabularError, match="spibb.max_states"):
        train_spibb(ds, SPIBBConfig(max_states=10), AuditConfig(), None)


def test_binned_policy_module_matches_numpy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import torch

    rng = np.random.default_rng(0)
    obs = rng.normal(size=(3000, 2)).astype(np.float32)
    index = StateIndex.fit(obs, AuditConfig(max_exact_states=10, n_bins=4))
    assert index.exact is None
    scores = rng.normal(size=(index.n_states, 3))
    policy = TabularPolicy(index, scores, "q")
    test = rng.normal(size=(500, 2)).astype(np.float32)
    module = policy.module(greedy=True)
    with torch.no_grad():
        actions = module(torch.as_tensor(test)).numpy()
    np.testing.assert_array_equal(actions, policy.predict(test))


def test_exact_policy_export_round_trip(tmp_path, grid_logs_and_model) -> None:  # type: ignore[no-untyped-def]
    from guardrl.train import OnnxPolicy, ScoresModel, TorchScriptPolicy, export_policy, export_scores, train_all

    tables, ds, model = grid_logs_and_model
    results = train_all(
        ds, TrainConfig(learners=("spibb", "morel")), show_progress=False, world_model=model, hazard_budget=0.01
    )
    cells = np.stack(np.meshgrid(np.arange(15), np.arange(15)), -1).reshape(-1, 2).astype(np.float32)
    for name, res in results.items():
        files = export_policy(res.algo, tmp_path, name)
        scores_path, kind = export_scores(res.algo, tmp_path, name)
        expected = res.algo.predict(cells)
        np.testing.assert_array_equal(TorchScriptPolicy(files["torchscript"]).greedy(cells), expected)
        np.testing.assert_array_equal(OnnxPolicy(files["onnx"]).greedy(cells), expected)
        assert kind == ("logprob" if name == "spibb" else "q")
        np.testing.assert_array_equal(ScoresModel(scores_path, kind)(cells).argmax(axis=1), expected)
        info = res.algo.info
        assert info["budget_met"] == (info["model_hazard"] <= 0.01)
        longest = int(np.diff(np.append(ds.episode_starts, len(ds))).max())
        assert info["n_states"] == len(res.algo.scores) and info["horizon"] == longest
