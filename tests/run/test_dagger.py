"""DAgger's loop on SafeGrid: the beta schedule, queries of new states first, the label budget, and that labels
from the exact planner on the learner's own states fix what the demonstrations got wrong."""

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from guardrl.cli import app
from guardrl.data import collect
from guardrl.errors import ConfigError
from guardrl.run.dagger import DaggerConfig, ExactScorer, _query, optimal_expert, run_dagger

runner = CliRunner()


class Majority:
    """A tabular learner for the loop's mechanics: the most frequent label of each observation (0 if unseen)."""

    def __init__(self, obs, actions):
        self.table = {}
        for key in {tuple(o) for o in obs.tolist()}:
            mask = (obs == np.asarray(key, dtype=np.float32)).all(axis=1)
            self.table[key] = int(np.bincount(actions[mask]).argmax())

    def predict(self, obs):
        return np.asarray([self.table.get(tuple(o), 0) for o in np.asarray(obs).tolist()], dtype=np.int64)


def test_queries_label_new_states_first():
    obs = np.asarray([[0, 0], [1, 0], [0, 0], [2, 0], [1, 0]], dtype=np.float32)
    picks = _query(obs, {(1.0, 0.0)}, 2, np.random.default_rng(0))
    assert sorted(tuple(obs[i]) for i in picks) == [(0.0, 0.0), (2.0, 0.0)]
    picks = _query(obs, {(1.0, 0.0)}, 4, np.random.default_rng(0))  # budget above the new states: repeats fill it
    assert len(set(picks.tolist())) == 4


def test_expert_labels_on_visited_states_fix_bad_demonstrations(tables):
    demos = collect(tables, "noisy", 30, 7)  # a noisy controller's actions: BC of them slips into hazards
    expert = optimal_expert(tables)
    cfg = DaggerConfig(iterations=4, labels_per_iteration=60, episodes_per_iteration=30, seed=1)
    fits = []

    def fit(obs, act, seed):
        fits.append(len(act))
        return Majority(obs, act)

    res = run_dagger(tables, demos.observations, demos.actions, expert, fit, cfg)
    assert [h["labels"] for h in res.history] == [0, 60, 120, 180, 240]
    assert [h["beta"] for h in res.history[1:]] == [0.5, 0.25, 0.125, 0.0625]
    assert fits == [len(demos.actions) + 60 * i for i in range(5)]  # retrained on the whole aggregate each round
    labels_obs, labels_act = res.observations[len(demos.actions) :], res.actions[len(demos.actions) :]
    steps = np.zeros(len(labels_act), dtype=np.int64)
    assert len({tuple(o) for o in labels_obs.tolist()}) > 60  # new states first, not the same cells again
    # every label is the planner's action (at the step it was visited; step 0 agrees on most cells)
    assert (labels_act == expert(labels_obs, steps)).mean() > 0.8
    first, last = res.history[0]["exact"], res.history[-1]["exact"]
    assert last["hazard_prob"] < first["hazard_prob"] and last["normalized_score"] > first["normalized_score"]


def test_validation_keeps_the_round_that_played_best(tables):
    demos = collect(tables, "noisy", 30, 7)
    learners = []

    def fit(obs, act, seed):
        learners.append(Majority(obs, act))
        return learners[-1]

    cfg = DaggerConfig(iterations=3, labels_per_iteration=40, episodes_per_iteration=20, validation_episodes=50)
    res = run_dagger(tables, demos.observations, demos.actions, optimal_expert(tables), fit, cfg)
    scores = [h["validation_return"] for h in res.history]
    best = int(np.argmax(scores))
    assert [h["chosen"] for h in res.history] == [r == best for r in range(4)]
    assert res.learner is learners[best]
    last = run_dagger(
        tables, demos.observations, demos.actions, optimal_expert(tables), fit, replace(cfg, validation_episodes=0)
    )
    assert last.learner is learners[-1] and "validation_return" not in last.history[0]


def test_exact_scorer_puts_the_optimum_at_100(tables):
    scorer = ExactScorer(tables)
    expert = optimal_expert(tables)
    values = scorer(lambda obs: expert(obs, np.zeros(len(obs), dtype=np.int64)))
    assert values["normalized_score"] == pytest.approx(100.0, abs=1.0) and values["hazard_prob"] < 0.01


def test_config_is_checked():
    with pytest.raises(ConfigError, match="beta_decay"):
        DaggerConfig(beta_decay=1.0)
    with pytest.raises(ConfigError, match="must be >= 1"):
        DaggerConfig(iterations=0)


def test_dagger_command_exports_a_policy_with_its_rounds(tiny_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    res = runner.invoke(app, ["dagger", str(run_dir), "--iterations", "2", "--labels", "20", "--episodes", "10"])
    assert res.exit_code == 0, res.output
    assert "round 2: 40 labels" in res.output
    record = json.loads((run_dir / "dagger" / "dagger.json").read_text())
    assert record["label_budget"] == 40 and record["expert"] == "optimal" and len(record["rounds"]) == 3
    card = json.loads((run_dir / "policies" / "dagger.json").read_text())
    assert card["imitation"]["label_budget"] == 40 and (run_dir / "policies" / "dagger.scores.pt").is_file()
    before = (run_dir / "policies" / "dagger.json").read_bytes()
    again = runner.invoke(app, ["dagger", str(run_dir), "--iterations", "1", "-q"])  # an earlier policy is kept
    assert again.exit_code == 1 and "pass --overwrite" in again.output
    assert (run_dir / "policies" / "dagger.json").read_bytes() == before
    bad = runner.invoke(app, ["dagger", str(run_dir), "--expert", "nope", "--overwrite", "-q"])
    assert bad.exit_code == 1 and "must look like 'package.module:attribute'" in bad.output


def test_the_gate_judges_an_imitation_policy_once_it_is_evaluated(tiny_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    args = ["dagger", str(run_dir), "--iterations", "1", "--labels", "20", "--episodes", "10", "--validation", "0"]
    assert runner.invoke(app, [*args, "-q"]).exit_code == 0
    res = runner.invoke(app, ["gate", str(run_dir)])  # not evaluated yet: judged, but never on no evidence a PASS
    assert res.exit_code == 0, res.output
    early = json.loads((run_dir / "gate.json").read_text())["decisions"]["dagger"]
    assert early["decision"] != "PASS"
    for stage in ("evaluate", "ope", "gate"):
        res = runner.invoke(app, [stage, str(run_dir), "-q"] if stage != "gate" else [stage, str(run_dir)])
        assert res.exit_code == 0, (stage, res.output)
    metrics = json.loads((run_dir / "metrics.json").read_text())["policies"]
    assert "exact" in metrics["dagger"] and metrics["dagger"]["n_episodes"] > 0
    assert "dagger" in json.loads((run_dir / "ope.json").read_text())["policies"]
    decision = json.loads((run_dir / "gate.json").read_text())["decisions"]["dagger"]
    assert decision["decision"] in ("PASS", "CAUTION", "FAIL") and decision["evidence"]["hazard"] is not None
