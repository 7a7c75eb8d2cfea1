import numpy as np
import onnxruntime  # noqa: F401  (the ONNX check below needs it)
import pytest
import torch
from d3rlpy.models.q_functions import QRQFunctionFactory

from guardrl.data import collect
from guardrl.train import (
    BCConfig,
    CQLConfig,
    DQNConfig,
    LearnerConfigError,
    ObsBounds,
    OnnxPolicy,
    ScoresModel,
    TorchScriptPolicy,
    TrainConfig,
    TransitionArrays,
    build_algo,
    export_policy,
    export_scores,
    train_all,
)

BOUNDS = ObsBounds(np.zeros(2), np.full(2, 14.0))


@pytest.fixture(scope="module")
def dataset(tables):
    return collect(tables, "safe", 60, seed=0)


def tiny(**kw):
    return TrainConfig(bc=BCConfig(n_steps=30, batch_size=32, stop="steps"), cql=CQLConfig(n_steps=30, batch_size=32),
                       log_every=10, **kw)  # fmt: skip


def test_transition_arrays_terminals_are_terminations_only(tables):
    ds = collect(tables, "noisy", 200, seed=1)
    arr = TransitionArrays.from_dataset(ds)
    assert np.array_equal(arr.terminals[:, 0] == 1.0, ds.terminations)
    assert ds.truncations.sum() > 0 and (arr.terminals[ds.truncations] == 0).all()
    b = arr.batch(np.array([0, 1, 2]))
    assert b.observations.shape == (3, 2) and b.actions.shape == (3, 1)


def test_training_is_reproducible_and_restores_torch_state(dataset):
    torch.manual_seed(99)
    before = torch.random.get_rng_state()
    a = train_all(dataset, tiny(seed=3), BOUNDS, show_progress=False)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = train_all(dataset, tiny(seed=3), BOUNDS, show_progress=False)
    c = train_all(dataset, tiny(seed=4), BOUNDS, show_progress=False)
    # the default trains BC and CQL in two forked processes; one after the other in this process gives the same
    inline = train_all(dataset, tiny(seed=3, workers=1), BOUNDS, show_progress=False)
    assert list(a) == list(inline) == ["bc", "cql"]
    grid = np.stack(np.meshgrid(np.arange(15), np.arange(15)), -1).reshape(-1, 2).astype(np.float32)
    for name in ("bc", "cql"):
        assert a[name].curve["loss"] == b[name].curve["loss"] == inline[name].curve["loss"]
        assert np.array_equal(a[name].predict(grid), b[name].predict(grid))
        assert np.array_equal(a[name].predict(grid), inline[name].predict(grid))
        assert a[name].curve["loss"] != c[name].curve["loss"]
        assert a[name].curve["step"] == [10, 20, 30]


def test_cql_alpha_reaches_d3rlpy_and_unknown_options_fail():
    algo = build_algo("cql", CQLConfig(alpha=6.0), BOUNDS, "cpu:0")
    assert algo.config.alpha == 6.0
    with pytest.raises(LearnerConfigError, match="conservative_weight"):
        build_algo("cql", CQLConfig(d3rlpy_kwargs={"conservative_weight": 6.0}), BOUNDS, "cpu:0")
    with pytest.raises(LearnerConfigError, match="n_action_samples"):
        build_algo("cql", CQLConfig(d3rlpy_kwargs={"n_action_samples": 10}), BOUNDS, "cpu:0")
    ok = build_algo("cql", CQLConfig(d3rlpy_kwargs={"n_critics": 2}), BOUNDS, "cpu:0")
    assert ok.config.n_critics == 2


def _fit_one_state_bandit(td_loss: str) -> float:
    """Q of the only action in a one-step bandit: reward +1 on 79 of 80 logged steps, -100 on one."""
    rewards = np.full((80, 1), 1.0, dtype=np.float32)
    rewards[0] = -100.0
    zeros = np.zeros((80, 1), dtype=np.float32)
    obs = np.zeros((80, 2), dtype=np.float32)
    ones = np.ones((80, 1), dtype=np.float32)
    arrays = TransitionArrays(obs, zeros, rewards, obs, zeros, terminals=ones, intervals=ones)
    cfg = DQNConfig(td_loss=td_loss, n_critics=1, batch_size=80, learning_rate=3e-3, lr_schedule="constant")
    torch.manual_seed(0)
    algo = build_algo("dqn", cfg, BOUNDS, "cpu:0", grid_size=15)
    algo.create_impl((2,), 4)
    for _ in range(600):
        algo.update(arrays.batch(np.arange(80)))
    return float(algo.predict_value(obs[:1], np.zeros(1, dtype=np.int64))[0]) / cfg.reward_scale


def test_squared_td_loss_learns_the_mean_where_huber_ignores_the_rare_catastrophe():
    mean = (79 * 1.0 - 100.0) / 80  # -0.2625
    assert _fit_one_state_bandit("mse") == pytest.approx(mean, abs=0.02)
    # Huber (threshold 1 scaled unit) caps the -100 step's pull at 1: the estimate settles where 79 small
    # residuals balance it, 1 - 10 / 79 = +0.873 in reward units, as if the catastrophe were rare noise
    assert _fit_one_state_bandit("huber") == pytest.approx(1.0 - 10.0 / 79, abs=0.02)


