"""A run on the sepsis simulator's logs (``env: sepsis``): the physicians' logs made by the run, judged on the logs
alone under the relative limit, with the exact values beside the estimates in every artifact."""

import json

import yaml
from typer.testing import CliRunner

from guardrl.cli import app

runner = CliRunner()

SMALL = {
    "name": "sepsis-small",
    "env": "sepsis",
    "collect": {"regime": "physician", "n_episodes": 300, "seed": 4},
    "train": {"learners": ["bc", "spibb"], "bc": {"n_steps": 200, "batch_size": 64}},
    "world_model": {"n_members": 2, "steps": 100, "hidden_units": [32, 32], "max_classes": 512},
    "ope": {"epsilon": 0.0, "fqe_refits": 20, "n_bootstrap": 200, "model_episodes": 200},
    "gate": {"hazard_limit": 1.0, "hazard_vs_behaviour": 0.0, "confounded": True},
}


def test_sepsis_run_shows_exact_values_beside_the_estimates(tmp_path):
    path = tmp_path / "sepsis.yaml"
    path.write_text(yaml.safe_dump(SMALL))
    result = runner.invoke(app, ["run", "-c", str(path), "--runs-dir", str(tmp_path / "runs"), "--quiet"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "sepsis-small"
    metrics = json.loads((run / "metrics.json").read_text())
    physicians = metrics["behaviour_exact"]["hazard_prob"]
    assert abs(physicians - 0.0873) < 5e-4  # the physicians' exact mortality, whatever the logs
    ope = json.loads((run / "ope.json").read_text())
    gate = json.loads((run / "gate.json").read_text())
    assert set(ope["policies"]) == {"bc", "spibb"} and ope["propensities"] == "logged"
    for name, entry in ope["policies"].items():
        assert entry["truth_source"].startswith("exact")
        assert entry["truth"]["cost"]["mean"] == metrics["policies"][name]["exact"]["hazard_prob"]
        assert "survival_is" in entry["estimates"]["cost"]
        decision = gate["decisions"][name]
        rules = {r["rule"] for r in decision["reasons"]}
        assert "behaviour_hazard" in rules or "evidence" in rules
        if decision["decision"] == "PASS":  # never a policy that kills more patients than the physicians
            assert entry["truth"]["cost"]["mean"] <= physicians
    assert 0.0 < gate["behaviour_hazard"]["mean"] < 0.2
    html = (run / "report.html").read_text()
    memo = (run / "memo.md").read_text()
    assert "logged behaviour" in html and "exact (Sepsis-v0" in html and "1 - IS survival" in html
    assert "physicians" in memo and "mortality" in memo
