"""A whole run with the tabular learners: the world model is fitted once and shared, the plans are exported,
evaluated exactly, estimated off-policy, gated and served like the d3rlpy learners."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from guardrl.config import RunConfig
from guardrl.train import TrainConfig
from guardrl.train.config import DEFAULT_LEARNERS, GRID_LEARNERS, MOReLConfig, WorldModelConfig


def test_default_learners_depend_on_the_environment() -> None:
    from guardrl.config import EnvConfig

    assert RunConfig().train.learners == GRID_LEARNERS == ("bc", "morel")
    gym = RunConfig(env=EnvConfig(gym_id="CartPole-v1"), collect=dataclasses.replace(RunConfig().collect,
                    behaviour="guardrl.envs.controllers:uniform_random"))  # fmt: skip
    assert gym.train.learners == DEFAULT_LEARNERS == ("bc", "cql")
    assert RunConfig(train=TrainConfig(learners=("cql",))).train.learners == ("cql",)
    assert RunConfig().needs_world_model and not RunConfig(train=TrainConfig(learners=("bc",))).needs_world_model


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