def test_td_loss_choice_reaches_d3rlpy_and_conflicts_fail():
    assert build_algo("cql", CQLConfig(), BOUNDS, "cpu:0").config.q_func_factory.get_type() == "guardrl_squared_error"
    assert build_algo("cql", CQLConfig(td_loss="huber"), BOUNDS, "cpu:0").config.q_func_factory.get_type() == "mean"
    with pytest.raises(LearnerConfigError, match="td_loss"):
        build_algo("cql", CQLConfig(td_loss="l1"), BOUNDS, "cpu:0")
    quantile = {"q_func_factory": QRQFunctionFactory()}
    with pytest.raises(LearnerConfigError, match="q_func_factory"):
        build_algo("dqn", DQNConfig(d3rlpy_kwargs=quantile), BOUNDS, "cpu:0")
    qr = build_algo("dqn", DQNConfig(td_loss="huber", d3rlpy_kwargs=quantile), BOUNDS, "cpu:0")
    assert qr.config.q_func_factory.get_type() == "qr"


def test_unknown_learner_and_device_are_errors(dataset):
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig(learners=("dqn9",))
    with pytest.raises(ValueError, match="train.workers must be at least 1, got 0"):
        TrainConfig(workers=0)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            train_all(dataset, tiny(device="cuda"), BOUNDS, show_progress=False)


def test_monitor_is_called_on_schedule(dataset):
    calls = []

    def monitor(predict):
        calls.append(predict(np.zeros((1, 2), np.float32)).shape)
        return {"expected_return": float(len(calls))}

    bc = BCConfig(n_steps=25, batch_size=16, stop="steps")
    res = train_all(dataset, TrainConfig(learners=("bc",), bc=bc, monitor_every=10), BOUNDS, monitor=monitor,
                    show_progress=False)  # fmt: skip
    assert res["bc"].monitor["step"] == [10, 20, 25]
    assert calls == [(1,), (1,), (1,)]


@pytest.mark.parametrize("encoder", ["mlp", "grid", "index"])
def test_export_torchscript_and_onnx_agree_with_the_trained_model(dataset, tmp_path, encoder):
    table = np.unique(dataset.observations, axis=0)
    res = train_all(dataset, tiny(), BOUNDS, show_progress=False, grid_size=15 if encoder == "grid" else None,
                    state_table=table if encoder == "index" else None)  # fmt: skip
    grid = np.stack(np.meshgrid(np.arange(15), np.arange(15)), -1).reshape(-1, 2).astype(np.float32)
    kind = {"mlp": "VectorEncoder", "grid": "GridEncoder", "index": "IndexEncoder"}[encoder]
    assert type(res["cql"].algo.impl.q_function[0].encoder).__name__ == kind
    assert type(res["bc"].algo.impl.modules.imitator._encoder).__name__ == kind
    for name in ("bc", "cql"):
        files = export_policy(res[name].algo, tmp_path, name)
        assert files["torchscript"].read_bytes()[:2] == b"PK"  # a TorchScript zip archive, no .d3 pickle
        expected = res[name].predict(grid)
        assert np.array_equal(TorchScriptPolicy(files["torchscript"]).greedy(grid), expected)
        assert np.array_equal(OnnxPolicy(files["onnx"]).greedy(grid), expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bc.onnx", "bc.pt", "cql.onnx", "cql.pt"]


def test_dqn_and_bcq_options_reach_d3rlpy():
    from guardrl.train import BCQConfig, DQNConfig

    dqn = build_algo("dqn", DQNConfig(target_update_interval=50, gamma=0.9), BOUNDS, "cpu:0")
    assert type(dqn).__name__ == "DQN"
    assert (dqn.config.target_update_interval, dqn.config.gamma) == (50, 0.9)
    bcq = build_algo("bcq", BCQConfig(action_flexibility=0.2, beta=0.05), BOUNDS, "cpu:0")
    assert type(bcq).__name__ == "DiscreteBCQ"
    assert (bcq.config.action_flexibility, bcq.config.beta, bcq.config.share_encoder) == (0.2, 0.05, False)
    with pytest.raises(LearnerConfigError, match="alpha"):
        build_algo("bcq", BCQConfig(d3rlpy_kwargs={"alpha": 1.0}), BOUNDS, "cpu:0")


def test_all_four_learners_train_and_predict_valid_actions(dataset, tmp_path):
    from guardrl.train import BCQConfig, DQNConfig

    cfg = TrainConfig(learners=("bc", "cql", "dqn", "bcq"), bc=BCConfig(n_steps=20, batch_size=32, stop="steps"),
                      cql=CQLConfig(n_steps=20, batch_size=32), dqn=DQNConfig(n_steps=20, batch_size=32),
                      bcq=BCQConfig(n_steps=20, batch_size=32), log_every=10)  # fmt: skip
    results = train_all(dataset, cfg, BOUNDS, show_progress=False)
    assert list(results) == ["bc", "cql", "dqn", "bcq"]
    grid = np.stack(np.meshgrid(np.arange(15), np.arange(15)), -1).reshape(-1, 2).astype(np.float32)
    for name, res in results.items():
        actions = res.predict(dataset.observations[:50])
        assert actions.shape == (50,) and ((actions >= 0) & (actions < 4)).all()
        assert res.curve["step"] == [10, 20]
        # the exported scores rank the greedy action first, in every cell
        path, kind = export_scores(res.algo, tmp_path, name)
        scores = ScoresModel(path, kind)(grid)
        assert scores.shape == (225, 4) and kind == ("logprob" if name == "bc" else "q")
        np.testing.assert_array_equal(np.argmax(scores, axis=1), res.predict(grid))
        if kind == "logprob":
            np.testing.assert_allclose(np.exp(scores).sum(axis=1), 1.0, rtol=1e-5)


def test_lr_schedule_reaches_d3rlpy_and_bad_schedule_fails():
    algo = build_algo("cql", CQLConfig(n_steps=123), BOUNDS, "cpu:0")
    assert algo.config.optim_factory.lr_scheduler_factory.T_max == 123
    assert (
        build_algo("bc", BCConfig(lr_schedule="constant"), BOUNDS, "cpu:0").config.optim_factory.lr_scheduler_factory
        is None
    )
    with pytest.raises(LearnerConfigError, match="cql.lr_schedule"):
        build_algo("cql", CQLConfig(lr_schedule="linear"), BOUNDS, "cpu:0")


def test_grid_encoder_reads_one_cell_per_observation():
    from guardrl.train.learners import GridEncoder

    enc = GridEncoder(15, [8, 4])
    x = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [-1.0 + 2 / 14, -1.0]])  # cells (0,0), (14,14), (1,0) scaled
    out = enc(x)
    assert out.shape == (3, 4)
    direct = enc.layers(enc.embed(torch.tensor([0, 224, 1])))
    assert torch.allclose(out, direct)
    with pytest.raises(LearnerConfigError, match="needs \\(x, y\\) observations"):
        build_algo("cql", CQLConfig(), ObsBounds(np.zeros(3), np.ones(3)), "cpu:0", grid_size=15).create_impl((3,), 4)


