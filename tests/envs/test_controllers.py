import numpy as np
import pytest

from guardrl.envs.controllers import minigrid_lava_controller, toy_text_controller, toy_text_values
from guardrl.envs.gym_env import GymSimulator, GymSpec, SampledBehaviour


def test_toy_text_values_solve_cliffwalking_exactly():
    sim = GymSimulator(GymSpec("CliffWalking-v0", max_episode_steps=100, cost_rule="reward <= -100"))
    q = toy_text_values(sim.envs(1)[0], gamma=1.0)
    # the shortest path from the start (row 3, col 0) runs along the cliff: 13 steps of -1
    assert q[36].max() == pytest.approx(-13.0)
    eps = sim.simulate(SampledBehaviour(toy_text_controller(epsilon=0.0, gamma=1.0), sim), 20, np.random.default_rng(0))
    np.testing.assert_array_equal(eps.returns, -13.0)
    assert not eps.hazard.any()


def test_epsilon_spreads_probability_evenly():
    sim = GymSimulator(GymSpec("FrozenLake-v1", {"is_slippery": True}))
    fn = toy_text_controller(epsilon=0.4)
    probs = fn(np.eye(16, dtype=np.float32), sim.envs(1))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert probs.min() >= 0.1 - 1e-12 and probs.max() <= 0.7 + 1e-12
    with pytest.raises(ValueError, match="epsilon must lie in"):
        toy_text_controller(epsilon=1.5)


def test_minigrid_controller_crosses_the_gap_without_lava():
    pytest.importorskip("minigrid")
    spec = GymSpec(
        "MiniGrid-LavaGapS7-v0", max_episode_steps=196, wrappers=("minigrid.wrappers:ImgObsWrapper",),
        imports=("minigrid",), cost_rule="terminated_without_success", success_rule="reward > 0",
    )  # fmt: skip
    sim = GymSimulator(spec)
    assert (sim.n_actions, sim.obs_dim) == (7, 147)
    eps = sim.simulate(SampledBehaviour(minigrid_lava_controller(epsilon=0.0), sim), 30, np.random.default_rng(0))
    assert eps.goal.all() and not eps.hazard.any()
    assert eps.lengths.max() <= 12  # shortest paths on a 5x5 interior, turns included
