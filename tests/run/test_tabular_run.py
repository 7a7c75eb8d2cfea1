"""A whole run with the tabular learners: the world model is fitted once and shared, the plans are exported,
evaluated exactly, estimated off-policy, gated and served like the d3rlpy learners."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from guardrl.config import RunConfig
from guardrl.train import TrainConfig
from guardrl.train.config import AUTO_PORTFOLIO, MOReLConfig, WorldModelConfig


def test_discrete_runs_default_to_the_portfolio_and_candidates_name_their_setting() -> None:
    from guardrl.config import EnvConfig

    assert RunConfig().train.learners == "auto" and RunConfig().train.chosen == AUTO_PORTFOLIO
    gym = RunConfig(env=EnvConfig(gym_id="CartPole-v1"), collect=dataclasses.replace(RunConfig().collect,
                    behaviour="guardrl.envs.controllers:uniform_random"))  # fmt: skip
    assert gym.train.learners == "auto"
    assert RunConfig(train=TrainConfig(learners=("cql",))).train.learners == ("cql",)
    assert RunConfig().needs_world_model and not RunConfig(train=TrainConfig(learners=("bc",))).needs_world_model
    train = TrainConfig(learners=("bc", "mopo-0.2", "spibb-10", "morel-12", "cql-3"))
    assert train.config_of("mopo-0.2").penalty == 0.2 and train.config_of("spibb-10").n_wedge == 10
    assert train.config_of("morel-12").min_count == 12 and train.config_of("cql-3").alpha == 3.0
    assert train.config_of("bc") == train.bc and train.kinds == ("bc", "mopo", "spibb", "morel", "cql")
    for bad, message in (("bc-2", "only cql, spibb, mopo, morel take a setting"), ("mopo-high", "not a value"),
                         ("ppo", "unknown")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            TrainConfig(learners=("bc", bad))


def test_the_portfolio_keeps_what_applies_to_the_logs(tables) -> None:
    from guardrl.data import collect
    from guardrl.data.audit import AuditConfig
    from guardrl.train.trainer import portfolio_skips

    ds = collect(tables, "safe", 30, seed=0)
    auto = TrainConfig(learners="auto")

    class Model:
        kind = "delta"

    skips = portfolio_skips(auto, ds, AuditConfig(), Model())
    assert set(skips) == {"cql-1.5"} and "list cql in train.learners" in skips["cql-1.5"]
    Model.kind = "gaussian"
    assert set(portfolio_skips(auto, ds, AuditConfig(), Model())) == {"cql-1.5", "mopo-0.05", "mopo-0.1", "morel-5",
                                                                      "morel-10"}  # fmt: skip
    few = portfolio_skips(auto, ds, AuditConfig(max_exact_states=3), Model())  # states the audit does not index
    assert set(few) == {"spibb-10", "spibb-20", "mopo-0.05", "mopo-0.1", "morel-5", "morel-10"}
    assert "no table of states to plan over" in few["spibb-10"]
    assert portfolio_skips(TrainConfig(learners=("bc", "cql")), ds, AuditConfig(), Model()) == {}  # as listed


def test_run_with_tabular_learners(tmp_path, tiny_config) -> None:  # type: ignore[no-untyped-def]
    from guardrl.run import run
    from guardrl.serve.service import PolicyService

    cfg = dataclasses.replace(
        tiny_config,
        name="tabular",
        train=dataclasses.replace(tiny_config.train, learners=("bc", "spibb", "morel"),
                                  morel=MOReLConfig(halt_penalty=300.0)),
        world_model=WorldModelConfig(n_members=2, steps=120, batch_size=128),
    )  # fmt: skip
    run_dir, metrics = run(cfg, tmp_path, show_progress=False)
    assert (run_dir / "world_model" / "model.json").is_file()
    for name in ("spibb", "morel"):
        entry = metrics["policies"][name]
        assert 0.0 <= entry["exact"]["hazard_prob"] <= 1.0 and np.isfinite(entry["exact"]["expected_return"])
        card = json.loads((run_dir / "policies" / f"{name}.json").read_text())
        assert card["plan"]["horizon"] >= 1 and card["learner_config"]["hazard_budget"] is True
        assert (run_dir / "policies" / f"{name}.onnx").is_file()
    assert json.loads((run_dir / "policies" / "morel.json").read_text())["plan"]["halt_penalty"] == 300.0
    ope = json.loads((run_dir / "ope.json").read_text())
    assert {"spibb", "morel"} <= set(ope["policies"])
    gate = json.loads((run_dir / "gate.json").read_text())
    assert {"spibb", "morel"} <= set(gate["decisions"])
    service = PolicyService(run_dir, ["spibb", "morel"], mode="full", audit_log=tmp_path / "audit.jsonl",
                            allow_gate_fail=True)  # fmt: skip
    for policy in ("spibb", "morel"):
        decision = service.act([0.0, 0.0], policy=policy)
        assert decision["policy"] == policy and 0 <= decision["action"] < 4
