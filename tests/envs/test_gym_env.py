import gymnasium as gym
import numpy as np
import pytest

from guardrl.envs.gym_env import (
    GymEnvError,
    GymSimulator,
    GymSpec,
    ObsEncoder,
    Rule,
    SampledBehaviour,
    load_callable,
    parse_rule,
    rule_events,
    uniform_policy,
)

FROZEN = GymSpec(
    "FrozenLake-v1", {"is_slippery": True}, cost_rule="terminated_without_success", success_rule="reward > 0"
)


class CostEnv(gym.Env):
    """Two steps; the first reports info["cost"] = 0.5, the second is_success. Reward is always -200."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2, 3), dtype=np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros((2, 3), dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        info = {"cost": 0.5} if self.t == 1 else {"is_success": True}
        return np.full((2, 3), self.t, dtype=np.float32), -200.0, self.t == 2, False, info


gym.register("GuardrlTestCost-v0", entry_point=CostEnv, max_episode_steps=10)


@pytest.mark.parametrize(
    ("text", "what", "rule"),
    [
        ("reward <= -100", "cost", Rule("reward", "<=", -100.0)),
        ("reward>0", "success", Rule("reward", ">", 0.0)),
        ("reward == 1.5e1", "success", Rule("reward", "==", 15.0)),
        ("terminated_without_success", "cost", Rule("terminated_without_success")),
        ("terminated", "success", Rule("terminated")),
        ("info", "cost", Rule("info")),
    ],
)
def test_parse_rule_accepts_the_documented_rules(text, what, rule):
    assert parse_rule(text, what) == rule


@pytest.mark.parametrize(
    ("text", "what"), [("reward <= lots", "cost"), ("terminated", "cost"), ("cost > 0", "success"), ("", "cost")]
)
def test_parse_rule_rejects_others_naming_the_field(text, what):
    with pytest.raises(GymEnvError, match=f"env.{what}_rule"):
        parse_rule(text, what)


def test_encoder_one_hot_box_and_unsupported_space():
    onehot = ObsEncoder(gym.spaces.Discrete(5, start=2), "x")
    np.testing.assert_array_equal(onehot([2, 6]), np.eye(5, dtype=np.float32)[[0, 4]])
    np.testing.assert_array_equal(onehot.indices_to_onehot(np.array([[3.0]]), "f"), np.eye(5)[[1]])
    with pytest.raises(GymEnvError, match=r"f: row 2: observation 7.0 is not a state of Discrete\(5\)"):
        onehot.indices_to_onehot(np.array([[3.0], [7.0]]), "f")
    box = ObsEncoder(gym.spaces.Box(0, 1, (2, 3)), "x")
    assert box.dim == 6 and box([np.ones((2, 3))]).shape == (1, 6)
    with pytest.raises(GymEnvError, match="is not Box or Discrete; add a wrapper"):
        ObsEncoder(gym.spaces.Dict({"a": gym.spaces.Discrete(2)}), "MiniGrid-X")


def test_frozenlake_episodes_end_once_with_holes_as_cost():
    sim = GymSimulator(FROZEN)
    assert (sim.n_actions, sim.obs_dim, sim.max_steps) == (4, 16, 100)
    eps = sim.simulate(uniform_policy(4), 200, np.random.default_rng(0))
    v = eps.valid
    ends = (eps.terminated | eps.truncated) & v
    assert (ends.sum(axis=0) == 1).all()  # every episode ends exactly once
    assert not (eps.terminated & eps.truncated).any()
    last_reward = np.where(ends, eps.rewards, 0).sum(axis=0)
    # FrozenLake: an episode terminates in a hole (cost, reward 0) or at the goal (success, reward 1)
    term = (eps.terminated & v).any(axis=0)
    np.testing.assert_array_equal(eps.hazard, term & (last_reward == 0))
    np.testing.assert_array_equal(eps.goal, last_reward == 1)
    assert 0.9 < eps.hazard.mean() < 1.0  # a random walker falls in nearly always
    assert np.allclose(eps.obs[v].sum(axis=1), 1.0)  # one-hot
    again = sim.simulate(uniform_policy(4), 200, np.random.default_rng(0))
    np.testing.assert_array_equal(again.actions, eps.actions)
    np.testing.assert_array_equal(again.rewards, eps.rewards)


def test_cliffwalking_needs_a_step_limit_and_counts_the_cliff():
    with pytest.raises(GymEnvError, match="set env.max_episode_steps"):
        GymSimulator(GymSpec("CliffWalking-v0"))
    sim = GymSimulator(GymSpec("CliffWalking-v0", max_episode_steps=30, cost_rule="reward <= -100"))
    eps = sim.simulate(uniform_policy(4), 50, np.random.default_rng(1))
    assert eps.lengths.max() == 30 and eps.truncated.any()
    np.testing.assert_array_equal(eps.costs[eps.valid], (eps.rewards[eps.valid] <= -100).astype(float))
    assert eps.hazard.mean() > 0.3


def test_info_cost_and_is_success_take_precedence_over_rules():
    sim = GymSimulator(GymSpec("GuardrlTestCost-v0", cost_rule="reward <= -100", success_rule="reward > 0"))
    assert sim.obs_dim == 6
    eps = sim.simulate(uniform_policy(2), 3, np.random.default_rng(0))
    # info["cost"] wins where present; the rule covers steps without it
    np.testing.assert_array_equal(eps.costs[:, 0], [0.5, 1.0])
    np.testing.assert_array_equal(eps.success[:, 0], [False, True])
    np.testing.assert_array_equal(eps.next_obs[1, 0], np.full(6, 2.0))


def test_sampled_behaviour_records_the_probability_of_each_action_taken():
    sim = GymSimulator(FROZEN)
    probs = np.array([0.1, 0.2, 0.3, 0.4])
    policy = SampledBehaviour(lambda obs, envs: np.tile(probs, (len(obs), 1)), sim)
    eps = sim.simulate(policy, 300, np.random.default_rng(2))
    taken = np.stack(policy.propensities)
    np.testing.assert_allclose(taken[eps.valid], probs[eps.actions[eps.valid]])
    freq = np.bincount(eps.actions[eps.valid], minlength=4) / eps.valid.sum()
    np.testing.assert_allclose(freq, probs, atol=0.03)
    bad = SampledBehaviour(lambda obs, envs: np.ones((len(obs), 4)), sim)
    with pytest.raises(GymEnvError, match="summing to 1"):
        sim.simulate(bad, 2, np.random.default_rng(0))


def test_load_callable_errors_name_the_field():
    assert load_callable("guardrl.envs.gym_env:parse_rule", "f") is parse_rule
    with pytest.raises(GymEnvError, match="f: 'nocolon' must look like"):
        load_callable("nocolon", "f")
    with pytest.raises(GymEnvError, match="f: cannot import 'no_such_module_xyz'"):
        load_callable("no_such_module_xyz:f", "f")
    with pytest.raises(GymEnvError, match="has no attribute 'nope'"):
        load_callable("guardrl.envs.gym_env:nope", "f")


def test_unknown_id_and_bad_kwargs_are_clear_errors():
    with pytest.raises(GymEnvError, match="env.gym_id: cannot make 'NoSuchEnv-v9'"):
        GymSimulator(GymSpec("NoSuchEnv-v9"))
    with pytest.raises(GymEnvError, match="env.gym_kwargs"):
        GymSimulator(GymSpec("FrozenLake-v1", {"no_such_option": 1}))


def test_rule_events_on_logged_rewards_and_terminations():
    rewards = np.array([0.0, 0.0, 1.0, 0.0, -100.0])
    terminated = np.array([False, True, True, False, False])
    cost, success = rule_events(Rule("terminated_without_success"), Rule("reward", ">", 0.0), rewards, terminated)
    np.testing.assert_array_equal(success, [False, False, True, False, False])
    np.testing.assert_array_equal(cost, [0, 1, 0, 0, 0])
    cost, success = rule_events(Rule("reward", "<=", -100.0), Rule("terminated_without_cost"), rewards, terminated)
    np.testing.assert_array_equal(cost, [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(success, [False, True, True, False, False])
    # a cost that needs success from info cannot be derived from logs
    assert rule_events(Rule("terminated_without_success"), Rule("info"), rewards, terminated) == (None, None)