def test_to_cpu_brings_a_policy_and_its_scaler_caches_back_from_another_device(dataset, tmp_path):
    """The GPU failure, simulated on the CPU: d3rlpy's scaler caches its statistics on the device of its first
    input, so a policy trained on a GPU met a CPU trace with "Expected all tensors to be on the same device".
    The meta device stands in for the GPU (it too refuses to mix with CPU tensors)."""
    from guardrl.train.trainer import to_cpu

    res = train_all(dataset, tiny(learners=("cql",)), BOUNDS, show_progress=False)["cql"]
    grid = np.stack(np.meshgrid(np.arange(15), np.arange(15)), -1).reshape(-1, 2).astype(np.float32)
    expected = res.predict(grid)
    algo, scaler = res.algo, res.algo.config.observation_scaler
    assert scaler._torch_minimum is not None  # training filled the cache
    scaler._torch_minimum = scaler._torch_minimum.to("meta")
    scaler._torch_maximum = scaler._torch_maximum.to("meta")
    algo._device = algo.impl._device = "cuda:0"
    with pytest.raises(RuntimeError, match="device"):
        scaler.transform(torch.zeros(2, 2))
    assert to_cpu(algo) is algo
    assert (algo._device, algo.impl._device) == ("cpu:0", "cpu:0")
    assert all(p.device.type == "cpu" for p in algo.impl.q_function.parameters())
    np.testing.assert_array_equal(res.predict(grid), expected)
    assert scaler._torch_minimum.device.type == scaler._torch_maximum.device.type == "cpu"  # rebuilt there
    path, kind = export_scores(algo, tmp_path, "cql")
    np.testing.assert_array_equal(np.argmax(ScoresModel(path, kind)(grid), axis=1), expected)


def test_index_encoder_reads_the_nearest_logged_state():
    from guardrl.train.learners import IndexEncoder, scaled_table

    table = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # one-hot states, as FrozenLake logs
    bounds = ObsBounds(np.zeros(3), np.ones(3))
    enc = IndexEncoder(np.asarray(scaled_table(table, bounds)), [8, 8])
    scaled = torch.tensor(scaled_table(np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0], [0.9, 0.2, 0.1]]), bounds))
    direct = enc.layers(enc.embed(torch.tensor([2, 0, 1, 1])))  # the last is unlogged: nearest is row 1
    assert torch.allclose(enc(scaled), direct)
    with pytest.raises(LearnerConfigError, match="table has rows of shape"):
        build_algo("bc", BCConfig(), bounds, "cpu:0", state_table=table).create_impl((4,), 4)
