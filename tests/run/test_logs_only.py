"""A run on logs alone (``env: none``): from a CSV through import, audit, world model, training, OPE, the gate
and the report, with no environment built anywhere."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from guardrl.cli import app
from guardrl.config import load_config
from guardrl.data import collect
from guardrl.evaluate.target import TargetPolicy
from guardrl.run import RunContext
from guardrl.run.judging import assess_candidates

runner = CliRunner()

TINY = """
name: logs
env: none
collect:
  dataset: {dataset}
train:
  learners: [bc, cql]
  bc: {{n_steps: 40, batch_size: 32}}
  cql: {{n_steps: 40, batch_size: 32}}
  log_every: 10
world_model: {{n_members: 2, steps: 60, hidden_units: [32, 32]}}
ope: {{fqe_steps: 40, n_bootstrap: 100, model_episodes: 100}}
"""


def _csv_log(tables, path):
    """SafeGrid logs written as an operator's CSV: three features (x, y and a constant-free third one), no
    propensities (the behaviour policy must then be estimated)."""
    ds = collect(tables, "safe", 60, 7)
    frame = pd.DataFrame(
        {
            "episode_id": ds.episode_ids, "step": ds.steps,
            "obs_0": ds.observations[:, 0], "obs_1": ds.observations[:, 1],
            "obs_2": ds.observations[:, 0] * 0.5 - ds.observations[:, 1],
            "action": ds.actions, "reward": ds.rewards, "cost": ds.costs,
            "terminated": ds.terminations, "truncated": ds.truncations,
        }
    )  # fmt: skip
    frame.to_csv(path, index=False)
    return len(frame)


@pytest.fixture
def no_env(monkeypatch):
    """Any attempt to build SafeGrid or a gymnasium env fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a logs-only run built an environment")

    monkeypatch.setattr("guardrl.run.context.build_tables", refuse)
    monkeypatch.setattr("guardrl.run.context.GymSimulator", refuse)
    import gymnasium

    monkeypatch.setattr(gymnasium, "make", refuse)


def test_logs_only_run_from_a_csv(tmp_path, tables, no_env):
    rows = _csv_log(tables, tmp_path / "log.csv")
    res = runner.invoke(app, ["import", str(tmp_path / "log.csv"), "--n-actions", "4", "--out", str(tmp_path / "mine")])
    assert res.exit_code == 0, res.output
    cfg_path = tmp_path / "logs.yaml"
    cfg_path.write_text(TINY.format(dataset=tmp_path / "mine"))
    res = runner.invoke(app, ["run", "-c", str(cfg_path), "--runs-dir", str(tmp_path / "runs")])
    assert res.exit_code == 0, res.output
    assert "no simulator" in res.output and "deployment gate" in res.output
    run_dir = tmp_path / "runs" / "logs"
    for name in ("config.yaml", "audit.json", "metrics.json", "ope.json", "gate.json", "report.html",
                 "world_model/weights.npz", "world_model/model.json", "policies/bc.pt", "policies/cql.pt"):  # fmt: skip
        assert (run_dir / name).is_file(), name
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["env"] == "none" and saved["ope"]["estimators"] == ["pdis", "wis", "fqe", "dr", "model"]
    assert load_config(run_dir / "config.yaml").env.logs_only

    audit = json.loads((run_dir / "audit.json").read_text())
    assert audit["size"] == {"transitions": rows, "episodes": 60, "n_actions": 4, "obs_dim": 3}
    assert audit["world_model"]["fit"] is True

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["environment"] == "none (logs only)" and "no rollouts" in metrics["evidence"]
    for p in metrics["policies"].values():  # nothing rolled out: only the agreement with the logs
        assert set(p) == {"mismatch", "unsupported"} and 0.0 <= p["unsupported"]["logs_rate"] <= 1.0

    ope = json.loads((run_dir / "ope.json").read_text())
    assert "validation" not in ope and ope["propensities"].startswith("estimated")
    assert ope["world_model"]["kind"] in ("delta", "next")
    for r in ope["policies"].values():
        assert "truth" not in r and r["truth_source"].startswith("none")
        cost = r["estimates"]["cost"]
        assert {"fqe", "dr", "model", "model_pessimistic"} <= set(cost)
        # counting never-logged actions as hazards can only raise the model's cost
        assert cost["model_pessimistic"]["mean"] >= cost["model"]["mean"] - 1e-12
        assert r["estimates"]["return"]["model"]["low"] <= r["estimates"]["return"]["model"]["high"]
        assert r["model"]["dynamics"] == "the networks at every step"  # ope.model_logged_prior: null

    gate = json.loads((run_dir / "gate.json").read_text())
    for d in gate["decisions"].values():
        hazard = next(r for r in d["reasons"] if r["rule"] in ("hazard", "evidence"))
        assert "OPE cost" in hazard["message"] and "model_pessimistic" in hazard["message"]
    html = (run_dir / "report.html").read_text()
    assert "No simulator: every number in this report is estimated from the logs" in html
    assert "World model" in html and "truth (" not in html
    assert "FQE: tabular over the audit&#x27;s" in html or "FQE: tabular over the audit's" in html
    memo = (run_dir / "memo.md").read_text()
    assert "No simulator: every number is estimated from the logs" in memo and 'id="memo"' in html
    for name, d in gate["decisions"].items():
        assert f"| {name} | {d['decision']} |" in memo and "OPE cost" in memo

    # other policies are judged by the same estimators and rules, against the run's BC
    for r in ope["policies"].values():
        assert r["fqe"]["function_class"].startswith("tabular over the audit's")
        assert r["estimates"]["cost"]["fqe"]["low"] <= r["estimates"]["cost"]["fqe"]["high"]
    ctx = RunContext.open(run_dir)
    always_right = TargetPolicy("always_right", lambda obs: np.ones(len(obs), dtype=np.int64))
    out = assess_candidates(ctx, {"always_right": always_right})["always_right"]
    assert out["gate"]["policy"] == "always_right"
    assert {r["rule"] for r in out["gate"]["reasons"]} == {"audit", "hazard", "bc", "support", "ope"}
    assert set(out["ope"]["estimates"]["cost"]) == set(ope["policies"]["bc"]["estimates"]["cost"])


