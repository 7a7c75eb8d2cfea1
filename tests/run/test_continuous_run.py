"""A run with continuous actions (``env: safenav``): every stage's artifact from one tiny ``guardrl run``."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from guardrl.cli import app
from guardrl.config import load_config
from guardrl.data import load_dataset
from guardrl.errors import ConfigError
from tests.conftest import NAV_TINY

runner = CliRunner()


def test_a_safenav_run_writes_every_artifact_with_continuous_evidence(nav_run):
    assert yaml.safe_load((nav_run / "config.yaml").read_text())["env"] == "safenav"
    ds = load_dataset(nav_run / "dataset")
    assert ds.is_continuous and ds.action_bounds == ((-1.0, -1.0), (1.0, 1.0)) and ds.n_episodes == 60
    audit = json.loads((nav_run / "audit.json").read_text())
    assert audit["verdict"]["verdict"] == "offline-RL-ready" and audit["size"]["action_dim"] == 2
    assert audit["coverage"]["support_threshold"] > 0 and audit["episode_ends"]["hazard"] > 0  # noisy logs
    for name in ("bc", "td3bc"):
        assert (nav_run / "policies" / f"{name}.pt").is_file() and (nav_run / "policies" / f"{name}.onnx").is_file()
        card = json.loads((nav_run / "policies" / f"{name}.json").read_text())
        assert card["learner"]["n_steps"] == 200 and card["dataset"]["hash"] == ds.content_hash()
        assert card["normalization"]["observation"]["rule"].startswith("standardized")
    metrics = json.loads((nav_run / "metrics.json").read_text())
    bc = metrics["policies"]["bc"]
    assert (
        bc["episodes"] == 90 and 0 <= bc["hazard_rate"]["low"] <= bc["hazard_rate"]["mean"] <= bc["hazard_rate"]["high"]
    )
    assert bc["hazard_rate"]["high"] > 0  # Wilson: an upper bound above 0 even for few events
    assert 0 <= bc["unsupported"]["rollout_rate"] <= 1 and metrics["reference"]["optimal_return"] > 0
    ope = json.loads((nav_run / "ope.json").read_text())
    entry = ope["policies"]["td3bc"]
    assert {"pdis", "wis", "fqe"} <= set(entry["estimates"]["return"]) and entry["smoothing"]["std"] == 0.2
    assert entry["truth"]["return"] == metrics["policies"]["td3bc"]["return"]
    gate = json.loads((nav_run / "gate.json").read_text())
    for name in ("bc", "td3bc"):
        decision = gate["decisions"][name]
        assert decision["decision"] in ("PASS", "CAUTION", "FAIL")
        hazard = next(r for r in decision["reasons"] if r["rule"] == "hazard")
        assert "(rollouts)" in hazard["message"]
        # the hazard rule's verdict follows the rollouts' upper bound against the 1% limit
        high = metrics["policies"][name]["hazard_rate"]["high"]
        assert (hazard["decision"] == "PASS") == (high <= gate["config"]["hazard_limit"])
    html = (nav_run / "report.html").read_text()
    assert "Deployment gate" in html and "td3bc" in html and "smoothed by a squashed Gaussian" in html
    assert "SafeNav" in (nav_run / "memo.md").read_text()


def test_the_same_config_gives_the_same_dataset_and_metrics(nav_run, tmp_path):
    (tmp_path / "nav.yaml").write_text(NAV_TINY)
    res = runner.invoke(app, ["run", "-c", str(tmp_path / "nav.yaml"), "--runs-dir", str(tmp_path / "runs"), "-q"])
    assert res.exit_code == 0, res.output
    again = json.loads((tmp_path / "runs" / "nav" / "metrics.json").read_text())
    first = json.loads((nav_run / "metrics.json").read_text())
    assert (
        load_dataset(tmp_path / "runs" / "nav" / "dataset").content_hash()
        == load_dataset(nav_run / "dataset").content_hash()
    )
    for name in ("bc", "td3bc"):
        assert again["policies"][name]["return"] == first["policies"][name]["return"]
        assert again["policies"][name]["hazard_rate"] == first["policies"][name]["hazard_rate"]


def test_stage_commands_on_a_safenav_run_are_refused_with_the_reason(nav_run):
    res = runner.invoke(app, ["gate", str(nav_run)])
    assert res.exit_code == 1 and "runs as a whole with `guardrl run`" in " ".join(res.output.split())


@pytest.mark.parametrize(
    "text, message",
    [
        ("env: safenav\ntrain: {learners: [bc, morel]}", r"\['morel'\] learn discrete actions"),
        ("env: safenav\ntrain: {learners: [td3bc]}", "compares every candidate with bc"),
        ("env: safenav\nope: {estimators: [wis, fqe, dr]}", r"\['dr'\] are not built for continuous actions"),
        ("train: {learners: [bc, iql]}", r"\['iql'\] learn continuous actions only"),
    ],
)
def test_learners_and_estimators_must_fit_the_action_kind(tmp_path, text, message):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "c.yaml")


def test_imported_logs_must_be_safenav_shaped(tmp_path, tables):
    from guardrl.data import collect

    collect(tables, "safe", 30, seed=1).save(tmp_path / "grid")
    (tmp_path / "c.yaml").write_text(f"name: x\nenv: safenav\ncollect: {{dataset: {tmp_path / 'grid'}}}\n")
    res = runner.invoke(app, ["run", "-c", str(tmp_path / "c.yaml"), "--runs-dir", str(tmp_path / "runs"), "-q"])
    said = " ".join(res.output.split())
    assert res.exit_code == 1 and "a SafeNav-v0 run needs 2 observation features and actions in [-1, 1]^2" in said
    assert not (tmp_path / "runs" / "x").exists()


HOPPER_TINY = """
name: hop
env: {mujoco: hopper}
collect: {regime: random, n_steps: 1500}
train: {learners: [bc, td3bc], continuous: {n_steps: 100, hidden_units: [32, 32]}}
evaluate: {n_episodes: 12}
ope: {fqe_steps: 50, n_bootstrap: 100}
audit: {min_transitions: 500, min_episodes: 20}
"""


def test_a_mujoco_run_scores_with_d4rl_constants_and_counts_falls_as_hazards(tmp_path):
    import numpy as np

    from guardrl.envs.mujoco import normalized_score

    (tmp_path / "h.yaml").write_text(HOPPER_TINY)
    res = runner.invoke(app, ["run", "-c", str(tmp_path / "h.yaml"), "--runs-dir", str(tmp_path / "runs"), "-q"])
    assert res.exit_code == 0, res.output
    run_dir = tmp_path / "runs" / "hop"
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["env"]["mujoco"] == "hopper"
    ds = load_dataset(run_dir / "dataset")
    assert ds.obs_dim == 11 and ds.action_bounds == ((-1.0,) * 3, (1.0,) * 3) and len(ds) >= 1500
    np.testing.assert_array_equal(ds.costs, ds.terminations.astype(float))  # random hopping falls: hazards
    assert ds.costs.sum() > 0 and ds.provenance["kind"] == "random"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["environment"] == "Hopper-v5" and "D4RL" in metrics["reference"]["source"]
    for p in metrics["policies"].values():
        assert p["episodes"] == 12
        assert p["normalized_score"]["mean"] == pytest.approx(float(normalized_score("hopper", p["return"]["mean"])))
    gate = json.loads((run_dir / "gate.json").read_text())
    assert set(gate["decisions"]) == {"bc", "td3bc"}
    assert "hopper" in (run_dir / "memo.md").read_text() and (run_dir / "report.html").is_file()
