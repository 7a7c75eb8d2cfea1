import numpy as np
import pytest

from guardrl.config import CollectConfig, RunConfig
from guardrl.envs import build_tables, default_layout
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
            bc=BCConfig(n_steps=40, batch_size=32),
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
