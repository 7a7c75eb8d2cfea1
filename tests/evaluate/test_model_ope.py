"""Model-based OPE's interval: the members' spread plus each member's Monte Carlo error."""

import numpy as np
import pytest

from guardrl.evaluate.model_ope import member_interval


def test_interval_spans_the_members_and_their_sampling_error():
    rng = np.random.default_rng(0)
    values = np.stack([rng.normal(10.0, 1.0, 400), rng.normal(12.0, 1.0, 400)])
    est = member_interval(values, 0.95)
    assert abs(est.mean - 11.0) < 0.2
    assert est.low < values[0].mean() - 0.05 and est.high > values[1].mean() + 0.05


def test_no_simulated_event_still_has_a_positive_upper_bound():
    zeros = np.zeros((3, 1000))
    est = member_interval(zeros, 0.95, binary=True)
    assert est.mean == 0.0 and abs(est.low) < 1e-12
    # Wilson's upper bound for 0 of 1000 at 95%: z^2 / (n + z^2) = 0.38%
    assert abs(est.high - 1.96**2 / (1000 + 1.96**2)) < 1e-4
    normal = member_interval(zeros, 0.95, binary=False)
    assert normal.high == 0.0  # what a normal interval would claim


class _RecordingModel:
    """A stand-in world model: one step, reward = the action taken, every action recorded."""

    def __init__(self):
        self.actions = None

    def rollout(self, policy, starts, rng, unknown=None, horizon=None, logged=None, unseen=None):
        self.logged = logged
        from guardrl.train.world_model import ModelRollouts

        actions = np.asarray(policy(np.asarray(starts, dtype=np.float32)))
        self.actions = actions
        shape = (2, len(starts))
        returns = np.broadcast_to(actions.astype(float), shape)
        return ModelRollouts(returns=returns, costs=np.zeros(shape), lengths=np.ones(shape, dtype=np.int64),
                             hit_unknown=np.zeros(shape, dtype=bool))  # fmt: skip


def test_a_stochastic_target_is_rolled_out_with_its_own_draws():
    from guardrl.data import Dataset
    from guardrl.evaluate.model_ope import model_estimates
    from guardrl.evaluate.ope_config import OPEConfig
    from guardrl.evaluate.target import TargetPolicy

    n = 20
    ds = Dataset(
        episode_ids=np.arange(n), steps=np.zeros(n, dtype=np.int64), observations=np.zeros((n, 1), np.float32),
        actions=np.zeros(n, dtype=np.int64), rewards=np.zeros(n), costs=np.zeros(n), terminations=np.ones(n, bool),
        truncations=np.zeros(n, bool), successes=np.zeros(n, bool), propensities=np.full(n, 0.5),
        next_observations=np.zeros((n, 1), np.float32), n_actions=2,
    )  # fmt: skip
    cfg = OPEConfig(model_episodes=4000)
    coin = TargetPolicy("coin", lambda o: np.zeros(len(o), np.int64), lambda o: np.full((len(o), 2), 0.5))
    model = _RecordingModel()
    out = model_estimates(model, ds, coin, cfg)
    assert abs(model.actions.mean() - 0.5) < 0.03  # both actions drawn, not the greedy one
    assert abs(out["return"]["model"].mean - 0.5) < 0.03
    greedy = TargetPolicy("zero", lambda o: np.zeros(len(o), np.int64))
    model_estimates(model, ds, greedy, cfg)
    assert model.actions.max() == 0
    assert model.logged is None and out["model"]["dynamics"] == "the networks at every step"


def test_the_logs_weight_against_the_networks_is_checked_and_reported():
    import pytest

    from guardrl.evaluate.ope_config import OPEConfig

    with pytest.raises(ValueError, match="ope.model_logged_prior must be >= 0"):
        OPEConfig(model_logged_prior=-1.0)
    assert OPEConfig(model_logged_prior=None).model_logged_prior is None


