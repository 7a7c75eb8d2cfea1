"""One answer per run: the policy the evidence recommends, or none with the reason and what would change it.

The rule reads only what the gate judged (``gate.json``) and the logs; never an exact value or a hidden truth:

1. a candidate is **eligible** when the gate PASSed it and the lower end of its return interval (rollouts where a
   simulator exists, the off-policy bound otherwise: the source the gate judged with) is above the upper end of
   the logged behaviour's own return, estimated on-policy from the logged episodes. A policy that is safe but no
   better than what already runs is not recommended;
2. among the eligible, the highest lower bound wins; candidates within ``tie`` of it tie, and the tie goes to the
   one closest to the logged behaviour (the smallest share of logged states where it picks another action than
   the logged one).

CAUTION and FAIL are never recommended.
"""

from __future__ import annotations

from typing import Any

from guardrl.evaluate.metrics import Estimate, format_interval

TIE = 1e-9
"""Lower bounds closer than this are a tie."""


def _lower(decision: dict[str, Any]) -> tuple[float | None, str]:
    ret = (decision.get("evidence") or {}).get("return")
    if not ret:
        return None, "no return estimate"
    return float(ret["low"]), str(ret.get("source", "?"))


def _failing(decision: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in decision.get("reasons", []) if r["decision"] != "PASS"]


_FIXES = {
    "hazard": "more logs of the states it visits (or, if that risk is acceptable, a looser gate.hazard_limit)",
    "support": "logs of the actions it prefers where the logs barely hold them (serve it in shadow mode and label)",
    "bc": "a policy whose return beats behaviour cloning's (or the logged behaviour's, where it is the comparison)",
    "behaviour_hazard": "more logs of the states it visits (or, if acceptable, a larger gate.hazard_vs_behaviour)",
    "ope": "estimates that agree: more logs, or a more conservative learner",
    "audit": "more logs (the audit found them insufficient)",
    "evidence": "the missing evidence (its reason says which: a stage to run, or logs that follow it more often)",
}


def recommend(
    decisions: dict[str, dict[str, Any]],
    behaviour: Estimate,
    closeness: dict[str, float | None],
    candidates: list[str] | None = None,
) -> dict[str, Any]:
    """The recommendation from the gate's ``decisions``, the logged behaviour's return and each candidate's
    mismatch with the logged actions (``closeness``, lower is closer). ``candidates`` limits the choice (the run's
    learners and imitation policies: never a reference built from a simulator's truth).

    Returns ``{"policy": name or None, "reason": ..., "ranking": [...], "behaviour_return": ...}``."""
    names = [n for n in (candidates if candidates is not None else list(decisions)) if n in decisions]
    rows = []
    for name in names:
        d = decisions[name]
        low, source = _lower(d)
        eligible = d["decision"] == "PASS" and low is not None and low > behaviour.high
        if d["decision"] != "PASS":
            why = "; ".join(f"{r['decision']} {r['rule']}: {r['message']}" for r in _failing(d)) or d["decision"]
        elif low is None:
            why = "PASS, but no return estimate to compare with the logged behaviour"
        elif not eligible:
            why = (f"PASS, but its return's lower bound {low:.4g} ({source}) is not above the logged behaviour's "
                   f"{format_interval(behaviour, digits=2)}")  # fmt: skip
        else:
            why = f"PASS; return lower bound {low:.4g} ({source}) above the logged behaviour's"
        rows.append({"policy": name, "decision": d["decision"], "return_low": low, "source": source,
                     "mismatch": closeness.get(name), "eligible": eligible, "why": why})  # fmt: skip
    order = {"PASS": 0, "CAUTION": 1, "FAIL": 2}
    rows.sort(key=lambda r: (not r["eligible"], order.get(r["decision"], 3), -(r["return_low"] or float("-inf"))))
    eligible = [r for r in rows if r["eligible"]]
    out: dict[str, Any] = {"behaviour_return": behaviour.to_dict(), "tie": TIE}
    if eligible:
        best = max(r["return_low"] for r in eligible)
        tied = [r for r in eligible if r["return_low"] >= best - TIE]

        def distance(r: dict[str, Any]) -> float:
            return r["mismatch"] if r["mismatch"] is not None else float("inf")

        chosen = min(tied, key=distance)
        rows.remove(chosen)
        rows.insert(0, chosen)
        tie_note = (f"; tied with {', '.join(r['policy'] for r in tied if r is not chosen)}, and closest to the logged "
                    "behaviour" if len(tied) > 1 else "")  # fmt: skip
        out["policy"] = chosen["policy"]
        out["reason"] = (f"`{chosen['policy']}` PASSed the gate and has the highest lower bound on its return, "
                         f"{chosen['return_low']:.4g} ({chosen['source']}), above the logged behaviour's "
                         f"{format_interval(behaviour, digits=2)}{tie_note}")  # fmt: skip
    else:
        out["policy"] = None
        out["reason"] = _why_none(rows, decisions, behaviour)
    out["ranking"] = rows
    return out


def _why_none(rows: list[dict[str, Any]], decisions: dict[str, Any], behaviour: Estimate) -> str:
    if not rows:
        return "no candidate policy to judge: train one (guardrl train) and run the gate"
    passed = [r for r in rows if r["decision"] == "PASS"]
    if passed:
        best = passed[0]
        return (f"no policy is better than what already runs: `{best['policy']}` is safe (PASS) but its return's "
                f"lower bound {best['return_low']:.4g} is not above the logged behaviour's "
                f"{format_interval(behaviour, digits=2)}; keep the current controller, or train on logs that show "
                "better choices")  # fmt: skip
    fixes = []
    for r in rows[:3]:
        rules = list(dict.fromkeys(x["rule"] for x in _failing(decisions[r["policy"]])))
        need = "; ".join(dict.fromkeys(_FIXES.get(rule, rule) for rule in rules)) or "a PASS"
        fixes.append(f"`{r['policy']}` ({r['decision']}: {', '.join(rules) or 'no reason given'}) needs {need}")
    return "no policy PASSed the gate; keep the current controller. What would change it: " + "; ".join(fixes)
