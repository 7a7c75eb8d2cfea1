"""``guardrl judge``: policies a user brings, in every format, judged on logs (a run's dataset or an imported CSV)
with a run's evidence and schemas, training nothing; a bad policy leaves nothing behind."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from guardrl.cli import app
from guardrl.data import collect
from guardrl.envs import evaluate_exact, hazard_seeking_policy, solve_optimal, states_to_obs, stationary

runner = CliRunner()
SMALL = """
{env}
world_model: {{n_members: 2, steps: 300, hidden_units: [32, 32]}}
ope: {{n_bootstrap: 200, fqe_refits: 40, model_episodes: 400}}
evaluate: {{n_episodes: 300}}
"""


class Lookup(torch.nn.Module):
    """A table policy as a network: one-hot scores (x 5) of the optimum's action in each cell."""

    def __init__(self, actions: np.ndarray, size: int):
        super().__init__()
        self.scores = torch.nn.Parameter(5.0 * torch.eye(4)[torch.as_tensor(actions)], requires_grad=False)
        self.size = size

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        cell = (obs[:, 1] * self.size + obs[:, 0]).round().long()
        return self.scores[cell]


@pytest.fixture(scope="module")
def judged(tmp_path_factory, tables):
    """The default world's safe logs, and the exact optimum in four formats, a stochastic 0.1-optimum and the
    hazard-seeking policy as tables."""
    root = tmp_path_factory.mktemp("judge")
    ds = collect(tables, "safe", 300, 0)
    ds.save(root / "logs")
    lay = tables.layout
    cells = states_to_obs(lay, np.arange(lay.n_states))
    optimal = stationary(solve_optimal(tables)[0]).probs[0].argmax(axis=1)
    frame = pd.DataFrame({"obs_0": cells[:, 0], "obs_1": cells[:, 1]})
    frame.assign(action=optimal).to_csv(root / "optimal.csv", index=False)
    soft = 0.9 * np.eye(4)[optimal] + 0.1 / 4
    frame.assign(**{f"prob_{k}": soft[:, k] for k in range(4)}).to_parquet(root / "soft.parquet")
    seek = hazard_seeking_policy(tables).probs[0].argmax(axis=1)
    frame.assign(action=seek).to_csv(root / "seeker.csv", index=False)
    module = torch.jit.script(Lookup(optimal, lay.size))
    module.save(str(root / "optimal.pt"))
    torch.onnx.export(module, (torch.zeros(1, 2),), str(root / "optimal.onnx"), dynamo=False, opset_version=17,
                      input_names=["observation"], output_names=["scores"],
                      dynamic_axes={"observation": {0: "batch"}, "scores": {0: "batch"}})  # fmt: skip
    exact = {"soft": evaluate_exact(type(stationary(solve_optimal(tables)[0]))(tables, soft[None], "soft"))}
    return root, exact


def _judge(root, out, *extra, env="env: none"):
    (root / "small.yaml").write_text(SMALL.format(env=env))
    args = ["judge", str(root / "logs"), "--out", str(out), "-c", str(root / "small.yaml"), "--quiet"]
    return runner.invoke(app, [*args, *extra])


