import json

import numpy as np
import pytest

from guardrl.config import CollectConfig, RunConfig
from guardrl.envs import build_tables, default_layout
from guardrl.envs.mujoco import actor_set
from guardrl.evaluate import EvalConfig
from guardrl.evaluate.ope import OPEConfig
from guardrl.train import BCConfig, CQLConfig, TrainConfig


@pytest.fixture(scope="session")
def tables():
    return build_tables(default_layout())


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def tiny_config():
    """A run config small enough for tests: few episodes, few gradient steps."""
    return RunConfig(
        name="tiny",
        collect=CollectConfig(n_episodes=60, seed=3),
        train=TrainConfig(
            learners=("bc", "cql"),
            bc=BCConfig(n_steps=40, batch_size=32, stop="steps"),
            cql=CQLConfig(n_steps=40, batch_size=32),
            log_every=10,
            monitor_every=20,
        ),
        evaluate=EvalConfig(n_episodes=90, seeds=(101, 102, 103), n_bootstrap=200),
        ope=OPEConfig(fqe_steps=40, n_bootstrap=200),
    )


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_config):
    """One finished tiny SafeGrid run for the whole session (BC and CQL exported, report written).

    Tests read it; a test that changes a run works on its own copy (``shutil.copytree``)."""
    from guardrl.run import run

    run_dir, _ = run(tiny_config, tmp_path_factory.mktemp("runs"), show_progress=False)
    return run_dir


NAV_TINY = """
name: nav
env: safenav
collect: {regime: noisy, n_episodes: 60}
train: {learners: [bc, td3bc], continuous: {n_steps: 200, hidden_units: [32, 32]}}
evaluate: {n_episodes: 90}
ope: {fqe_steps: 100, n_bootstrap: 200}
audit: {min_transitions: 500, min_episodes: 20}
"""
"""A SafeNav run (continuous actions) small enough for tests."""


@pytest.fixture(scope="session")
def nav_run(tmp_path_factory):
    """One finished tiny SafeNav run for the whole session (BC and TD3+BC exported, report written)."""
    from guardrl.config import load_config
    from guardrl.run import run

    root = tmp_path_factory.mktemp("nav")
    (root / "nav.yaml").write_text(NAV_TINY)
    run_dir, _ = run(load_config(root / "nav.yaml"), root / "runs", show_progress=False)
    return run_dir


def write_actor(path, rng, obs_dim=11, action_dim=3, hidden=(16, 16), scale=0.3):
    """A random-weight squashed-Gaussian actor in the layout scripts/train_mujoco_actors.py writes."""
    arrays, width = {}, obs_dim
    for i, h in enumerate(hidden):
        arrays[f"w{i}"] = (rng.standard_normal((width, h)) * scale).astype(np.float32)
        arrays[f"b{i}"] = np.zeros(h, np.float32)
        width = h
    arrays["mu_w"] = (rng.standard_normal((width, action_dim)) * scale).astype(np.float32)
    arrays["mu_b"] = np.zeros(action_dim, np.float32)
    arrays["log_std_w"] = (rng.standard_normal((width, action_dim)) * 0.01).astype(np.float32)
    arrays["log_std_b"] = np.full(action_dim, -1.0, np.float32)
    np.savez(path, **arrays)


@pytest.fixture(scope="session")
def mujoco_actors(tmp_path_factory):
    """Four random-weight checkpoints with made-up evaluation returns: medium is the second (30 >= 90 / 3)."""
    folder = tmp_path_factory.mktemp("hopper_actors")
    rng = np.random.default_rng(0)
    points = []
    for i, ret in enumerate([10.0, 30.0, 60.0, 90.0]):
        write_actor(folder / f"step_{i}.npz", rng)
        points.append({"step": i, "file": f"step_{i}.npz", "eval_return": ret})
    (folder / "progress.json").write_text(json.dumps({"env": "Hopper-v5", "checkpoints": points}))
    return actor_set("hopper", folder)
