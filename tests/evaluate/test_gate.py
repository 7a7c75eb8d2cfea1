import dataclasses
import json

from guardrl.config import CollectConfig, RunConfig
from guardrl.evaluate import EvalConfig
from guardrl.evaluate.gate import Evidence, GateConfig, OPEEvidence, decide, gate
from guardrl.evaluate.metrics import Estimate
from guardrl.evaluate.ope import OPEConfig
from guardrl.run import run
from guardrl.train import BCConfig, DQNConfig, TrainConfig

CFG = GateConfig()
RANGE = 136.0


def ci(mean, low=None, high=None):
    return Estimate(mean, mean if low is None else low, mean if high is None else high)


def ope(fqe, dr, ess=1.0):
    est = {"return": {"fqe": ci(fqe), "dr": ci(dr)}, "cost": {"fqe": ci(0.0), "dr": ci(0.0, 0.0, 0.005)}}
    return OPEEvidence(est, ess)


BC = Evidence("bc", hazard=ci(0.002, 0.0, 0.006), ret=ci(15.0, 14.0, 16.0), ope=ope(15, 15), unsupported_rate=0.0,
              is_bc=True)  # fmt: skip


def reasons(result, rule):
    return [r for r in result["reasons"] if r["rule"] == rule]


def test_safe_better_supported_policy_passes():
    ev = Evidence("cql", hazard=ci(0.0, 0.0, 0.002), ret=ci(21.6, 21.5, 21.7), ope=ope(20.0, 21.0),
                  unsupported_rate=0.01)  # fmt: skip
    result = decide(ev, BC, "offline-RL-ready", RANGE, CFG)
    assert result["decision"] == "PASS"
    assert {r["rule"] for r in result["reasons"]} == {"audit", "hazard", "bc", "support", "ope"}


def test_hazard_above_limit_fails_and_a_straddling_interval_cautions():
    unsafe = Evidence("dqn", hazard=ci(0.05, 0.04, 0.06), ret=ci(16.0), ope=ope(16, 16), unsupported_rate=0.0)
    assert decide(unsafe, BC, "offline-RL-ready", RANGE, CFG)["decision"] == "FAIL"
    close = dataclasses.replace(unsafe, hazard=ci(0.005, 0.001, 0.012), ret=ci(20.0, 19.0, 21.0))
    result = decide(close, BC, "offline-RL-ready", RANGE, CFG)
    assert result["decision"] == "CAUTION" and "upper bound reaches" in reasons(result, "hazard")[0]["message"]


def test_missing_evidence_never_passes():
    bare = Evidence("x")
    result = decide(bare, BC, None, RANGE, CFG)
    assert result["decision"] == "FAIL"
    messages = " ".join(r["message"] for r in result["reasons"])
    assert "no dataset audit" in messages and "no hazard estimate" in messages
    assert "no unsupported-action rate" in messages and "no return estimate" in messages
    # OPE cost alone is acceptable hazard evidence (no simulator), but support is then decisive
    field_only = Evidence("y", ope=ope(20, 20.5), unsupported_rate=0.25, unsupported_source="logs")
    result = decide(field_only, BC, "offline-RL-ready", RANGE, CFG)
    assert "OPE cost" in reasons(result, "hazard")[0]["message"]
    assert reasons(result, "support")[0]["decision"] == "FAIL" and result["decision"] == "FAIL"


def test_worse_than_bc_fails_and_disagreeing_ope_cautions():
    worse = Evidence("w", hazard=ci(0.0), ret=ci(5.0, 4.0, 6.0), ope=ope(5, 5), unsupported_rate=0.0)
    assert reasons(decide(worse, BC, "offline-RL-ready", RANGE, CFG), "bc")[0]["decision"] == "FAIL"
    # without a simulator, disagreeing trusted estimators caution (DR counts with enough effective episodes)
    split = Evidence("s", ope=ope(20, 50, ess=50.0), unsupported_rate=0.0, unsupported_source="logs")
    result = decide(split, BC, "offline-RL-ready", RANGE, CFG)
    assert result["decision"] == "CAUTION" and "disagree" in reasons(result, "ope")[0]["message"]
    # with one effective episode DR is not trusted: FQE alone is not an agreement
    few = dataclasses.replace(split, ope=ope(20, 50, ess=1.0))
    assert "fewer than two trustworthy" in reasons(decide(few, BC, "offline-RL-ready", RANGE, CFG), "ope")[0]["message"]
    # with simulator rollouts the disagreement is reported, not decisive
    rolled = dataclasses.replace(split, hazard=ci(0.0), ret=ci(20.0, 19.0, 21.0), unsupported_source="rollouts")
    ope_reason = reasons(decide(rolled, BC, "offline-RL-ready", RANGE, CFG), "ope")[0]
    assert ope_reason["decision"] == "PASS" and "disagree" in ope_reason["message"]
    assert "informational" in ope_reason["message"]


