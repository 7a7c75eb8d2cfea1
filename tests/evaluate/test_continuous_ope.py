import numpy as np
import pytest

from guardrl.data.collect import collect_nav
from guardrl.envs.safenav import NavLayout, SquashedGaussian, simulate_nav, steering_mean
from guardrl.errors import ConfigError
from guardrl.evaluate.continuous_ope import continuous_is, smoothed_log_density
from guardrl.evaluate.ope_config import OPEConfig


@pytest.fixture(scope="module")
def safe_logs():
    return collect_nav(NavLayout(), "safe", 400, seed=11)  # the steering controller, squashed-Gaussian std 0.4


def test_the_smoothed_density_integrates_to_one_on_any_box():
    bounds = ((0.0, -1.0), (2.0, 3.0))  # area 8
    edges_x, edges_y = np.linspace(0.0, 2.0, 801), np.linspace(-1.0, 3.0, 1601)
    xs, ys = (edges_x[1:] + edges_x[:-1]) / 2, (edges_y[1:] + edges_y[:-1]) / 2
    grid = np.stack(np.meshgrid(xs, ys, indexing="ij"), axis=-1).reshape(-1, 2)
    centre = np.broadcast_to([1.5, 0.0], grid.shape)
    density = np.exp(smoothed_log_density(centre, grid, bounds, std=0.5))
    assert density.sum() * (2.0 / 800) * (4.0 / 1600) == pytest.approx(1.0, abs=2e-3)


def test_the_behaviour_itself_gets_weight_one_and_the_logged_mean(safe_logs):
    out = continuous_is(safe_logs, steering_mean(NavLayout()), OPEConfig(), std=0.4, name="steering")
    # the logged densities were computed before the actions were stored as float32: equal to 1e-6
    assert out["weights"]["mean_ratio"] == pytest.approx(1.0, abs=1e-6)
    assert out["weights"]["ess_episodes"] == pytest.approx(400, rel=1e-6)
    logged = safe_logs.episode_returns().mean()
    assert out["estimates"]["return"]["pdis"]["mean"] == pytest.approx(logged, rel=1e-5)
    assert out["estimates"]["cost"]["wis"]["mean"] == pytest.approx(safe_logs.costs.sum() / 400, abs=1e-6)


def test_a_less_noisy_target_is_estimated_within_its_interval_of_the_simulated_truth(safe_logs):
    mean = steering_mean(NavLayout())
    out = continuous_is(safe_logs, mean, OPEConfig(), std=0.3, name="steering(0.3)")
    episodes, _ = simulate_nav(NavLayout(), SquashedGaussian(mean, 0.3), 4000, np.random.default_rng(5))
    truth = float(episodes.rewards.sum(axis=0).mean())
    wis = out["estimates"]["return"]["wis"]
    assert wis["low"] <= truth <= wis["high"], (wis, truth)
    assert 2 < out["weights"]["ess_episodes"] < 100  # trajectory weights over ~30 steps: heavy, not all 1


def test_refusals_name_what_is_missing(safe_logs, tables):
    from dataclasses import replace

    from guardrl.data import collect

    with pytest.raises(ConfigError, match="needs logs with continuous actions"):
        continuous_is(collect(tables, "safe", 5, seed=0), lambda o: np.zeros((len(o), 2)), OPEConfig())
    props = safe_logs.propensities.copy()
    props[[3, 9]] = np.nan
    with pytest.raises(ConfigError, match="2 transitions have no behaviour density"):
        continuous_is(replace(safe_logs, propensities=props), steering_mean(NavLayout()), OPEConfig())
    with pytest.raises(ConfigError, match="smoothing std must be > 0"):
        continuous_is(safe_logs, steering_mean(NavLayout()), OPEConfig(), std=0.0)


def test_continuous_fqe_values_the_logged_controller_close_to_its_simulated_return(safe_logs):
    from dataclasses import replace

    from guardrl.evaluate.continuous_ope import continuous_fqe

    mean = steering_mean(NavLayout())
    cfg = replace(OPEConfig(), fqe_steps=3000, cost=False)
    out = continuous_fqe(safe_logs, lambda obs: mean(obs.astype(np.float64)), cfg, name="steering")
    episodes, _ = simulate_nav(NavLayout(), lambda pos, steps, rng: mean(pos), 4000, np.random.default_rng(5))
    truth = float(episodes.rewards.sum(axis=0).mean())  # 19.55: the deterministic controller
    fqe = out["estimates"]["return"]["fqe"]
    assert abs(fqe["mean"] - truth) < 1.5, (fqe, truth)  # measured: 19.76
    assert fqe["low"] <= fqe["mean"] <= fqe["high"] and "cost" not in out["estimates"]
    with pytest.raises(ValueError, match=r"returned actions of shape \(\d+, 3\), expected \(\d+, 2\)"):
        continuous_fqe(safe_logs, lambda obs: np.zeros((len(obs), 3)), cfg)
