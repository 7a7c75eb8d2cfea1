"""``guardrl judge`` on one-step logs (contextual bandits): imported with and without a cost column."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from guardrl.cli import app
from guardrl.data import load_dataset

runner = CliRunner()
N_CTX, N_ACT, ROWS = 4, 6, 6000


@pytest.fixture(scope="module")
def bandit(tmp_path_factory):
    """Logs of a softmax logger over 4 contexts x 6 actions with known click and cost rates, and a stochastic
    target as a policy table; with the target's true click and cost rates."""
    root = tmp_path_factory.mktemp("bandit")
    rng = np.random.default_rng(5)
    clicks = rng.uniform(0.02, 0.2, size=(N_CTX, N_ACT))
    costs = np.zeros((N_CTX, N_ACT))
    costs[:, 5] = 0.3  # action 5 is the risky one
    logits = rng.normal(0.0, 0.7, size=(N_CTX, N_ACT))
    mu = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    ctx = rng.integers(0, N_CTX, size=ROWS)
    act = (rng.random(ROWS)[:, None] > mu[ctx].cumsum(axis=1)).sum(axis=1)
    log = pd.DataFrame({
        "episode_id": np.arange(ROWS), "step": 0, "obs_0": ctx.astype(float), "action": act,
        "reward": (rng.random(ROWS) < clicks[ctx, act]).astype(float), "terminated": True, "truncated": False,
        "cost": (rng.random(ROWS) < costs[ctx, act]).astype(float), "propensity": mu[ctx, act],
    })  # fmt: skip
    log.to_csv(root / "with_cost.csv", index=False)
    log.drop(columns="cost").to_csv(root / "no_cost.csv", index=False)
    target = np.full((N_CTX, N_ACT), 0.04)
    target[np.arange(N_CTX), clicks.argmax(axis=1)] = 0.8  # mostly each context's best item
    table = pd.DataFrame({"obs_0": np.arange(N_CTX, dtype=float)})
    table.assign(**{f"prob_{k}": target[:, k] for k in range(N_ACT)}).to_csv(root / "vendor.csv", index=False)
    # contexts are uniform: the target's true rates are the average over contexts
    truth = {"return": float((target * clicks).sum(axis=1).mean()), "cost": float((target * costs).sum(axis=1).mean())}
    for name in ("with_cost", "no_cost"):
        args = ["import", str(root / f"{name}.csv"), "--n-actions", str(N_ACT), "--out", str(root / name), "--quiet"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    return root, truth


def _judge(root, logs, out):
    return runner.invoke(app, ["judge", str(root / logs), "-p", str(root / "vendor.csv"), "--out", str(out), "--quiet"])


def test_one_step_logs_get_the_bandit_estimators_with_the_hazard_from_the_cost_column(bandit, tmp_path):
    root, truth = bandit
    assert load_dataset(root / "with_cost").provenance["costs_logged"] is True
    result = _judge(root, "with_cost", tmp_path / "j")
    assert result.exit_code == 0, result.output
    ope = json.loads((tmp_path / "j" / "ope.json").read_text())["policies"]["vendor"]
    assert ope["bandit"]["rows"] == ROWS and ope["bandit"]["contexts"] == N_CTX
    assert ope["weights"]["min_propensity"] > 0 and ope["weights"]["ess_episodes"] > 100
    for signal in ("return", "cost"):
        est = ope["estimates"][signal]
        assert set(est) == {"ips", "snips", "dm", "dr", "switch_dr"}
        for key in ("ips", "snips", "dr"):
            assert est[key]["low"] <= truth[signal] <= est[key]["high"], (signal, key, est[key], truth[signal])
    # cross-fitted: DR is not the reward model's direct estimate
    assert ope["estimates"]["return"]["dr"]["mean"] != ope["estimates"]["return"]["dm"]["mean"]
    decision = json.loads((tmp_path / "j" / "gate.json").read_text())["decisions"]["vendor"]
    hazard = next(r for r in decision["reasons"] if r["rule"] == "hazard")
    # 1.2% hazard by design (the target plays the risky action 5 with 0.04, whose cost rate is 0.3): above 1%
    assert truth["cost"] > 0.01 and hazard["decision"] == "FAIL" and "ips/snips/dr" in hazard["message"]
    assert not (tmp_path / "j" / "world_model").exists()  # one step: no trajectories to model


def test_without_a_cost_column_the_hazard_is_not_judged(bandit, tmp_path):
    root, truth = bandit
    assert load_dataset(root / "no_cost").provenance["costs_logged"] is False
    result = _judge(root, "no_cost", tmp_path / "j")
    assert result.exit_code == 0, result.output
    ope = json.loads((tmp_path / "j" / "ope.json").read_text())["policies"]["vendor"]
    assert set(ope["estimates"]) == {"return"} and ope["costs_logged"] is False
    decision = json.loads((tmp_path / "j" / "gate.json").read_text())["decisions"]["vendor"]
    hazard = next(r for r in decision["reasons"] if r["rule"] == "hazard")
    assert hazard["message"].startswith("not judged")
    # the target is better than the logger (its true click rate above the logged mean): nothing else holds it back
    logged = pd.read_csv(root / "no_cost.csv")["reward"].mean()
    assert truth["return"] > logged + 0.03
    assert decision["decision"] == "PASS", decision["reasons"]
    recommendation = json.loads((tmp_path / "j" / "recommendation.json").read_text())
    assert recommendation["policy"] == "vendor"