def test_bc_comparison_counts_only_when_bc_is_safe():
    short = Evidence("morel", hazard=ci(0.001, 0.0, 0.004), ret=ci(-50.0, -52.0, -48.0), ope=ope(-50, -50),
                     unsupported_rate=0.0)  # fmt: skip
    assert reasons(decide(short, BC, "offline-RL-ready", RANGE, CFG), "bc")[0]["decision"] == "FAIL"
    # a BC that buys its return with 4% hazards is no alternative: falling short of it is reported, not decisive
    unsafe_bc = dataclasses.replace(BC, hazard=ci(0.04, 0.03, 0.05))
    result = decide(short, unsafe_bc, "offline-RL-ready", RANGE, CFG)
    bc_reason = reasons(result, "bc")[0]
    assert bc_reason["decision"] == "PASS" and "informational" in bc_reason["message"]
    assert result["decision"] == "PASS"
    # a BC whose interval only reaches the limit is not a safe alternative either
    straddling_bc = dataclasses.replace(BC, hazard=ci(0.005, 0.002, 0.012))
    assert decide(short, straddling_bc, "offline-RL-ready", RANGE, CFG)["decision"] == "PASS"


def test_relative_hazard_limit_is_a_non_inferiority_test_against_the_logged_behaviour():
    relative = dataclasses.replace(CFG, hazard_limit=1.0, hazard_vs_behaviour=0.0)
    standard_care = ci(0.20, 0.18, 0.22)  # the logged behaviour loses 20% of episodes

    def rule(hazard, behaviour=standard_care, cfg=relative):
        ev = Evidence("p", hazard=hazard, ret=ci(21.0, 20.0, 22.0), ope=ope(21, 21), unsupported_rate=0.0)
        result = decide(ev, BC, "offline-RL-ready", RANGE, cfg, behaviour_hazard=behaviour)
        return result, reasons(result, "behaviour_hazard")

    result, (r,) = rule(ci(0.15, 0.14, 0.16))  # clearly better than standard care
    assert r["decision"] == "PASS" and result["decision"] == "PASS" and "-5.00 points" in r["message"]
    # the point is below, but the combined half-widths (hypot(0.02, 0.02) = 2.83 points) reach above 0: CAUTION
    _, (r,) = rule(ci(0.19, 0.17, 0.21))
    assert r["decision"] == "CAUTION" and "upper +1.83" in r["message"]
    _, (r,) = rule(ci(0.25, 0.23, 0.27))  # worse on the point estimate
    assert r["decision"] == "FAIL"
    # a margin of 5 points lets the same policy through the relative limit
    _, (r,) = rule(ci(0.19, 0.17, 0.21), cfg=dataclasses.replace(relative, hazard_vs_behaviour=0.05))
    assert r["decision"] == "PASS"
    # no estimate of the behaviour's hazard: the gate cannot apply the limit, so it cannot pass
    result, _ = rule(ci(0.15, 0.14, 0.16), behaviour=None)
    assert result["decision"] == "FAIL" and "relative limit" in reasons(result, "evidence")[0]["message"]
    # off (the default): no such rule, whatever the behaviour did
    result = decide(Evidence("p", hazard=ci(0.0), ret=ci(21.0, 20.0, 22.0), ope=ope(21, 21), unsupported_rate=0.0),
                    BC, "offline-RL-ready", RANGE, CFG, behaviour_hazard=ci(0.0))  # fmt: skip
    assert not reasons(result, "behaviour_hazard") and result["decision"] == "PASS"
    out = gate([BC], "offline-RL-ready", RANGE, relative, behaviour_hazard=standard_care)
    assert out["behaviour_hazard"]["mean"] == 0.20 and out["config"]["hazard_vs_behaviour"] == 0.0


def test_audit_verdict_gates_everyone():
    ev = Evidence("cql", hazard=ci(0.0), ret=ci(21.0, 20.0, 22.0), ope=ope(20, 21), unsupported_rate=0.0)
    assert decide(ev, BC, "insufficient", RANGE, CFG)["decision"] == "FAIL"
    assert decide(ev, BC, "BC-only", RANGE, CFG)["decision"] == "CAUTION"
    safe_bc = dataclasses.replace(BC, hazard=ci(0.0))
    assert decide(safe_bc, None, "BC-only", RANGE, CFG)["decision"] == "PASS"  # imitation is what the data supports
    out = gate([BC, ev], "offline-RL-ready", RANGE, CFG)
    assert list(out["decisions"]) == ["bc", "cql"] and out["config"]["hazard_limit"] == 0.01


