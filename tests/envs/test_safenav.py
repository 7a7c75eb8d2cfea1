import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from guardrl.envs.safenav import (
    NAV_REGIMES,
    NavLayout,
    SafeNav,
    SquashedGaussian,
    make_safenav,
    nav_step,
    simulate_nav,
    solve_nav,
    steering_mean,
)

QUIET = NavLayout(action_noise=0.0, start_jitter=0.0)


def test_the_env_passes_gymnasiums_checker_and_is_registered():
    check_env(SafeNav(), skip_render_check=True)
    env = gym.make("SafeNav-v0")
    assert env.spec is not None and env.spec.max_episode_steps == 100
    assert env.action_space.shape == (2,) and env.observation_space.shape == (2,)


def test_landing_in_a_hazard_costs_one_and_ends_the_episode_by_hand():
    # centre hazard (5, 5) radius 1.5; speed 0.5 per step at action 1; no noise
    pos = np.array([[3.4, 5.0], [3.0, 5.0], [5.0, 2.0]])
    out = nav_step(QUIET, pos, np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), np.zeros((3, 2)))
    np.testing.assert_allclose(out.position, [[3.9, 5.0], [3.5, 5.0], [5.0, 2.5]])
    # 3.9 is 1.1 from the centre: inside; 3.5 is exactly on the edge: outside (strict); (5, 2.5) is 2.5 away
    assert out.cost.tolist() == [1.0, 0.0, 0.0]
    assert out.reward.tolist() == [-100.0, -1.0, -1.0]
    assert out.terminated.tolist() == [True, False, False] and not out.success.any()


def test_noise_is_added_then_clipped_to_the_box_and_walls_stop_the_mass():
    lay = NavLayout(action_noise=0.5)
    out = nav_step(lay, np.array([[0.1, 9.9]]), np.array([[-0.8, 0.6]]), np.array([[1.0, 2.0]]))
    # executed: (-0.8 + 0.5, 0.6 + 1.0 -> 1.0) = (-0.3, 1.0); moved by 0.5 times it: (0.1 - 0.15, 9.9 + 0.5),
    # and the walls keep it at (0, 10)
    np.testing.assert_allclose(out.position, [[0.0, 10.0]])
    out = nav_step(lay, np.array([[5.0, 9.0]]), np.array([[0.2, 0.2]]), np.array([[-0.2, 0.4]]))
    np.testing.assert_allclose(out.position, [[5.05, 9.2]])  # executed (0.1, 0.4)


def test_the_goal_ends_the_episode_with_success():
    out = nav_step(QUIET, np.array([[8.0, 8.5]]), np.array([[1.0, 0.0]]), np.zeros((1, 2)))
    assert out.success.tolist() == [True] and out.reward.tolist() == [50.0] and out.cost.tolist() == [0.0]


def test_seeding_gives_the_same_episode_and_the_vectorized_twin_matches_the_env_step_for_step():
    def episode(seed: int) -> list[tuple]:
        env = make_safenav()
        obs, _ = env.reset(seed=seed)
        steps = [tuple(obs)]
        for _ in range(100):
            obs, reward, terminated, truncated, info = env.step(np.array([0.7, 0.2], dtype=np.float32))
            steps.append((*obs, reward, info["cost"]))
            if terminated or truncated:
                break
        return steps

    assert episode(3) == episode(3) and episode(3) != episode(4)
    # simulate_nav draws the start, then one noise vector per step, as the env's np_random does
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(3)))
    eps, _ = simulate_nav(NavLayout(), lambda pos, steps, rng: np.tile([0.7, 0.2], (len(pos), 1)), 1, rng)
    gym_steps = episode(3)
    n = int(eps.lengths[0])
    assert n == len(gym_steps) - 1
    np.testing.assert_allclose(eps.obs[0, 0], gym_steps[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(eps.next_obs[:n, 0], [s[:2] for s in gym_steps[1:]], rtol=0, atol=1e-6)
    np.testing.assert_allclose(eps.rewards[:n, 0], [s[2] for s in gym_steps[1:]])


def test_the_squashed_gaussian_density_integrates_to_one_and_uniform_is_a_quarter():
    controller = SquashedGaussian(steering_mean(NavLayout()), std=0.4)
    edges = np.linspace(-1, 1, 801)
    mid = (edges[1:] + edges[:-1]) / 2
    a = np.stack(np.meshgrid(mid, mid, indexing="ij"), axis=-1).reshape(-1, 2)
    pos = np.tile([[2.0, 3.0]], (len(a), 1))
    mass = np.exp(controller.log_density(pos, a)).sum() * (2 / 800) ** 2
    assert mass == pytest.approx(1.0, abs=2e-3)
    uniform = SquashedGaussian(steering_mean(NavLayout()), std=np.inf)
    np.testing.assert_allclose(uniform.log_density(pos[:3], a[:3]), np.log(0.25))


def test_the_planner_finds_the_hand_computed_shortest_way_without_hazards_or_noise():
    # diagonal steps of (0.5, 0.5) from (1, 1): the goal disc (radius 0.75 round (9, 9)) is entered on step 15
    lay = NavLayout(action_noise=0.0, start_jitter=0.0, hazards=())
    eps, _ = simulate_nav(lay, solve_nav(lay, resolution=41), 1, np.random.default_rng(0))
    assert int(eps.lengths[0]) == 15 and float(eps.returns[0]) == -14.0 + 50.0


def test_the_planner_beats_the_scripted_controller_and_the_regimes_order_as_named():
    lay = NavLayout()
    plan = solve_nav(lay)
    assert plan.residual < 1e-6
    rng = np.random.default_rng(0)
    planner, _ = simulate_nav(lay, plan, 500, rng)
    results = {}
    for name in ("safe", "noisy"):
        ret = hazard = 0.0
        for component in NAV_REGIMES[name]:  # each share of the episodes logged by its controller
            eps, log_density = simulate_nav(lay, component.policy(lay), 500, np.random.default_rng(0))
            assert np.isfinite(log_density[eps.valid]).all()
            ret += component.fraction * eps.returns.mean()
            hazard += component.fraction * eps.hazard.mean()
        results[name] = (ret, hazard)
    assert planner.returns.mean() > results["safe"][0] > results["noisy"][0]
    assert results["safe"][1] < 0.03 < results["noisy"][1]
