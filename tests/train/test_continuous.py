import numpy as np
import onnxruntime as ort
import pytest

from guardrl.data.collect import collect_nav
from guardrl.envs.safenav import NavLayout, steering_mean
from guardrl.errors import ConfigError
from guardrl.train.continuous import ContinuousLearnerConfig, LearnerConfigError, normalization, train_continuous
from guardrl.train.export import TorchScriptActor, export_policy


@pytest.fixture(scope="module")
def safe_logs():
    return collect_nav(NavLayout(), "safe", 40, seed=5)


@pytest.fixture(scope="module")
def bc(safe_logs):
    return train_continuous(ContinuousLearnerConfig("bc", n_steps=400, hidden_units=(64, 64)), safe_logs, seed=1)


def test_bc_learns_the_logging_controller_and_one_seed_gives_one_policy(safe_logs, bc):
    obs = safe_logs.observations
    # the logs' actions are tanh(atanh(mean) + 0.4 noise): BC's deterministic action should sit near the mean
    err = np.abs(bc.predict(obs) - steering_mean(NavLayout())(obs.astype(np.float64))).mean()
    untrained = train_continuous(ContinuousLearnerConfig("bc", n_steps=1, hidden_units=(64, 64)), safe_logs, seed=1)
    err0 = np.abs(untrained.predict(obs) - steering_mean(NavLayout())(obs.astype(np.float64))).mean()
    assert err < 0.25 < err0
    again = train_continuous(ContinuousLearnerConfig("bc", n_steps=400, hidden_units=(64, 64)), safe_logs, seed=1)
    np.testing.assert_array_equal(again.predict(obs[:50]), bc.predict(obs[:50]))
    assert bc.curve["step"] == [400] and bc.curve["loss"][0] > 0


@pytest.mark.parametrize("name", ["td3bc", "iql", "cql"])
def test_the_actor_critic_learners_train_and_act_inside_the_box(safe_logs, name):
    result = train_continuous(ContinuousLearnerConfig(name, n_steps=20, hidden_units=(32, 32)), safe_logs, seed=0)
    actions = result.predict(safe_logs.observations[:100])
    assert actions.shape == (100, 2) and np.abs(actions).max() <= 1.0
    assert result.curve["step"] == [20] and all(np.isfinite(v[0]) for v in result.curve.values())


def test_the_normalization_is_the_references_and_recorded(safe_logs):
    returns = safe_logs.episode_returns()
    iql = normalization("iql", safe_logs)
    assert iql["reward"]["multiplier"] == pytest.approx(1000.0 / (returns.max() - returns.min()))
    assert normalization("td3bc", safe_logs)["reward"]["multiplier"] == 1.0
    np.testing.assert_allclose(iql["observation"]["mean"], safe_logs.observations.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(iql["observation"]["std"], safe_logs.observations.std(axis=0) + 1e-3, rtol=1e-6)


def test_unknown_learners_and_options_are_errors_never_dropped(safe_logs):
    with pytest.raises(ConfigError, match="continuous learner 'sac' is not one of"):
        ContinuousLearnerConfig("sac")  # type: ignore[arg-type]
    cfg = ContinuousLearnerConfig("td3bc", n_steps=1, d3rlpy_kwargs={"conservative_weight": 5.0})
    with pytest.raises(LearnerConfigError, match="td3bc: d3rlpy 2.8.1 TD3PlusBCConfig rejected an option"):
        train_continuous(cfg, safe_logs, seed=0)
    with pytest.raises(ValueError, match="continuous learners need a dataset with continuous actions"):
        from guardrl.data import collect
        from guardrl.envs import build_tables, default_layout

        train_continuous(cfg, collect(build_tables(default_layout()), "safe", 3, 0), seed=0)


def test_the_exported_actor_loads_on_cpu_and_acts_as_trained(safe_logs, bc, tmp_path):
    files = export_policy(bc.algo, tmp_path, "bc")
    obs = safe_logs.observations[:64]
    actor = TorchScriptActor(files["torchscript"], safe_logs.action_bounds)
    np.testing.assert_allclose(actor.act(obs), bc.predict(obs), atol=1e-5)
    session = ort.InferenceSession(str(files["onnx"]), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: obs.astype(np.float32)})
    np.testing.assert_allclose(np.clip(onnx_out, -1, 1), bc.predict(obs), atol=1e-5)