def small_run(tmp_path_factory, name, regime, learners, validate):
    cfg = RunConfig(
        name=name,
        collect=CollectConfig(regime=regime, n_episodes=500, seed=0),
        train=TrainConfig(learners=learners, bc=BCConfig(), dqn=DQNConfig(), monitor_every=10**6),
        evaluate=EvalConfig(n_episodes=600, n_bootstrap=500),
        ope=OPEConfig(validate=validate, n_bootstrap=300),
        report=False,
    )
    run_dir, _ = run(cfg, tmp_path_factory.mktemp("runs"), show_progress=False)
    return run_dir


def test_gate_on_naive_dqn_trained_on_noisy_logs(tmp_path_factory):
    run_dir = small_run(tmp_path_factory, "noisy-dqn", "noisy", ("bc", "dqn"), validate=False)
    dqn = json.loads((run_dir / "metrics.json").read_text())["policies"]["dqn"]
    gate_out = json.loads((run_dir / "gate.json").read_text())
    decisions, behaviour = gate_out["decisions"], gate_out["behaviour_return"]
    # naive offline DQN on noisy logs: unsafe, or (seed 0 here) looping until the time limit, never reaching the goal
    assert dqn["hazard_rate"]["mean"] > CFG.hazard_limit or dqn["goal_rate"]["mean"] < 0.5
    failing = {r["rule"] for r in decisions["dqn"]["reasons"] if r["decision"] == "FAIL"}
    assert ("hazard" in failing) == (dqn["hazard_rate"]["mean"] > CFG.hazard_limit)
    # BC on these logs is unsafe, so the return comparison is with the logged behaviour (-85 per episode: noisy
    # logs fall into hazards), which a safe loop to the time limit (-80) beats
    assert reasons(decisions["bc"], "hazard")[0]["decision"] == "FAIL"
    bc_reason = reasons(decisions["dqn"], "bc")[0]
    assert "logged behaviour" in bc_reason["message"]
    assert (bc_reason["decision"] == "PASS") == (dqn["return"]["low"] > behaviour["high"] or
                                                 dqn["return"]["mean"] > behaviour["mean"])  # fmt: skip
    assert decisions["dqn"]["decision"] == ("FAIL" if failing else bc_reason["decision"])


def test_gate_fails_hazard_seeking_and_passes_optimal_on_the_default_data(tmp_path_factory):
    run_dir = small_run(tmp_path_factory, "safe-validated", "safe", ("bc",), validate=True)
    decisions = json.loads((run_dir / "gate.json").read_text())["decisions"]
    assert set(decisions) == {"bc", "behaviour", "optimal", "random", "hazard-seeking"}
    assert decisions["hazard-seeking"]["decision"] == "FAIL"
    assert reasons(decisions["hazard-seeking"], "hazard")[0]["decision"] == "FAIL"
    assert decisions["optimal"]["decision"] == "PASS", decisions["optimal"]
    assert decisions["random"]["decision"] == "FAIL"
    ope = json.loads((run_dir / "ope.json").read_text())
    assert ope["validation"]["return"]["fqe"]["rank_correlation"] > 0.5


