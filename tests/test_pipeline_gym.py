"""A gymnasium environment end to end: FrozenLake logs imported from CSV, then the whole pipeline."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from guardrl.cli import app
from guardrl.config import ConfigError, RunConfig, from_dict
from guardrl.data.collect import collect_gym
from guardrl.envs.controllers import toy_text_controller
from guardrl.envs.gym_env import GymSimulator, GymSpec

runner = CliRunner()
FROZEN_ENV = {
    "gym_id": "FrozenLake-v1",
    "gym_kwargs": {"map_name": "4x4", "is_slippery": True},
    "cost_rule": "terminated_without_success",
    "success_rule": "reward > 0",
}


@pytest.fixture(scope="module")
def frozenlake_csv(tmp_path_factory):
    """An operator's log as users have them: one integer state column, their own column names."""
    spec = GymSpec("FrozenLake-v1", {"is_slippery": True})
    ds = collect_gym(GymSimulator(spec), toy_text_controller(epsilon=0.2), 400, seed=5, provenance={})
    path = tmp_path_factory.mktemp("logs") / "frozenlake.csv"
    pd.DataFrame({
        "episode": ds.episode_ids, "t": ds.steps, "state": np.argmax(ds.observations, axis=1),
        "decision": ds.actions, "reward": ds.rewards, "terminated": ds.terminations, "truncated": ds.truncations,
        "propensity": ds.propensities,
    }).to_csv(path, index=False)  # fmt: skip
    return path


def tiny_gym_config(dataset: str, **collect) -> dict:
    return {
        "name": "frozen",
        "env": FROZEN_ENV,
        "collect": {"dataset": dataset, **collect},
        "train": {"bc": {"n_steps": 300, "batch_size": 64}, "cql": {"n_steps": 300, "batch_size": 64}},
        "evaluate": {"n_episodes": 300, "seeds": [11, 12], "n_bootstrap": 200},
        "ope": {"fqe_steps": 60, "n_bootstrap": 200},
    }


