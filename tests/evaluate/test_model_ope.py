"""Model-based OPE's interval: the members' spread plus each member's Monte Carlo error."""

import numpy as np

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

    def rollout(self, policy, starts, rng, unknown=None):
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