def test_logs_only_hazard_uses_the_pessimistic_model_bound_and_the_worst_point():
    def logs_only(cost):
        est = {"return": {"fqe": ci(20.0), "dr": ci(20.5), "model": ci(20.2, 19.9, 20.6)}, "cost": cost}
        return Evidence("m", ope=OPEEvidence(est, 1.0), unsupported_rate=0.01, unsupported_source="logs")

    tight = {"fqe": ci(0.001), "dr": ci(0.002, 0.0, 0.2), "model": ci(0.001, 0.0, 0.004),
             "model_pessimistic": ci(0.003, 0.001, 0.006)}  # fmt: skip
    result = decide(logs_only(tight), BC, "offline-RL-ready", RANGE, CFG)
    hazard = reasons(result, "hazard")[0]
    # DR's wide bootstrap interval (to 20%) is not the bound; the pessimistic model's (0.6%) is
    assert hazard["decision"] == "PASS" and "bound: model_pessimistic" in hazard["message"], hazard
    assert result["decision"] == "PASS"
    # any trusted point estimate above the limit fails, however tight the model bound
    fqe_high = {**tight, "fqe": ci(0.02)}
    assert reasons(decide(logs_only(fqe_high), BC, "offline-RL-ready", RANGE, CFG), "hazard")[0]["decision"] == "FAIL"
    # DR's point counts only with enough effective episodes (one episode can hold nearly all the weight)
    dr_high = {**tight, "dr": ci(0.02, 0.0, 0.05)}
    assert reasons(decide(logs_only(dr_high), BC, "offline-RL-ready", RANGE, CFG), "hazard")[0]["decision"] == "PASS"
    many = dataclasses.replace(logs_only(dr_high), ope=OPEEvidence(logs_only(dr_high).ope.estimates, 50.0))
    assert reasons(decide(many, BC, "offline-RL-ready", RANGE, CFG), "hazard")[0]["decision"] == "FAIL"
    # ... and only when it estimates the policy itself, not its softened version
    softened = dataclasses.replace(many, ope=dataclasses.replace(many.ope, softened=True))
    assert reasons(decide(softened, BC, "offline-RL-ready", RANGE, CFG), "hazard")[0]["decision"] == "PASS"
    entry = {"estimates": {"cost": {"dr": {"mean": 0.02, "low": 0.0, "high": 0.05}}}, "weights": {"ess_episodes": 50}}
    assert OPEEvidence.from_dict({**entry, "epsilon": 0.05}).softened
    assert not OPEEvidence.from_dict({**entry, "epsilon": None}).softened  # a stochastic target
    assert not OPEEvidence.from_dict({**entry, "epsilon": 0.0}).softened
    # the model bound reaching the limit cautions
    reach = {**tight, "model_pessimistic": ci(0.006, 0.002, 0.015)}
    assert reasons(decide(logs_only(reach), BC, "offline-RL-ready", RANGE, CFG), "hazard")[0]["decision"] == "CAUTION"
    # a tabular FQE's interval comes from refits: its upper end is a bound too, and the larger one decides
    refit = {**tight, "fqe": ci(0.002, 0.0, 0.012)}
    evidence = dataclasses.replace(
        logs_only(refit), ope=OPEEvidence(logs_only(refit).ope.estimates, 1.0, fqe_refits=True)
    )
    hazard = reasons(decide(evidence, BC, "offline-RL-ready", RANGE, CFG), "hazard")[0]
    assert hazard["decision"] == "CAUTION" and "bound: model_pessimistic/fqe" in hazard["message"], hazard
    # without a bound that carries its own error (no world model, a network FQE) the gate cannot PASS
    no_model = {"fqe": ci(0.001), "dr": ci(0.002, 0.0, 0.2)}
    assert (
        reasons(decide(logs_only(no_model), BC, "offline-RL-ready", RANGE, CFG), "hazard")[0]["decision"] == "CAUTION"
    )


def test_confounded_logs_trust_importance_weighting_alone():
    # the world model and FQE say 2% (they learned each action's outcome from the patients the behaviour chose it
    # for); importance weighting with the logged propensities says more, and its survival bound more still
    est = {
        "return": {"fqe": ci(0.6), "model": ci(0.6), "dr": ci(0.35, 0.3, 0.4), "wis": ci(0.36, 0.3, 0.42),
                   "pdis": ci(0.33, 0.28, 0.38)},
        "cost": {"fqe": ci(0.02, 0.01, 0.03), "model": ci(0.02), "model_pessimistic": ci(0.02, 0.02, 0.04),
                 "pdis": ci(0.03, 0.02, 0.04), "wis": ci(0.035, 0.02, 0.05), "dr": ci(0.03, 0.02, 0.045),
                 "survival_is": ci(0.05, 0.03, 0.07)},
    }  # fmt: skip
    physicians = ci(0.09, 0.075, 0.11)
    cfg = dataclasses.replace(CFG, hazard_limit=1.0, hazard_vs_behaviour=0.0, confounded=True)
    ev = Evidence("bc", ope=OPEEvidence(est, 300.0), unsupported_rate=0.01, unsupported_source="logs", is_bc=True)
    result = decide(ev, None, "offline-RL-ready", 2.0, cfg, behaviour_hazard=physicians)
    (h,) = reasons(result, "hazard")
    assert "points pdis/wis/dr/survival_is" in h["message"] and "5.00" in h["message"]  # the worst point: survival
    assert result["evidence"]["hazard"]["high"] == 0.07 and result["evidence"]["return"]["source"] == "OPE dr"
    assert result["decision"] == "PASS"
    # unconfounded, the same evidence is read the usual way: survival_is is not read, the model bound is
    plain = decide(ev, None, "offline-RL-ready", 2.0, dataclasses.replace(cfg, confounded=False),
                   behaviour_hazard=physicians)  # fmt: skip
    assert "survival_is" not in reasons(plain, "hazard")[0]["message"]
    # too few effective episodes, or propensities estimated from the logs: nothing to trust, FAIL with the reason
    few = dataclasses.replace(ev, ope=OPEEvidence(est, 5.0))
    result = decide(few, None, "offline-RL-ready", 2.0, cfg, behaviour_hazard=physicians)
    assert result["decision"] == "FAIL" and "5.0 effective episodes" in reasons(result, "evidence")[0]["message"]
    hidden = dataclasses.replace(ev, ope=OPEEvidence(est, 300.0, propensities_logged=False))
    result = decide(hidden, None, "offline-RL-ready", 2.0, cfg, behaviour_hazard=physicians)
    assert result["decision"] == "FAIL" and "no propensities" in reasons(result, "evidence")[0]["message"]


