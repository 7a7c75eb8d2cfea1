import json
from dataclasses import replace

import pytest
import yaml
from typer.testing import CliRunner

from guardrl.cli import app
from guardrl.config import ConfigError, to_dict
from guardrl.run.sweep import SweepConfig, group, run_sweep, trial_config

runner = CliRunner()


@pytest.fixture
def tiny_base(tiny_config):
    base = to_dict(tiny_config)
    base.pop("name")
    base["ope"] = {}
    return base


def test_trials_cover_the_grid_with_alpha_for_cql_only(tiny_base):
    cfg = SweepConfig(base=tiny_base, seeds=(0, 1), alphas=(0.5, 2.0), learners=("bc", "cql"), regimes=("safe",))
    trials = cfg.trials()
    assert len(trials) == 2 + 4
    assert {(t["learner"], t["alpha"]) for t in trials} == {("bc", None), ("cql", 0.5), ("cql", 2.0)}
    run_cfg = trial_config(cfg.base_config(), {"regime": "noisy", "learner": "cql", "alpha": 2.0, "seed": 1})
    assert (run_cfg.train.cql.alpha, run_cfg.collect.regime, run_cfg.collect.seed) == (2.0, "noisy", 1)
    assert run_cfg.train.learners == ("cql",) and run_cfg.name == "cql-noisy-a2-s1"


@pytest.mark.parametrize(
    ("data", "message"),
    [({"backend": "spark"}, "backend"), ({"seeds": []}, "seeds"), ({"base": {"train": {"cql": {"nope": 1}}}},
     "base.train.cql.nope: unknown option")],
)  # fmt: skip
def test_bad_sweep_configs_name_the_field(data, message):
    from guardrl.config import from_dict

    with pytest.raises(ConfigError, match=message):
        from_dict(SweepConfig, data)