def test_frozenlake_pipeline_from_an_imported_csv(tmp_path, frozenlake_csv):
    ds_dir = tmp_path / "imported"
    result = runner.invoke(app, [
        "import", str(frozenlake_csv), "--format", "csv", "--n-actions", "4", "--out", str(ds_dir),
        "--mapping", "episode_id=episode", "--mapping", "step=t", "--mapping", "action=decision",
        "--mapping", "obs_column=state",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    cfg_path = tmp_path / "frozen.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_gym_config(str(ds_dir))))
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["run", "-c", str(cfg_path), "--runs-dir", str(runs), "-q"])
    assert result.exit_code == 0, result.output
    run_dir = runs / "frozen"
    meta = json.loads((run_dir / "dataset" / "metadata.json").read_text())
    assert meta["obs_dim"] == 16  # the state column became FrozenLake's one-hot observation
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["environment"] == "FrozenLake-v1"
    # the default portfolio: the states are indexed (16 one-hot cells), so the tabular planners train and CQL not
    portfolio = json.loads((run_dir / "portfolio.json").read_text())
    assert portfolio["candidates"] == ["bc", "spibb-10", "spibb-20", "mopo-0.05", "mopo-0.1", "morel-5", "morel-10"]
    assert list(portfolio["skipped"]) == ["cql-1.5"]
    assert set(metrics["policies"]) == {"random", *portfolio["candidates"]}  # imported: no behaviour to roll out
    pol = metrics["policies"]
    assert pol["bc"]["n_episodes"] == 300
    # the controller's greedy action reaches the goal about 3 times in 4; a random walker about 1 in 70
    assert pol["random"]["goal_rate"]["mean"] < 0.05
    assert pol["bc"]["goal_rate"]["mean"] > 0.5
    assert pol["bc"]["hazard_rate"]["mean"] < 0.5 < pol["random"]["hazard_rate"]["mean"]
    assert pol["bc"]["mismatch"]["rate"] < 0.4
    assert "normalized_score" not in pol["bc"]  # no known optimum configured
    gate = json.loads((run_dir / "gate.json").read_text())
    assert set(gate["decisions"]) == set(portfolio["candidates"])
    ranking = json.loads((run_dir / "recommendation.json").read_text())["ranking"]
    assert {r["policy"] for r in ranking} == set(portfolio["candidates"])  # every candidate is ranked
    ope = json.loads((run_dir / "ope.json").read_text())
    truth = ope["policies"]["bc"]["truth"]["return"]["mean"]
    assert truth == pytest.approx(pol["bc"]["return"]["mean"], abs=0.1)
    est = ope["policies"]["bc"]["estimates"]
    assert all(0.0 <= e["mean"] <= 1.0 for e in est["return"].values())  # FrozenLake returns lie in [0, 1]
    # the CSV logged no cost: the env's cost rule (a hole = terminated without the goal) supplied it
    provenance = meta["provenance"]
    assert provenance["derived_from_env_rules"] == {"successes": "reward > 0", "costs": "terminated_without_success"}
    assert 0.05 < est["cost"]["wis"]["mean"] < 0.6
    card = json.loads((run_dir / "policies" / "bc.json").read_text())
    assert card["input"]["shape"] == ["batch", 16]
    assert (run_dir / "report.html").is_file() and not (run_dir / "plots" / "state_visitation.png").exists()


def test_frozenlake_collects_with_an_importable_behaviour(tmp_path):
    cfg = tiny_gym_config(None, behaviour="guardrl.envs.controllers:toy_text_controller",
                          behaviour_kwargs={"epsilon": 0.3}, n_episodes=150)  # fmt: skip
    cfg["train"]["learners"] = ["bc"]
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    result = runner.invoke(app, ["run", "-c", str(cfg_path), "--runs-dir", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "frozen" / "metrics.json").read_text())
    assert set(metrics["policies"]) == {"behaviour", "random", "bc"}
    ds = pd.read_parquet(tmp_path / "frozen" / "dataset" / "transitions.parquet")
    # epsilon 0.3 over 4 actions: every propensity is 0.075, 0.3 + 0.075 or a split greedy share
    assert ds["propensity"].between(0.075 - 1e-9, 1.0).all() and ds["propensity"].min() == pytest.approx(0.075)
    provenance = json.loads((tmp_path / "frozen" / "dataset" / "metadata.json").read_text())["provenance"]
    assert provenance["behaviour_kwargs"] == {"epsilon": 0.3}


def test_imported_logs_must_fit_the_environment(tmp_path, frozenlake_csv):
    ds_dir = tmp_path / "imported"
    runner.invoke(app, ["import", str(frozenlake_csv), "-f", "csv", "--n-actions", "5", "--out", str(ds_dir),
                        "--mapping", "episode_id=episode", "--mapping", "step=t", "--mapping", "action=decision",
                        "--mapping", "obs_column=state"])  # fmt: skip
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_gym_config(str(ds_dir))))
    result = runner.invoke(app, ["run", "-c", str(cfg_path), "--runs-dir", str(tmp_path / "runs"), "-q"])
    assert result.exit_code == 1
    assert "5 actions, but FrozenLake-v1" in result.output and "4 actions" in result.output
    assert not (tmp_path / "runs" / "frozen").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"env": FROZEN_ENV}, "needs collect.behaviour"),
        ({"env": FROZEN_ENV, "collect": {"dataset": "x"}, "train": {"encoder": "grid"}}, "train.encoder"),
        ({"env": {**FROZEN_ENV, "cost_rule": "reward < nothing"}}, "env.cost_rule"),
        ({"collect": {"behaviour": "m:f"}}, "collect.behaviour: applies to gymnasium envs"),
        ({"env": FROZEN_ENV, "collect": {"dataset": "x"}, "ope": {"validate": True}}, "ope.validate"),
    ],
)
def test_gym_config_errors_name_the_field(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(RunConfig, data)
