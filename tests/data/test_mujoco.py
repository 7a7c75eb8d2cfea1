"""D4RL-style MuJoCo datasets: whole episodes, made the same from the same seed, each kind from its actors."""

import numpy as np
import pytest

from guardrl.data.mujoco import collect_mujoco
from guardrl.envs.mujoco import MujocoError


def test_datasets_are_whole_episodes_made_the_same_from_the_same_seed(mujoco_actors):
    ds = collect_mujoco("hopper", "medium-replay", 300, seed=4, actors=mujoco_actors)
    again = collect_mujoco("hopper", "medium-replay", 300, seed=4, actors=mujoco_actors)
    other = collect_mujoco("hopper", "medium-replay", 300, seed=5, actors=mujoco_actors)
    np.testing.assert_array_equal(ds.observations, again.observations)
    np.testing.assert_array_equal(ds.actions, again.actions)
    assert not np.array_equal(ds.observations[:50], other.observations[:50])
    # medium-replay: the checkpoints before medium, here only the first
    assert ds.provenance["actors"] == ["step_0.npz"] and ds.provenance["kind"] == "medium-replay"
    assert len(ds) >= 300 and ds.n_actions == 0 and ds.action_bounds == ((-1.0,) * 3, (1.0,) * 3)
    ends = ds.terminations | ds.truncations
    last = np.r_[ds.episode_ids[1:] != ds.episode_ids[:-1], True]
    np.testing.assert_array_equal(ends, last)  # exactly one end per episode, at its last step
    np.testing.assert_array_equal(ds.next_observations[:-1][~last[:-1]], ds.observations[1:][~last[:-1]])
    assert (ds.propensities > 0).all() and np.isfinite(ds.propensities).all()
    assert np.abs(ds.actions).max() < 1.0
    np.testing.assert_array_equal(ds.costs, ds.terminations.astype(float))  # a fall is the hazard


def test_kinds_pick_their_actors_and_random_needs_none(mujoco_actors):
    mixed = collect_mujoco("hopper", "medium-expert", 200, seed=0, actors=mujoco_actors)
    assert mixed.provenance["actors"] == ["step_1.npz", "step_3.npz"]
    rand = collect_mujoco("hopper", "random", 100, seed=0)
    assert rand.provenance["actors"] == [None]
    np.testing.assert_allclose(rand.propensities, 1 / 8)  # uniform on [-1, 1]^3
    with pytest.raises(MujocoError, match="unknown dataset kind 'replay'"):
        collect_mujoco("hopper", "replay", 100, seed=0, actors=mujoco_actors)


def test_the_command_writes_a_dataset_and_refuses_to_overwrite_it(mujoco_actors, tmp_path):
    from typer.testing import CliRunner

    from guardrl.cli import app
    from guardrl.data import load_dataset

    runner = CliRunner()
    args = ["mujoco-data", "hopper", "medium", "--steps", "200", "--seed", "3", "--out", str(tmp_path / "m"),
            "--actors", str(mujoco_actors.folder)]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    ds = load_dataset(tmp_path / "m")
    assert len(ds) >= 200 and ds.provenance["actors"] == ["step_1.npz"] and ds.provenance["seed"] == 3
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "already exists" in again.output
    assert load_dataset(tmp_path / "m").content_hash() == ds.content_hash()  # untouched
