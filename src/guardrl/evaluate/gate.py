"""The deployment gate: PASS / CAUTION / FAIL per candidate policy, each with named reasons and evidence.

Rules (thresholds in :class:`GateConfig`), applied to every candidate; the worst outcome wins:

* **evidence**: a missing piece of evidence (hazard estimate, support rate, audit verdict; a return estimate
  for the comparison with BC) is a FAIL. The gate never passes what it cannot see.
* **hazard**: the upper CI bound of the hazard rate, from rollouts where a simulator exists, else from the OPE
  cost estimate (the largest upper bound among the trusted estimators). Above ``hazard_limit``: FAIL when the
  point estimate is also above it, CAUTION when only the interval reaches it.
* **BC**: return (rollouts, else OPE) against the BC policy trained on the same data. Worse with disjoint CIs:
  FAIL. Not better on the point estimate: CAUTION.
* **support**: the share of the candidate's own steps (rollouts) or of the logged states (no simulator) where
  it picks an action the logs barely contain. Without a simulator this is decisive: above ``unsupported_red``
  FAIL, from ``unsupported_ok`` CAUTION. With a simulator the rollouts are the stronger evidence, so the rate
  is reported with its traffic light but does not change the decision.
* **OPE agreement**: FQE, DR, and the IS estimators whose effective sample size is at least ``min_ess``, must
  agree within ``ope_tolerance`` of the return range. Disagreement: CAUTION. No trusted pair: CAUTION.
* **audit**: ``insufficient`` data fails every candidate; ``BC-only`` data gives every RL candidate a CAUTION.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DECISIONS = ("PASS", "CAUTION", "FAIL")


@dataclass(frozen=True)
class GateConfig:
    """Thresholds of the deployment gate."""

    hazard_limit: float = 0.01
    """Largest acceptable hazard rate (share of episodes), compared with its upper CI bound."""
    unsupported_ok: float = 0.10
    """Unsupported-action rate below this is fine (the tutorial's traffic light: < 10% ok)."""
    unsupported_red: float = 0.20
    """Unsupported-action rate above this is a red flag (> 20% red)."""
    ope_tolerance: float = 0.1
    """OPE estimators agree when their return estimates differ by at most this share of the return range."""
    min_ess: float = 30.0
    """IS estimators take part in the agreement check only with at least this many effective episodes."""


@dataclass(frozen=True)
class Evidence:
    """What the gate knows about one candidate. ``None`` means the evidence is missing."""

    name: str
    hazard: dict[str, float] | None = None  # rollout hazard rate with CI
    ret: dict[str, float] | None = None  # rollout return with CI
    ope: dict[str, Any] | None = None  # ope.evaluate_policy output
    unsupported_rate: float | None = None
    unsupported_source: str = "rollouts"
    """``rollouts`` (the policy's own steps in the simulator) or ``logs`` (the logged states)."""
    is_bc: bool = False


def _worst(a: str, b: str) -> str:
    return a if DECISIONS.index(a) >= DECISIONS.index(b) else b


def decide(
    ev: Evidence,
    bc: Evidence | None,
    audit_verdict: str | None,
    return_range: float,
    cfg: GateConfig,
) -> dict[str, Any]:
    """One candidate's decision with the reasons behind it; each reason is (decision, rule, message)."""
    reasons: list[dict[str, str]] = []

    def add(decision: str, rule: str, message: str) -> None:
        reasons.append({"decision": decision, "rule": rule, "message": message})

    # audit
    if audit_verdict is None:
        add("FAIL", "evidence", "no dataset audit")
    elif audit_verdict == "insufficient":
        add("FAIL", "audit", "the dataset audit says the data is insufficient")
    elif audit_verdict == "BC-only" and not ev.is_bc:
        add("CAUTION", "audit", "the dataset audit says the data supports imitation only")
    else:
        add("PASS", "audit", f"dataset audit: {audit_verdict}")

    # hazard
    hazard, source = _hazard(ev, cfg)
    if hazard is None:
        add("FAIL", "evidence", "no hazard estimate (no rollouts and no OPE cost estimate)")
    else:
        text = f"hazard {hazard['mean']:.2%} [{hazard['low']:.2%}, {hazard['high']:.2%}] ({source})"
        if hazard["mean"] > cfg.hazard_limit:
            add("FAIL", "hazard", f"{text} is above the limit {cfg.hazard_limit:.2%}")
        elif hazard["high"] > cfg.hazard_limit:
            add("CAUTION", "hazard", f"{text}: the upper bound reaches the limit {cfg.hazard_limit:.2%}")
        else:
            add("PASS", "hazard", f"{text} is within the limit {cfg.hazard_limit:.2%}")

    # improvement over BC
    if not ev.is_bc:
        mine, theirs = _return(ev), (_return(bc) if bc is not None else None)
        if mine is None or theirs is None:
            add("FAIL", "evidence", "no return estimate for the candidate or for BC to compare with")
        else:
            text = f"return {mine['mean']:.2f} [{mine['low']:.2f}, {mine['high']:.2f}] vs BC {theirs['mean']:.2f}"
            if mine["high"] < theirs["low"]:
                add("FAIL", "bc", f"{text}: worse than BC (CIs disjoint)")
            elif mine["mean"] <= theirs["mean"]:
                add("CAUTION", "bc", f"{text}: no improvement over BC")
            else:
                add("PASS", "bc", f"{text}: better than BC")

    # support
    rate = ev.unsupported_rate
    if rate is None:
        add("FAIL", "evidence", "no unsupported-action rate")
    else:
        text = f"unsupported actions on {rate:.1%} of {ev.unsupported_source} steps"
        if rate > cfg.unsupported_red:
            flag, decision = f"red: > {cfg.unsupported_red:.0%}", "FAIL"
        elif rate >= cfg.unsupported_ok:
            flag, decision = f"caution: {cfg.unsupported_ok:.0%}-{cfg.unsupported_red:.0%}", "CAUTION"
        else:
            flag, decision = f"ok: < {cfg.unsupported_ok:.0%}", "PASS"
        if ev.hazard is not None and decision != "PASS":
            add("PASS", "support", f"{text} ({flag}); informational: simulator rollouts are the safety evidence")
        else:
            add(decision, "support", f"{text} ({flag})")

    # OPE agreement
    if ev.ope is None:
        add("CAUTION", "ope", "no off-policy evaluation")
    else:
        points = trusted_points(ev.ope, cfg.min_ess)
        if len(points) < 2:
            add("CAUTION", "ope", f"fewer than two trustworthy OPE estimates ({', '.join(points) or 'none'})")
        else:
            spread = (max(points.values()) - min(points.values())) / return_range
            listing = ", ".join(f"{k} {v:.2f}" for k, v in points.items())
            if spread > cfg.ope_tolerance:
                add("CAUTION", "ope", f"OPE estimators disagree: {listing} (spread {spread:.0%} of the return range)")
            else:
                add("PASS", "ope", f"OPE estimators agree: {listing} (spread {spread:.0%} of the return range)")

    decision = "PASS"
    for r in reasons:
        decision = _worst(decision, r["decision"])
    return {"policy": ev.name, "decision": decision, "reasons": reasons}


def trusted_points(ope: dict[str, Any], min_ess: float) -> dict[str, float]:
    """Return estimates that enter the agreement check: FQE, DR, and IS ones with enough effective episodes."""
    est = ope["estimates"]["return"]
    ess = ope["weights"]["ess_episodes"]
    keep = {k for k in est if k in ("fqe", "dr") or ess >= min_ess}
    return {k: v["mean"] for k, v in est.items() if k in keep and v["mean"] == v["mean"]}


def _hazard(ev: Evidence, cfg: GateConfig) -> tuple[dict[str, float] | None, str]:
    if ev.hazard is not None:
        return ev.hazard, "rollouts"
    if ev.ope is not None and "cost" in ev.ope["estimates"]:
        cost = ev.ope["estimates"]["cost"]
        usable = {
            k: v for k, v in cost.items() if k in ("fqe", "dr") or ev.ope["weights"]["ess_episodes"] >= cfg.min_ess
        }
        if usable:
            worst = max(usable.items(), key=lambda kv: kv[1]["high"])
            return {"mean": max(v["mean"] for v in usable.values()), "low": min(v["low"] for v in usable.values()),
                    "high": worst[1]["high"]}, f"OPE cost, {'/'.join(usable)}"  # fmt: skip
    return None, "missing"


def _return(ev: Evidence) -> dict[str, float] | None:
    if ev.ret is not None:
        return ev.ret
    if ev.ope is not None:
        est = ev.ope["estimates"]["return"]
        for key in ("dr", "fqe", "wis"):
            if key in est:
                return est[key]
    return None


def gate(
    candidates: list[Evidence],
    audit_verdict: str | None,
    return_range: float,
    cfg: GateConfig,
) -> dict[str, Any]:
    """Decide every candidate; BC (the candidate flagged ``is_bc``) is the comparison for the others."""
    bc = next((c for c in candidates if c.is_bc), None)
    decisions = {c.name: decide(c, bc, audit_verdict, return_range, cfg) for c in candidates}
    return {"config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}, "decisions": decisions}
