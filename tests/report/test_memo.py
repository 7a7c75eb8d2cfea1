"""The deployment memo: written from a run's artifacts, it names the verdict, the hazard evidence, the risks and
the rollout plan, and refuses to recommend what the gate did not PASS."""

import json

from guardrl.config import RunConfig, to_dict
from guardrl.report import build_memo

CONFIG = to_dict(RunConfig())


def _decision(name, verdict, hazard, ret, source="rollouts"):
    return {
        "policy": name,
        "decision": verdict,
        "reasons": [
            {"decision": verdict, "rule": "hazard", "message": f"hazard % {100 * hazard[0]:.2f} ({source})"},
            {"decision": "PASS", "rule": "audit", "message": "dataset audit: offline-RL-ready"},
        ],
        "evidence": {
            "hazard": {"mean": hazard[0], "low": hazard[1], "high": hazard[2], "source": source, "backed": True},
            "return": {"mean": ret, "low": ret - 1, "high": ret + 1, "source": source},
            "unsupported": {"rate": 0.02, "source": source},
            "ess_episodes": 4.0,
        },
    }


AUDIT = {
    "config": {"k": 5},
    "size": {"transitions": 16878, "episodes": 500, "n_actions": 4, "obs_dim": 2},
    "coverage": {"covered_share": 0.98, "states_with_thin_action": 0.7, "visited_states": 215},
    "verdict": {"verdict": "offline-RL-ready", "reasons": ["enough"]},
}


def _gate(*decisions):
    return {"config": {"hazard_limit": 0.01}, "decisions": {d["policy"]: d for d in decisions}}


def test_a_pass_gets_a_staged_rollout_with_its_thresholds():
    gate = _gate(
        _decision("bc", "FAIL", (0.044, 0.033, 0.055), 15.7),
        _decision("morel", "PASS", (0.0027, 0.0007, 0.0053), 21.2),
        _decision("safe-but-worse", "PASS", (0.001, 0.0, 0.002), 10.0),
    )
    memo = build_memo("default", "runs/default", CONFIG, AUDIT, None, None, None, gate)
    assert memo.recommended == "morel" and memo.stage == "staged"  # the PASS with the highest return
    text = memo.markdown()
    assert "roll out `morel` in stages" in memo.recommendation
    assert "| morel | PASS | 0.27 [0.07, 0.53] (rollouts) |" in text and "| bc | FAIL | 4.40 [3.30, 5.50]" in text
    assert "guardrl serve runs/default --policy morel --mode shadow" in text
    assert "--mode canary" in text and "10% of decisions" in text  # serve.canary_fraction
    assert "more than 2 hazard events per 1,000 policy decisions" in text  # serve.rollback_per_1000
    assert "states logged fewer than 5 times (out_of_support)" in text
    # risks computed from the artifacts: rule of three on 500 episodes, thin states, the margin to the limit
    assert "0.60%, the rule of three" in text and "2.0% of logged transitions" in text
    assert "hazard upper end 0.53% is 53% of the limit 1.00%" in text
    assert "4.0 effective logged episodes" in text


def test_caution_is_shadow_only_and_fail_is_no_deployment():
    caution = _gate(
        _decision("bc", "FAIL", (0.05, 0.04, 0.06), 15.0), _decision("cql", "CAUTION", (0.008, 0.0, 0.02), 19.0)
    )
    memo = build_memo("r", "runs/r", CONFIG, AUDIT, None, None, None, caution)
    assert memo.stage == "shadow-only" and memo.recommended == "cql"
    text = memo.markdown()
    assert "--mode shadow" in text and "--mode canary" not in text and "do not let it decide" in text
    assert "What must change before any canary: hazard: hazard % 0.80" in text

    fail = _gate(_decision("bc", "FAIL", (0.05, 0.04, 0.06), 15.0))
    memo = build_memo("r", "runs/r", CONFIG, AUDIT, None, None, None, fail)
    assert memo.recommended is None and memo.stage == "none"
    assert "do not deploy: every policy FAILed" in memo.recommendation and "guardrl serve" not in memo.markdown()

    memo = build_memo("r", "runs/r", CONFIG, None, None, None, None, None)
    assert "no gate verdicts" in memo.recommendation


def test_html_escapes_and_numbers_the_steps():
    gate = _gate(_decision("<b>x</b>", "PASS", (0.001, 0.0, 0.002), 20.0))
    page = build_memo("r", "runs/r", CONFIG, AUDIT, None, None, None, gate).html()
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert '<ol class="reasons"><li>Shadow:' in page


def test_the_run_writes_the_memo_into_the_report(tiny_run):
    memo = (tiny_run / "memo.md").read_text()
    page = (tiny_run / "report.html").read_text()
    gate = json.loads((tiny_run / "gate.json").read_text())
    assert 'id="memo"' in page and page.index('id="memo"') > page.index("Run config")  # the page ends with it
    for name, d in gate["decisions"].items():
        ev = d["evidence"]
        assert ev["hazard"]["source"] == "rollouts" and ev["return"]["source"] == "rollouts"
        assert f"| {name} | {d['decision']} |" in memo
    assert "## Risks the evidence cannot rule out" in memo and "## Rollout plan" in memo
    assert str(tiny_run) in memo or "No rollout" in memo  # commands name the run's real folder, not the temp one


def test_a_staged_rollout_replay_is_quoted():
    phase = {"hazard_events": 2, "policy_steps": 90, "deferrals": 10, "divergence_rate": 0.25}
    sim = {"arms": {arm: {p: dict(phase) for p in ("shadow", "canary", "full")}
                    for arm in ("guarded", "unguarded", "production")}}  # fmt: skip
    gate = _gate(_decision("morel", "PASS", (0.001, 0.0, 0.002), 20.0))
    text = build_memo("r", "runs/r", CONFIG, AUDIT, None, None, None, gate, {"morel": sim}).markdown()
    assert "Staged-rollout replay (rollout_sim/morel.json): hazard events over all phases: guarded 6" in text
    assert "the guard deferred 30 of 300 routed decisions (10.0%); shadow divergence 25.0% of steps" in text


def test_the_memo_says_which_hazard_limit_applied_and_the_behaviours_hazard():
    decisions = (_decision("morel", "PASS", (0.15, 0.14, 0.16), 21.2),)
    absolute = {**_gate(*decisions), "behaviour_hazard": {"mean": 0.2, "low": 0.18, "high": 0.22}}
    text = build_memo("r", "runs/r", CONFIG, AUDIT, None, None, None, absolute).markdown()
    assert "hazard limit is 1.00% per episode (absolute; the logged behaviour's own hazard" in text
    assert "20.00 [18.00, 22.00]%" in text
    relative = {**absolute, "config": {"hazard_limit": 1.0, "hazard_vs_behaviour": 0.0}}
    text = build_memo("r", "runs/r", CONFIG, AUDIT, None, None, None, relative).markdown()
    assert "a relative limit applies: no worse than the logged behaviour's hazard plus 0.00%" in text
