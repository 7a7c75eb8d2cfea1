"""The staged-rollout simulation: common random numbers across arms, so differences come from who decides."""

import json
from dataclasses import replace

from typer.testing import CliRunner

from guardrl.cli import app
from guardrl.config import ServeConfig, load_config
from guardrl.envs import build_tables
from guardrl.serve.rollout_sim import PHASES, RolloutSimConfig, simulate_rollout
from guardrl.serve.served_run import ServedRun

SMALL = RolloutSimConfig(shadow_episodes=40, canary_episodes=60, full_episodes=80, chunk=20, seed=5)


def _arms(run_dir, **serve):
    cfg = load_config(run_dir / "config.yaml")
    cfg = replace(cfg, serve=replace(ServeConfig(), **serve))
    run = ServedRun.open(run_dir, cfg)
    return simulate_rollout(build_tables(cfg.env.build()), run.load_policy("cql").guard, cfg.serve, SMALL)


def test_a_guard_that_defers_everything_reproduces_production_exactly(tiny_run):
    arms = _arms(tiny_run, min_state_count=10**9, canary_fraction=0.5)
    for phase in PHASES:
        guarded, production = arms["guarded"][phase], arms["production"][phase]
        assert guarded["policy_steps"] == 0 and production["policy_steps"] == 0
        for key in ("hazard_events", "goals", "steps", "mean_return"):
            assert guarded[key] == production[key], (phase, key)
    assert arms["guarded"]["full"]["deferrals"] == arms["guarded"]["full"]["steps"]  # every step was deferred


def test_phases_route_as_configured(tiny_run):
    arms = _arms(tiny_run, min_state_count=0, min_q_gap=0.0, defer_unsupported=False, canary_fraction=0.5,
                 rollback_per_1000=1000.0)  # fmt: skip
    for arm in ("guarded", "unguarded", "production"):
        assert [arms[arm][p]["episodes"] for p in PHASES] == [40, 60, 80]
        assert arms[arm]["shadow"]["policy_steps"] == 0  # production acts in shadow mode
        # the shadow phase is the same for every arm: same draws, same decisions
        assert arms[arm]["shadow"]["hazard_events"] == arms["production"]["shadow"]["hazard_events"]
    unguarded = arms["unguarded"]
    assert 0 < unguarded["canary"]["policy_steps"] < unguarded["canary"]["steps"]  # about half the episodes
    assert unguarded["full"]["policy_steps"] == unguarded["full"]["steps"] and unguarded["full"]["deferrals"] == 0
    assert arms["production"]["full"]["policy_steps"] == 0
    for arm in ("guarded", "unguarded"):
        for p in PHASES:
            assert arms[arm][p]["policy_hazard_events"] <= arms[arm][p]["hazard_events"]


def test_cli_writes_the_json_and_the_table(tiny_run):
    res = CliRunner().invoke(app, ["rollout-sim", str(tiny_run), "--policy", "cql", "--shadow", "20", "--canary",
                                   "20", "--full", "20", "--chunk", "10"])  # fmt: skip
    assert res.exit_code == 0, res.output
    result = json.loads((tiny_run / "rollout_sim" / "cql.json").read_text())
    assert result["config"]["full_episodes"] == 20 and set(result["arms"]) == {"guarded", "unguarded", "production"}
    assert "| full | 20 |" in (tiny_run / "rollout_sim" / "cql.md").read_text()
