"""``guardrl gail`` in a run folder: trains from the run's logs or another dataset, exports like a learner, and
refuses what it cannot do."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from guardrl.cli import app
from guardrl.data import collect
from guardrl.envs import build_tables, default_layout
from guardrl.serve.service import PolicyService, ServeError
from guardrl.train import ScoresModel, TorchScriptPolicy

runner = CliRunner()


def test_gail_command_exports_a_policy_with_its_record(tiny_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    demos = tmp_path / "expert"
    collect(build_tables(default_layout()), "expert", 12, 4).save(demos)
    args = ["gail", str(run_dir), "--demos", str(demos), "--iterations", "3", "--episodes", "4", "-q"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "exact: return" in res.output and "serve it with --policy gail" in res.output
    record = json.loads((run_dir / "gail" / "gail.json").read_text())
    assert record["demonstrations"] == str(demos) and record["demonstration_episodes"] == 12
    assert record["config"]["iterations"] == 3 and len(record["history"]) == 3
    card = json.loads((run_dir / "policies" / "gail.json").read_text())
    assert card["imitation"]["method"] == "gail" and card["learner_config"]["episodes_per_iteration"] == 4
    assert card["imitation"]["demonstration_sha256"] == record["demonstration_sha256"] != card["dataset_sha256"]
    assert card["scores"]["kind"] == "logprob"
    scores = ScoresModel(run_dir / "policies" / "gail.scores.pt", "logprob")
    probe = [[0.0, 0.0], [3.0, 4.0]]
    assert scores(probe).shape == (2, 4)
    assert (scores(probe).argmax(axis=1) == TorchScriptPolicy(run_dir / "policies" / "gail.pt").greedy(probe)).all()
    with pytest.raises(ServeError, match="no verdict for gail"):  # the gate never judged it: shadow mode only
        PolicyService(run_dir, ["gail"], mode="canary", audit_log=tmp_path / "refused.jsonl")
    served = PolicyService(run_dir, ["gail"], mode="full", audit_log=tmp_path / "gail.jsonl", allow_gate_fail=True)
    try:
        answer = served.act([3.0, 4.0])
        assert answer["policy"] == "gail" and answer["decision"] in ("act", "defer")  # served behind the guard
        if answer["decision"] == "act":
            assert answer["action"] == int(TorchScriptPolicy(run_dir / "policies" / "gail.pt").greedy([[3.0, 4.0]])[0])
    finally:
        served.close()


def test_gail_command_refuses_a_learner_name_and_a_missing_dataset(tiny_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    res = runner.invoke(app, ["gail", str(run_dir), "--name", "bc", "--iterations", "1", "-q"])
    assert res.exit_code != 0 and "learner's name" in res.output
    res = runner.invoke(app, ["gail", str(run_dir), "--demos", str(tmp_path / "missing"), "-q"])
    assert res.exit_code != 0 and "missing" in res.output
    assert not (run_dir / "gail").exists() and not (run_dir / "policies" / "gail.pt").exists()


def test_gail_needs_safegrids_simulator(tmp_path):
    import yaml

    from guardrl.config import load_config
    from guardrl.errors import RunError
    from guardrl.run import RunContext, RunFolder
    from guardrl.run.gail import gail_in_run
    from guardrl.train.gail import GAILConfig

    path = tmp_path / "frozen.yaml"
    env = {"gym_id": "FrozenLake-v1", "gym_kwargs": {"is_slippery": True},
           "cost_rule": "terminated_without_success", "success_rule": "reward > 0"}  # fmt: skip
    path.write_text(yaml.safe_dump({"name": "frozen", "env": env, "collect": {"dataset": str(tmp_path / "logs")}}))
    ctx = RunContext(load_config(path), RunFolder(tmp_path / "run"))
    with pytest.raises(
        RunError, match="needs SafeGrid's simulator to roll the policy out; this run uses FrozenLake-v1"
    ):
        gail_in_run(ctx, GAILConfig(iterations=1))
