"""The recommendation: on hand-made gate results, the highest lower bound among PASS policies better than the
logged behaviour, ties to the one closest to the behaviour, none (with the reason) otherwise."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from guardrl.evaluate.metrics import Estimate
from guardrl.evaluate.recommend import recommend

BEHAVIOUR = Estimate(-13.5, -16.2, -10.9)


def verdict(decision, low, mean=None, source="rollouts", failing=()):
    reasons = [{"decision": "PASS", "rule": "audit", "message": "ok"}]
    reasons += [{"decision": decision, "rule": rule, "message": f"{rule} is not good enough"} for rule in failing]
    ret = {"mean": mean if mean is not None else low + 1.0, "low": low, "high": low + 2.0, "source": source}
    return {"decision": decision, "reasons": reasons, "evidence": {"return": ret}}


def test_the_highest_lower_bound_among_pass_policies_better_than_the_behaviour():
    decisions = {
        "bc": verdict("FAIL", 14.3, failing=["hazard"]),
        "cql": verdict("PASS", 20.1, mean=21.9),  # the highest mean, but a wider interval
        "morel": verdict("PASS", 20.8, mean=21.2),
        "spibb": verdict("CAUTION", 25.0, failing=["hazard"]),  # CAUTION is never recommended, however good
    }
    rec = recommend(decisions, BEHAVIOUR, {"cql": 0.5, "morel": 0.47, "bc": 0.45, "spibb": 0.4})
    assert rec["policy"] == "morel" and "20.8" in rec["reason"] and "-13.50 [-16.20, -10.90]" in rec["reason"]
    assert [r["policy"] for r in rec["ranking"]] == ["morel", "cql", "spibb", "bc"]
    assert [r["eligible"] for r in rec["ranking"]] == [True, True, False, False]
    assert rec["behaviour_return"] == {"mean": -13.5, "low": -16.2, "high": -10.9}


def test_a_tie_goes_to_the_policy_closest_to_the_logged_behaviour():
    decisions = {"mopo-0.05": verdict("PASS", 21.0), "morel": verdict("PASS", 21.0), "spibb": verdict("PASS", 20.0)}
    rec = recommend(decisions, BEHAVIOUR, {"mopo-0.05": 0.52, "morel": 0.47, "spibb": 0.30})
    assert rec["policy"] == "morel" and "tied with mopo-0.05" in rec["reason"]
    # an unknown mismatch counts as farthest
    rec = recommend(decisions, BEHAVIOUR, {"mopo-0.05": 0.52})
    assert rec["policy"] == "mopo-0.05"


def test_all_fail_gives_none_with_what_would_change_it():
    decisions = {"bc": verdict("FAIL", 14.3, failing=["hazard"]), "cql": verdict("CAUTION", 20.0, failing=["support"])}
    rec = recommend(decisions, BEHAVIOUR, {})
    assert rec["policy"] is None
    assert "no policy PASSed the gate; keep the current controller" in rec["reason"]
    assert "`cql` (CAUTION: support) needs logs of the actions it prefers" in rec["reason"]
    assert "`bc` (FAIL: hazard) needs more logs of the states it visits" in rec["reason"]


def test_a_safe_policy_no_better_than_what_already_runs_is_not_recommended():
    decisions = {"morel": verdict("PASS", -12.0, mean=-9.0)}  # its lower bound is inside the behaviour's interval
    rec = recommend(decisions, BEHAVIOUR, {})
    assert rec["policy"] is None and "no policy is better than what already runs" in rec["reason"]
    assert rec["ranking"][0]["eligible"] is False


def test_only_the_candidates_named_are_chosen_from():
    decisions = {"optimal": verdict("PASS", 21.6), "morel": verdict("PASS", 20.8)}  # a reference built from truth
    rec = recommend(decisions, BEHAVIOUR, {}, candidates=["morel"])
    assert rec["policy"] == "morel" and [r["policy"] for r in rec["ranking"]] == ["morel"]
    assert recommend({}, BEHAVIOUR, {})["policy"] is None


def test_the_run_writes_it_and_serve_serves_it_or_refuses(tiny_run, tmp_path, monkeypatch):
    from guardrl.cli import app

    rec = json.loads((tiny_run / "recommendation.json").read_text())
    behaviour = rec["behaviour_return"]
    assert behaviour["low"] <= behaviour["mean"] <= behaviour["high"]
    assert "Recommendation" in (tiny_run / "report.html").read_text()
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    runner = CliRunner()
    (run_dir / "recommendation.json").write_text(json.dumps({**rec, "policy": None, "reason": "nothing is safe"}))
    res = runner.invoke(app, ["serve", str(run_dir), "--audit-log", str(tmp_path / "a.jsonl")])
    assert res.exit_code == 1 and "no policy is recommended (nothing is safe)" in " ".join(res.output.split())
    served = {}

    def fake_run(app_, **kwargs):  # stands in for uvicorn: what would be served
        served["status"] = kwargs

    monkeypatch.setattr("uvicorn.run", fake_run)
    (run_dir / "recommendation.json").write_text(json.dumps({**rec, "policy": "cql", "reason": "test"}))
    res = runner.invoke(app, ["serve", str(run_dir), "--mode", "shadow", "--audit-log", str(tmp_path / "b.jsonl")])
    assert res.exit_code == 0, res.output
    assert "serving cql from" in res.output and served
    (run_dir / "recommendation.json").unlink()
    res = runner.invoke(app, ["serve", str(run_dir), "--audit-log", str(tmp_path / "c.jsonl")])
    assert res.exit_code == 1 and "guardrl recommend" in res.output


@pytest.mark.parametrize("command", ["recommend", "gate"])
def test_the_recommend_and_gate_commands_print_it(tiny_run, tmp_path, command):
    from guardrl.cli import app

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    (run_dir / "recommendation.json").unlink()
    res = CliRunner().invoke(app, [command, str(run_dir), "-q"])
    assert res.exit_code == 0 and "recommendation: " in res.output, res.output
    assert json.loads((run_dir / "recommendation.json").read_text())["ranking"]