def test_every_format_is_judged_alike_and_stochastic_policies_by_their_probabilities(judged):
    root, exact = judged
    out = root / "logs-only"
    policies = ["optimal.csv", "optimal.pt", "optimal.onnx", "soft.parquet", "seeker.csv"]
    result = _judge(root, out, *sum((["-p", str(root / p)] for p in policies), []))
    assert result.exit_code == 0, result.output
    ope = json.loads((out / "ope.json").read_text())["policies"]
    gate = json.loads((out / "gate.json").read_text())["decisions"]
    portfolio = json.loads((out / "portfolio.json").read_text())
    assert set(ope) == {"optimal", "optimal-2", "optimal-3", "soft", "seeker"}
    assert portfolio["sources"]["optimal-2"] == {"file": str(root / "optimal.pt"), "format": "torchscript",
                                                 "output": "scores"}  # fmt: skip
    assert portfolio["sources"]["soft"]["output"] == "probabilities"
    for a in ("optimal-2", "optimal-3"):  # the same policy through a table, TorchScript and ONNX
        for signal in ("return", "cost"):
            for est, value in ope["optimal"]["estimates"][signal].items():
                assert ope[a]["estimates"][signal][est]["mean"] == pytest.approx(value["mean"], abs=1e-9)
    assert ope["soft"]["epsilon"] is None  # judged as the stochastic policy it is, not softened again
    assert "survival_is" not in ope["optimal"]["estimates"]["cost"]  # the confounded gate's bound only
    assert ope["soft"]["estimates"]["return"]["wis"]["mean"] != ope["optimal"]["estimates"]["return"]["wis"]["mean"]
    assert gate["seeker"]["decision"] == "FAIL"
    assert {r["rule"] for r in gate["optimal"]["reasons"]} >= {"hazard", "bc", "support", "ope"}
    assert "no BC" in next(r["message"] for r in gate["optimal"]["reasons"] if r["rule"] == "bc")
    assert (out / "report.html").is_file() and (out / "memo.md").is_file()
    assert json.loads((out / "recommendation.json").read_text())["policy"] in (None, *ope)
    assert not (out / "policies").exists() and not (out / "training.json").exists()  # nothing trained


def test_with_a_simulator_rollouts_and_exact_values_join_the_evidence(judged):
    root, exact = judged
    out = root / "with-sim"
    result = _judge(root, out, "-p", str(root / "soft.parquet"), "-p", str(root / "seeker.csv"), env="")
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())["policies"]
    assert metrics["soft"]["exact"]["expected_return"] == pytest.approx(exact["soft"].expected_return)
    assert metrics["seeker"]["hazard_rate"]["mean"] > 0.5
    gate = json.loads((out / "gate.json").read_text())["decisions"]
    assert gate["seeker"]["decision"] == "FAIL"
    assert "rollouts" in next(r["message"] for r in gate["soft"]["reasons"] if r["rule"] == "hazard")


def test_an_imported_csv_is_judged(judged, tmp_path):
    root, _ = judged
    csv = tmp_path / "logs.csv"
    assert runner.invoke(app, ["export", str(root / "logs"), "--out", str(csv), "-f", "csv", "--quiet"]).exit_code == 0
    imported = tmp_path / "imported"
    result = runner.invoke(app, ["import", str(csv), "--n-actions", "4", "--out", str(imported), "--quiet"])
    assert result.exit_code == 0, result.output
    (tmp_path / "small.yaml").write_text(SMALL.format(env="env: none"))
    out = tmp_path / "judged"
    result = runner.invoke(app, ["judge", str(imported), "-p", str(root / "optimal.csv"), "--out", str(out),
                                 "-c", str(tmp_path / "small.yaml"), "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "optimal" in json.loads((out / "gate.json").read_text())["decisions"]


@pytest.mark.parametrize(
    "policy, message",
    [
        ("model.d3", "never loads one"),
        ("mypolicy:act", "pass --allow-code"),
        ("bad.csv", "returned action 7.0, not an integer in [0, 4) on observation 0"),
    ],
)
def test_a_bad_policy_writes_nothing(judged, tmp_path, policy, message):
    root, _ = judged
    (tmp_path / "model.d3").write_bytes(b"\x80\x04K\x01.")
    cells = pd.read_csv(root / "optimal.csv")
    cells.assign(action=7).to_csv(tmp_path / "bad.csv", index=False)
    spec = policy if ":" in policy else str(tmp_path / policy)
    out = tmp_path / "out"
    result = runner.invoke(app, ["judge", str(root / "logs"), "-p", str(root / "optimal.csv"), "-p", spec,
                                 "--out", str(out)])  # fmt: skip
    assert result.exit_code == 1 and message in result.output.replace("\n", "")
    assert not out.exists() and not list(tmp_path.glob(".out*"))