def bandit_ope(ret: dict, cost: dict | None, ess: float = 500.0, costs_logged: bool = True) -> OPEEvidence:
    est = {"return": ret} if cost is None else {"return": ret, "cost": cost}
    return OPEEvidence(est, ess, one_step=True, costs_logged=costs_logged)


def test_one_step_logs_judge_the_hazard_on_the_importance_weighted_bounds():
    ret = {"ips": ci(0.05, 0.04, 0.06), "snips": ci(0.05, 0.04, 0.06), "dr": ci(0.052, 0.045, 0.06),
           "dm": ci(0.2, 0.199, 0.201)}  # fmt: skip
    cost = {"ips": ci(0.002, 0.0, 0.006), "snips": ci(0.002, 0.0, 0.007), "dr": ci(0.002, 0.0, 0.02)}
    ev = Evidence("vendor", ope=bandit_ope(ret, cost), unsupported_rate=0.0, unsupported_source="logs")
    result = decide(ev, None, "offline-RL-ready", 1.0, CFG, behaviour=ci(0.04, 0.035, 0.045))
    hazard = reasons(result, "hazard")[0]
    # the bound is the largest upper end among ips/snips/dr (dr's 2%), above the 1% limit: CAUTION
    assert hazard["decision"] == "CAUTION" and "ips/snips/dr" in hazard["message"] and "2.0" in hazard["message"]
    # the reward model's direct estimate (0.2) is reported, never read: the return compared is DR's 0.052
    assert "0.052" in reasons(result, "bc")[0]["message"] and reasons(result, "bc")[0]["decision"] == "PASS"
    assert "dm" not in reasons(result, "ope")[0]["message"]


def test_one_step_agreement_reads_the_intervals_not_the_return_range():
    overlapping = {"ips": ci(0.002, 0.0005, 0.006), "snips": ci(0.004, 0.001, 0.008), "dr": ci(0.0154, 0.005, 0.03)}
    ev = Evidence("p", ope=bandit_ope(overlapping, None, costs_logged=False), unsupported_rate=0.0,
                  unsupported_source="logs")  # fmt: skip
    agreed = reasons(decide(ev, None, "offline-RL-ready", 1.0, CFG, behaviour=ci(0.001)), "ope")[0]
    assert agreed["decision"] == "PASS" and "0.0154" in agreed["message"]  # significant digits, not "0.02"
    apart = {**overlapping, "dr": ci(0.0154, 0.0101, 0.03)}  # no longer shares a value with ips's [0.0005, 0.006]
    ev = dataclasses.replace(ev, ope=bandit_ope(apart, None, costs_logged=False))
    disagreed = reasons(decide(ev, None, "offline-RL-ready", 1.0, CFG, behaviour=ci(0.001)), "ope")[0]
    assert disagreed["decision"] == "CAUTION" and "share no value" in disagreed["message"]


def test_no_hazard_verdict_without_a_cost_column_and_insufficient_weights_say_so():
    ret = {"ips": ci(0.05, 0.0, 0.3), "snips": ci(0.05, 0.0, 0.3), "dr": ci(0.05, 0.0, 0.3)}
    ev = Evidence("p", ope=bandit_ope(ret, None, ess=12.0, costs_logged=False), unsupported_rate=0.0,
                  unsupported_source="logs")  # fmt: skip
    result = decide(ev, None, "offline-RL-ready", 1.0, CFG, behaviour=ci(0.04, 0.03, 0.05))
    hazard = reasons(result, "hazard")[0]
    assert hazard["message"].startswith("not judged: the logs record no cost column")
    assert result["evidence"]["hazard"] is None
    evidence = [r for r in result["reasons"] if r["decision"] == "FAIL"]
    assert (
        result["decision"] == "FAIL"
        and "insufficient evidence: the importance weights leave 12.0" in evidence[0]["message"]
    )
    assert "insufficient evidence" in reasons(result, "ope")[0]["message"]