def test_model_pessimistic_trusts_an_unlogged_pair_only_where_the_model_has_seen_every_outcome(tables):
    from guardrl.data import collect
    from guardrl.evaluate.model_ope import untrusted_pairs
    from guardrl.train.config import WorldModelConfig
    from guardrl.train.world_model_fit import fit_world_model

    ds = collect(tables, "safe", 120, 5)
    model = fit_world_model(ds, WorldModelConfig(n_members=3, steps=600, hidden_units=(64, 64)))
    seen = {tuple(o) for o in np.concatenate([ds.observations, ds.next_observations]).tolist()}

    def neighbours_seen(x, y):
        cells = [(min(max(x + dx, 0), 14), min(max(y + dy, 0), 14)) for dx, dy in ((0, 1), (1, 0), (0, -1), (-1, 0))]
        return all((float(a), float(b)) in seen for a, b in cells)

    inside = next(c for c in sorted(seen) if neighbours_seen(int(c[0]), int(c[1])))
    edge = next(c for c in sorted(seen) if not neighbours_seen(int(c[0]), int(c[1])))
    obs = np.array([inside, edge], dtype=np.float32)
    actions = np.array([0, 0])
    everything = lambda o, a: np.ones(len(o), dtype=bool)  # noqa: E731 (every pair unlogged)
    lenient, _, rule = untrusted_pairs(model, ds, everything, 1.0, exact=True)
    # slips reach every neighbour: the cell whose neighbours were all logged is vouched for, the other is not
    assert lenient(obs, actions).tolist() == [False, True]
    assert "members agree" in rule
    strict, _, _ = untrusted_pairs(model, ds, everything, 0.0, exact=True)  # members never agree exactly
    assert strict(obs, actions).tolist() == [True, True]
    logged = lambda o, a: np.zeros(len(o), dtype=bool)  # noqa: E731 (every pair logged)
    assert untrusted_pairs(model, ds, logged, 1.0, exact=True)[0](obs, actions).tolist() == [False, False]
    for off in ({"max_disagreement": None, "exact": True}, {"max_disagreement": 1.0, "exact": False}):
        halt, _, text = untrusted_pairs(model, ds, everything, **off)
        assert halt is everything and text == "every (state, action) pair the logs never contain"


def test_outcome_pessimism_charges_the_steps_onto_what_the_logs_never_show(tables):
    """``model_pessimism: outcomes``: an agreed unlogged pair is trusted, and the pessimistic bound counts the
    episodes that step onto an observation the logs never show, whichever pair took them there."""
    from guardrl.data import collect
    from guardrl.evaluate.model_ope import model_estimates, untrusted_pairs
    from guardrl.evaluate.ope_config import OPEConfig
    from guardrl.evaluate.target import TargetPolicy
    from guardrl.train.config import WorldModelConfig
    from guardrl.train.world_model_fit import fit_world_model

    ds = collect(tables, "safe", 120, 5)
    model = fit_world_model(ds, WorldModelConfig(n_members=3, steps=600, hidden_units=(64, 64)))
    seen = {tuple(o) for o in np.concatenate([ds.observations, ds.next_observations]).tolist()}
    assert {(12.0, 0.0), (13.0, 0.0), (14.0, 0.0)}.isdisjoint(seen)  # the safe controller never went there
    everything = lambda o, a: np.ones(len(o), dtype=bool)  # noqa: E731 (every pair unlogged)
    trusted, unseen, rule = untrusted_pairs(model, ds, everything, 1.0, exact=True, pessimism="outcomes")
    obs = np.array([[0.0, 0.0], [14.0, 0.0]], dtype=np.float32)
    assert trusted(obs, np.array([0, 0])).tolist() == [False, False]  # members agree within 1.0 on every pair
    assert unseen is not None and unseen(obs).tolist() == [False, True]
    assert "observation the logs never show" in rule
    cfg = OPEConfig(model_episodes=300)
    for action, share in ((1, 1.0), (3, 0.0)):  # along the top row into those cells; against the wall at the start
        target = TargetPolicy(str(action), lambda o, a=action: np.full(len(o), a, dtype=np.int64))
        out = model_estimates(model, ds, target, cfg, trusted, horizon=80, unseen=unseen)
        assert out["model"]["unlogged_episode_share"] == pytest.approx(share, abs=0.02)
        assert out["cost"]["model_pessimistic"].mean >= max(share - 0.02, out["cost"]["model"].mean)
        without = model_estimates(model, ds, target, cfg, trusted, horizon=80)  # no check of the outcomes
        assert without["model"]["unlogged_episode_share"] == 0.0