def test_sequential_sweep_writes_table_plot_and_report(tmp_path, tiny_base):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny", "base": tiny_base, "seeds": [0, 1], "alphas": [0.1, 5.0],
                                    "learners": ["bc", "cql"], "backend": "sequential"}))  # fmt: skip
    result = runner.invoke(app, ["sweep", str(path), "--sweeps-dir", str(tmp_path / "sweeps")])
    assert result.exit_code == 0, result.output
    out = tmp_path / "sweeps" / "tiny"
    assert {p.name for p in out.iterdir()} == {"sweep.yaml", "results.json", "results.md", "tradeoff.png",
                                               "report.html"}  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    assert results["backend"] == "sequential" and len(results["trials"]) == 6
    assert [(e["learner"], e["alpha"], e["n_seeds"]) for e in results["table"]] == [
        ("bc", None, 2), ("cql", 0.1, 2), ("cql", 5.0, 2)
    ]  # fmt: skip
    for t in results["trials"]:
        assert 0.0 <= t["hazard_rate"]["mean"] <= 1.0 and t["n_episodes"] == 90
    assert (out / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "cql-safe-a5-s1" in html
    assert "sweep tiny: 6 trials" in result.output
    # the same trial run twice gives the same metrics: the Ray path relies on it
    again = run_sweep(
        SweepConfig(name="one", base=tiny_base, seeds=(1,), alphas=(5.0,), learners=("cql",), backend="sequential"),
        tmp_path / "sweeps", show_progress=False,
    )[1]["trials"][0]  # fmt: skip
    first = next(t for t in results["trials"] if t["name"] == "cql-safe-a5-s1")
    assert again["hazard_rate"] == first["hazard_rate"] and again["return"] == first["return"]


def test_ray_backend_matches_sequential(tmp_path, tiny_base):
    pytest.importorskip("ray")
    cfg = SweepConfig(name="r", base=tiny_base, seeds=(0,), alphas=(1.0,), learners=("bc", "cql"), num_cpus=2)
    ray_out = run_sweep(replace(cfg, backend="ray"), tmp_path / "a", show_progress=False)[1]
    seq_out = run_sweep(replace(cfg, backend="sequential"), tmp_path / "b", show_progress=False)[1]
    assert ray_out["backend"] == "ray"
    strip = [{k: v for k, v in t.items() if k != "seconds"} for t in ray_out["trials"]]
    assert strip == [{k: v for k, v in t.items() if k != "seconds"} for t in seq_out["trials"]]


def test_group_takes_mean_min_max_over_seeds():
    rows = [{"regime": "safe", "learner": "cql", "alpha": 1.0, "normalized_score": {"mean": s},
             "hazard_rate": {"mean": h}, "goal_rate": {"mean": 1 - h}, "return": {"mean": s / 5}}
            for s, h in ((90.0, 0.02), (100.0, 0.0))]  # fmt: skip
    (entry,) = group(rows)
    assert entry["normalized_score"] == {"mean": 95.0, "min": 90.0, "max": 100.0}
    assert entry["hazard_rate"]["mean"] == pytest.approx(0.01) and entry["n_seeds"] == 2


def test_a_safenav_sweep_trains_bc_beside_each_learner_and_weights_continuous_cql(tmp_path, monkeypatch):
    import guardrl.train.continuous as continuous

    built = []

    def spy(cfg, norm, device):
        built.append((cfg.name, cfg.conservative_weight))
        return real(cfg, norm, device)

    real = continuous.build_continuous
    monkeypatch.setattr(continuous, "build_continuous", spy)

    nav = {"env": "safenav", "collect": {"n_episodes": 40},
           "train": {"continuous": {"n_steps": 40, "batch_size": 32, "hidden_units": [16, 16]}},
           "evaluate": {"n_episodes": 30}, "audit": {"min_transitions": 300, "min_episodes": 20}}  # fmt: skip
    cfg = SweepConfig(name="nav", base=nav, seeds=(0,), alphas=(0.5, 5.0), learners=("bc", "cql"),
                      regimes=("noisy",), backend="sequential")  # fmt: skip
    run_cfg = trial_config(cfg.base_config(), {"regime": "noisy", "learner": "cql", "alpha": 0.5, "seed": 0})
    assert run_cfg.train.learners == ("bc", "cql") and run_cfg.train.continuous.conservative_weight == 0.5
    assert run_cfg.train.cql.alpha == cfg.base_config().train.cql.alpha  # discrete CQL's weight untouched
    learner = continuous.ContinuousLearnerConfig("cql", conservative_weight=0.5)
    norm = {"observation": {"mean": [0, 0], "std": [1, 1]}, "reward": {"multiplier": 1}}
    assert real(learner, norm, "cpu:0").config.conservative_weight == 0.5
    _, results = run_sweep(cfg, tmp_path, show_progress=False)
    rows = {(t["learner"], t["alpha"]): t for t in results["trials"]}
    assert sorted(rows, key=str) == [("bc", None), ("cql", 0.5), ("cql", 5.0)]
    for row in rows.values():
        assert row["n_episodes"] == 30 and row["regime"] == "noisy"
        assert row["hazard_rate"]["low"] <= row["hazard_rate"]["mean"] <= row["hazard_rate"]["high"]
        assert -200 < row["normalized_score"]["mean"] < 150
    assert [w for name, w in built if name == "cql"] == [0.5, 5.0]  # each trial's weight reached d3rlpy
    assert [name for name, _ in built] == ["bc", "bc", "cql", "bc", "cql"]
    with pytest.raises(ConfigError, match="collect.regime: a SafeNav run logs one of"):
        run_sweep(replace(cfg, regimes=("medium",)), tmp_path, show_progress=False)


def test_a_failed_ray_connection_leaves_this_process_its_own_sigterm_handler(tmp_path):
    import signal

    before = signal.getsignal(signal.SIGTERM)
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nseeds: [0]\nlearners: [bc]\nregimes: [safe]\n")
    res = runner.invoke(app, ["sweep", str(path), "--sweeps-dir", str(tmp_path / "sw"), "--backend", "ray",
                              "--address", "ray://127.0.0.1:1", "-q"])  # fmt: skip
    assert res.exit_code == 1 and "cannot connect" in res.output
    assert signal.getsignal(signal.SIGTERM) is before  # Ray's handler would keep forked children alive