def test_logs_only_stages_one_by_one(tmp_path, tables, no_env):
    _csv_log(tables, tmp_path / "log.csv")
    assert runner.invoke(app, ["import", str(tmp_path / "log.csv"), "--n-actions", "4",
                               "--out", str(tmp_path / "mine")]).exit_code == 0  # fmt: skip
    cfg_path = tmp_path / "logs.yaml"
    cfg_path.write_text(TINY.format(dataset=tmp_path / "mine"))
    run_dir = tmp_path / "r"
    assert runner.invoke(app, ["collect", str(run_dir), "-c", str(cfg_path)]).exit_code == 0
    res = runner.invoke(app, ["model", str(run_dir), "-q"])
    assert res.exit_code == 1 and "audit.json: missing" in res.output, res.output
    assert runner.invoke(app, ["audit", str(run_dir / "dataset")]).exit_code == 0
    res = runner.invoke(app, ["model", str(run_dir)])
    assert res.exit_code == 0 and "held-out" in res.output, res.output
    for cmd in ("train", "evaluate", "ope", "gate", "report"):
        res = runner.invoke(app, [cmd, str(run_dir), *(["-q"] if cmd in ("train", "evaluate", "ope") else [])])
        assert res.exit_code == 0, (cmd, res.output)
    assert set(json.loads((run_dir / "gate.json").read_text())["decisions"]) == {"bc", "cql"}


def test_a_log_too_small_for_a_world_model_is_refused_by_the_audit(tmp_path, tables, no_env):
    ds = collect(tables, "safe", 8, 1)  # 8 episodes: fewer than the 10 a world model needs
    ds.save(tmp_path / "few")
    cfg_path = tmp_path / "logs.yaml"
    cfg_path.write_text(TINY.format(dataset=tmp_path / "few"))
    res = runner.invoke(app, ["run", "-c", str(cfg_path), "--runs-dir", str(tmp_path / "runs"), "-q"])
    assert res.exit_code == 1
    assert "the audit refuses a world model" in res.output and "8 episodes" in res.output
    assert not (tmp_path / "runs" / "logs").exists()  # a failed run leaves nothing half-written


def test_env_none_needs_logs_and_the_model_estimator(tmp_path):
    from guardrl.config import ConfigError

    path = tmp_path / "c.yaml"
    path.write_text("env: none\n")
    with pytest.raises(ConfigError, match="collect.dataset: a logs-only run"):
        load_config(path)
    path.write_text("env: none\ncollect: {dataset: x}\nope: {estimators: [fqe, dr]}\n")
    with pytest.raises(ConfigError, match="needs the model estimator"):
        load_config(path)
    path.write_text("env: none\ncollect: {dataset: x}\nope: {validate: true}\n")
    with pytest.raises(ConfigError, match="no truth to validate"):
        load_config(path)
    path.write_text("collect: {dataset: x}\n")  # with a simulator the model estimator is opt-in
    assert load_config(path).ope.estimators == ("pdis", "wis", "fqe", "dr")
    assert np.isclose(load_config(path).evaluate.n_bootstrap, load_config(None).evaluate.n_bootstrap)


def test_continuous_logs_are_refused_by_a_run_naming_the_dataset(tmp_path):
    from guardrl.data.collect import collect_nav
    from guardrl.envs.safenav import NavLayout

    collect_nav(NavLayout(), "safe", 10, seed=0).save(tmp_path / "nav")
    config = tmp_path / "nav.yaml"
    config.write_text(yaml.safe_dump({"name": "nav", "env": "none", "collect": {"dataset": str(tmp_path / "nav")}}))
    result = CliRunner().invoke(app, ["run", "-c", str(config), "--runs-dir", str(tmp_path / "runs"), "-q"])
    assert result.exit_code == 1
    assert f"collect.dataset {tmp_path / 'nav'}: the logs have continuous actions (2 dimensions)" in result.output
    assert not (tmp_path / "runs" / "nav").exists()
