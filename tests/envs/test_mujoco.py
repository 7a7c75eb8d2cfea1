"""MuJoCo tasks: the array actor's actions and densities, its loading, and D4RL-style datasets made from a seed."""

import numpy as np
import pytest

from guardrl.envs.mujoco import GaussianActor, MujocoError, actor_set, normalized_score
from tests.conftest import write_actor


def test_sampled_actions_stay_in_the_box_and_their_density_integrates_to_one(tmp_path):
    rng = np.random.default_rng(1)
    write_actor(tmp_path / "a.npz", rng, obs_dim=3, action_dim=1, hidden=(8,))
    actor = GaussianActor.load(tmp_path / "a.npz")
    obs = np.tile(rng.standard_normal((1, 3)), (200_000, 1))
    action, log_density = actor.sample(obs, np.random.default_rng(2))
    assert action.shape == (200_000, 1) and np.abs(action).max() < 1.0
    # the density of the squashed Gaussian, on a histogram of its own draws: both give the same mass per bin
    edges = np.linspace(-1, 1, 41)
    hist, _ = np.histogram(action[:, 0], bins=edges, density=True)
    centre = np.digitize(action[:, 0], edges) - 1
    mean_density = np.bincount(centre, weights=np.exp(log_density), minlength=40)[:40] / np.maximum(
        np.bincount(centre, minlength=40)[:40], 1
    )
    busy = hist > 0.2
    np.testing.assert_allclose(mean_density[busy], hist[busy], rtol=0.1)
    np.testing.assert_allclose(actor.mean_action(obs[:1]), np.tanh(actor._heads(obs[:1])[0]), rtol=1e-6)


def test_a_broken_actor_file_is_refused_by_name(tmp_path):
    np.savez(tmp_path / "bad.npz", w0=np.zeros((3, 4), np.float32))
    with pytest.raises(MujocoError, match="bad.npz: an actor needs arrays .*missing"):
        GaussianActor.load(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_text("not an archive")
    with pytest.raises(MujocoError, match="junk.npz: not a readable actor"):
        GaussianActor.load(tmp_path / "junk.npz")
    with pytest.raises(MujocoError, match="no actors for hopper"):
        actor_set("hopper", tmp_path)
    with pytest.raises(MujocoError, match="unknown MuJoCo task 'ant'"):
        actor_set("ant")


def test_medium_is_the_first_checkpoint_at_a_third_of_the_expert(mujoco_actors):
    assert mujoco_actors.expert == "step_3.npz" and mujoco_actors.medium == "step_1.npz"


def test_d4rl_normalized_scores():
    assert normalized_score("hopper", -20.272305) == pytest.approx(0.0)
    assert normalized_score("hopper", 3234.3) == pytest.approx(100.0)
    assert normalized_score("walker2d", 1.629008 + (4592.3 - 1.629008) / 2) == pytest.approx(50.0)


def test_mujoco_warnings_go_to_logging_not_to_a_file_in_the_working_directory(tmp_path, monkeypatch, caplog):
    mujoco = pytest.importorskip("mujoco")
    from guardrl.envs.mujoco import make_env

    monkeypatch.chdir(tmp_path)
    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(None)
    try:
        with caplog.at_level("DEBUG", logger="guardrl.envs.mujoco"):
            make_env("halfcheetah").close()  # gymnasium's HalfCheetah-v5 model uses the deprecated settotalmass
    finally:
        mujoco.set_mju_user_warning(previous)
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
    assert [r.levelname for r in caplog.records if "settotalmass" in r.getMessage()] == ["DEBUG"]


@pytest.mark.parametrize(
    ("task", "medium", "expert", "before_medium"),
    [
        ("hopper", "step_140000.npz", "step_190000.npz", 6),
        ("walker2d", "step_80000.npz", "step_160000.npz", 3),
        ("halfcheetah", "step_50000.npz", "step_180000.npz", 2),
    ],
)
def test_shipped_actors_fit_their_task_and_rank_medium_below_expert(task, medium, expert, before_medium):
    from guardrl.envs.mujoco import ACTION_DIMS, OBS_DIMS

    actors = actor_set(task)
    assert (actors.medium, actors.expert, actors.medium_index) == (medium, expert, before_medium)
    assert (
        actors.eval_returns[actors.medium_index]
        >= actors.eval_returns[-1] / 3
        > max(actors.eval_returns[: actors.medium_index], default=-np.inf)
    )
    for name in actors.files:
        actor = actors.actor(name)
        assert (actor.obs_dim, actor.action_dim) == (OBS_DIMS[task], ACTION_DIMS[task])
    obs = np.random.default_rng(0).standard_normal((4, OBS_DIMS[task]))
    action = actors.actor(expert).mean_action(obs)
    assert action.shape == (4, ACTION_DIMS[task]) and np.isfinite(action).all() and np.abs(action).max() <= 1
