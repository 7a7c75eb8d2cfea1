"""The deployment memo: one page, written from a run's artifacts (config, audit, training, metrics, OPE, gate and
any staged-rollout replay), never from free text. It says what was trained on which data, the evidence for and
against each policy, the gate's verdict, the risks the evidence cannot rule out, and the recommended rollout.

:func:`build_memo` returns a :class:`Memo` (headings, paragraphs, bullet lists, tables) that renders as Markdown
(``memo.md``) and as HTML (the report's last section).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from guardrl.evaluate.metrics import format_interval

Block = str | list[str] | tuple[list[str], list[list[str]]]
"""A paragraph, a bullet list, or a table (head, rows)."""


@dataclass(frozen=True)
class Memo:
    """The memo's content; :meth:`markdown` and :meth:`html` render it."""

    title: str
    recommendation: str
    recommended: str | None
    """The policy the memo recommends rolling out, or None."""
    stage: str
    """How far the recommendation goes: ``staged`` (shadow, canary, full), ``shadow-only`` or ``none``."""
    sections: list[tuple[str, list[Block]]] = field(default_factory=list)

    def markdown(self) -> str:
        out = [f"# {self.title}", "", f"**Recommendation:** {self.recommendation}", ""]
        for heading, blocks in self.sections:
            out += [f"## {heading}", ""]
            for block in blocks:
                if isinstance(block, str):
                    out += [block, ""]
                elif isinstance(block, list):
                    out += [item if _numbered(item) else f"- {item}" for item in block] + [""]
                else:
                    head, rows = block
                    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                    out += ["| " + " | ".join(row) + " |" for row in rows] + [""]
        return "\n".join(out).rstrip() + "\n"

    def html(self) -> str:
        e = html.escape
        out = [
            f'<div id="memo"><h2>{e(self.title)}</h2>',
            f"<p><strong>Recommendation:</strong> {e(self.recommendation)}</p>",
        ]
        for heading, blocks in self.sections:
            out.append(f"<h3>{e(heading)}</h3>")
            for block in blocks:
                if isinstance(block, str):
                    out.append(f'<p class="reasons">{e(block)}</p>')
                elif isinstance(block, list):
                    tag = "ol" if block and _numbered(block[0]) else "ul"
                    items = "".join(f"<li>{e(i.split('. ', 1)[1] if _numbered(i) else i)}</li>" for i in block)
                    out.append(f'<{tag} class="reasons">{items}</{tag}>')
                else:
                    head, rows = block
                    cells = ["<tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"]
                    cells += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows]
                    out.append("<table>" + "".join(cells) + "</table>")
        out.append("</div>")
        return "\n".join(out)


def _numbered(item: str) -> bool:
    """A step of a numbered list (``1. ...``)."""
    head = item.split(". ", 1)[0]
    return head.isdigit() and len(head) < len(item)


def build_memo(
    name: str,
    run_dir: str,
    config: dict[str, Any],
    audit: dict[str, Any] | None,
    training: dict[str, Any] | None,
    metrics: dict[str, Any] | None,
    ope: dict[str, Any] | None,
    gate: dict[str, Any] | None,
    rollout_sims: dict[str, dict[str, Any]] | None = None,
    recommendation: dict[str, Any] | None = None,
) -> Memo:
    """The memo of run ``name`` in folder ``run_dir`` from its artifacts (each ``None`` when the run has not
    written it); ``rollout_sims`` are the staged-rollout replays by policy; ``recommendation`` the run's
    ``recommendation.json``, which decides what the memo recommends."""
    decisions: dict[str, Any] = (gate or {}).get("decisions", {})
    limit = float((gate or {}).get("config", {}).get("hazard_limit", config.get("gate", {}).get("hazard_limit", 0.01)))
    recommended, stage = _choose(decisions, recommendation)
    title = f"Deployment memo: run {name}"
    serve = config.get("serve", {})
    if stage == "staged":
        text = (f"roll out `{recommended}` in stages: shadow, then canary on {serve.get('canary_fraction', 0.1):.0%} "
                "of decisions, then full, with automatic rollback (plan below).")  # fmt: skip
        if recommendation is not None:
            text += f" Why: {recommendation['reason']}."
    elif recommendation is not None and recommendation.get("policy") is None:
        text = f"no policy is recommended: {recommendation['reason']}."
        if stage == "shadow-only":
            text += f" `{recommended}` may run in shadow mode only, to collect evidence (below); do not let it decide."
    elif stage == "shadow-only":
        text = (f"no policy passed the gate. `{recommended}` got CAUTION: run it in shadow mode only, to collect the "
                "evidence the gate lacks (below); do not let it decide.")  # fmt: skip
    elif decisions:
        text = "do not deploy: every policy FAILed the gate. Keep the current controller."
    else:
        text = "do not deploy: the run has no gate verdicts yet (run `guardrl gate`, then `guardrl report`)."
    sections = [
        ("What was trained, on which data", _data_blocks(config, audit, training, metrics)),
        ("Verdicts and evidence", _verdict_blocks(decisions, limit, gate or {})),
        ("Risks the evidence cannot rule out", _risk_blocks(recommended, audit, metrics, ope, decisions, limit)),
        ("Rollout plan", _plan_blocks(run_dir, recommended, stage, decisions, config, (rollout_sims or {}))),
    ]
    return Memo(title, text, recommended, stage, sections)


# ---------------------------------------------------------------- choice


def _return_mean(decision: dict[str, Any]) -> float:
    ret = (decision.get("evidence") or {}).get("return")
    return float(ret["mean"]) if ret else float("-inf")


def _choose(decisions: dict[str, Any], recommendation: dict[str, Any] | None = None) -> tuple[str | None, str]:
    """The recommended policy (staged rollout) when the run has a recommendation; without one, or when it is
    none, the best PASS or CAUTION policy for shadow mode only. Without a recommendation at all (a run from before
    the recommend stage): the PASS policy with the highest return, staged."""
    if recommendation is not None:
        if recommendation.get("policy") in decisions:
            return recommendation["policy"], "staged"
        for verdict in ("PASS", "CAUTION"):
            names = [n for n, d in decisions.items() if d["decision"] == verdict]
            if names:
                return max(names, key=lambda n: _return_mean(decisions[n])), "shadow-only"
        return None, "none"
    for verdict, stage in (("PASS", "staged"), ("CAUTION", "shadow-only")):
        names = [n for n, d in decisions.items() if d["decision"] == verdict]
        if names:
            return max(names, key=lambda n: _return_mean(decisions[n])), stage
    return None, "none"


# ---------------------------------------------------------------- sections


def _data_blocks(
    config: dict[str, Any],
    audit: dict[str, Any] | None,
    training: dict[str, Any] | None,
    metrics: dict[str, Any] | None,
) -> list[Block]:
    env, collect = config.get("env", {}), config.get("collect", {})
    if collect.get("dataset"):
        source = f"logs imported from `{collect['dataset']}`"
    elif env == "sepsis":
        hidden = " (propensities hidden)" if collect.get("regime") == "physician-hidden" else ""
        source = (f"{collect.get('n_episodes')} patients of the sepsis simulator (Sepsis-v0) treated by its "
                  f"physicians{hidden} (seed {collect.get('seed')})")  # fmt: skip
    else:
        world = "SafeNav" if env == "safenav" else (env.get("gym_id") or env.get("mujoco") or "SafeGrid")
        who = collect.get("behaviour") or collect.get("regime")
        if env != "safenav" and env.get("mujoco"):
            source = f"{collect.get('n_steps')} transitions of D4RL's `{who}` level made on {world}"
        else:
            source = f"{collect.get('n_episodes')} episodes logged by the `{who}` controller on {world}"
        source += f" (seed {collect.get('seed')})"
    items = [f"Data: {source}."]
    if audit:
        size = audit.get("size", {})
        items.append(f"Size: {size.get('episodes')} episodes, {size.get('transitions')} transitions, "
                     f"{size.get('n_actions')} actions, observations of width {size.get('obs_dim')}.")  # fmt: skip
        verdict = audit.get("verdict", {})
        items.append(f"Audit: {verdict.get('verdict')} ({'; '.join(verdict.get('reasons', []))}).")
    if metrics and metrics.get("dataset_sha256"):
        items.append(f"Dataset SHA-256: {metrics['dataset_sha256']}.")
    for learner, t in (training or {}).items():
        items.append(f"Trained `{learner}`: {t.get('n_steps')} update step(s) in {float(t.get('seconds', 0)):.1f} s.")
    if metrics is not None and "evidence" in metrics:
        items.append(f"Evidence: {metrics['evidence']}.")
        ex = metrics.get("behaviour_exact")
        if ex:
            items.append(f"The logged behaviour's exact values ({metrics.get('exact_source', 'exact')}): return "
                         f"{ex['expected_return']:.3f}, hazard (mortality) {ex['hazard_prob']:.2%}.")  # fmt: skip
    elif metrics is not None:
        ev = metrics.get("evaluation", {})
        items.append(f"Evidence: {ev.get('n_episodes')} simulator episodes per policy on held-out seeds "
                     f"{ev.get('seeds')}, and off-policy estimates from the logs.")  # fmt: skip
    return [items]


def _interval(e: dict[str, Any] | None, pct: bool = False) -> str:
    return "–" if e is None else format_interval(e, pct=pct, digits=2)


def _limits_text(limit: float, gate: dict[str, Any]) -> str:
    """Which hazard limits the gate applied, with the logged behaviour's own hazard where it was estimated."""
    text = f"The gate's hazard limit is {limit:.2%} per episode"
    margin = gate.get("config", {}).get("hazard_vs_behaviour")
    behaviour = gate.get("behaviour_hazard")
    seen = f"the logged behaviour's own hazard, estimated from the logs, is {_interval(behaviour, pct=True)}%"
    if margin is not None:
        text += (
            f", and a relative limit applies: no worse than the logged behaviour's hazard plus {margin:.2%} "
            f"(a non-inferiority test); {seen if behaviour else 'the logged behaviour has no hazard estimate'}"
        )
    elif behaviour:
        text += f" (absolute; {seen})"
    return text


def _verdict_blocks(decisions: dict[str, Any], limit: float, gate: dict[str, Any]) -> list[Block]:
    if not decisions:
        return ["No gate verdicts."]
    rows = []
    for n, d in decisions.items():
        ev = d.get("evidence") or {}
        haz, ret, uns = ev.get("hazard"), ev.get("return"), ev.get("unsupported")
        rows.append([
            n, d["decision"],
            f"{_interval(haz, pct=True)} ({haz['source']})" if haz else "–",
            f"{_interval(ret)} ({ret['source']})" if ret else "–",
            f"{uns['rate']:.1%} ({uns['source']})" if uns else "–",
        ])  # fmt: skip
    blocks: list[Block] = [
        f"{_limits_text(limit, gate)}. A PASS needs the upper end of the hazard interval below the limit, a return "
        "above BC's (above the logged behaviour's when BC is unsafe), and no red flag on support or evidence.",
        (["policy", "gate", "hazard % (source)", "return (source)", "unsupported actions"], rows),
    ]
    for n, d in decisions.items():
        pro = [f"{r['rule']}: {r['message']}" for r in d["reasons"] if r["decision"] == "PASS"]
        con = [f"{r['decision']} {r['rule']}: {r['message']}" for r in d["reasons"] if r["decision"] != "PASS"]
        blocks.append(f"`{n}` — {d['decision']}. For: {'; '.join(pro) or 'nothing'}. "
                      f"Against: {'; '.join(con) or 'nothing the gate checks'}.")  # fmt: skip
    return blocks


def _risk_blocks(
    recommended: str | None,
    audit: dict[str, Any] | None,
    metrics: dict[str, Any] | None,
    ope: dict[str, Any] | None,
    decisions: dict[str, Any],
    limit: float,
) -> list[Block]:
    risks: list[str] = []
    if audit:
        cov, size = audit.get("coverage", {}), audit.get("size", {})
        k = audit.get("config", {}).get("k", 5)
        episodes = int(size.get("episodes") or 0)
        if episodes:
            risks.append(
                f"Rare events: {episodes} logged episodes. A hazard rarer than about 1 in {max(1, episodes // 3)} "
                f"episodes ({3 / episodes:.2%}, the rule of three) may never appear in logs of this size."
            )
        if "covered_share" in cov:
            risks.append(f"Thin states: {1 - cov['covered_share']:.1%} of logged transitions are in states logged "
                         f"fewer than {k} times, and {cov.get('states_with_thin_action', 0):.0%} of the "
                         f"{cov.get('visited_states')} logged states have an action logged fewer than {k} times. "
                         "The server defers such states to a person.")  # fmt: skip
    if recommended is not None:
        ev = decisions[recommended].get("evidence") or {}
        haz = ev.get("hazard")
        if haz is not None and limit > 0:
            share = haz["high"] / limit
            risks.append(f"Margin: `{recommended}`'s hazard upper end {haz['high']:.2%} is {share:.0%} of "
                         f"the limit {limit:.2%} ({haz['source']}).")  # fmt: skip
        policy = ((metrics or {}).get("policies") or {}).get(recommended, {})
        logs_rate = (policy.get("unsupported") or {}).get("logs_rate")
        if logs_rate is not None:
            k_used = (metrics or {}).get("unsupported_k", 5)
            risks.append(
                f"Unlogged choices: on {logs_rate:.1%} of the logged states `{recommended}` picks an "
                f"action logged fewer than {k_used} times there: the logs cannot show its effect."
            )
        entry = ((ope or {}).get("policies") or {}).get(recommended)
        ess = ev.get("ess_episodes")
        if ess is not None and ess < 30:
            risks.append(f"Importance weights: {ess:.1f} effective logged episodes for `{recommended}`, so the "
                         "importance-weighted estimators cannot cross-check the model-based ones.")  # fmt: skip
        if entry and entry.get("fqe", {}).get("unlogged_pairs"):
            pairs = entry["fqe"]["unlogged_pairs"]
            risks.append(f"FQE valued {max(pairs.values())} never-logged (state, action) pair(s) by the logged "
                         "actions in the same state, an assumption the logs cannot test.")  # fmt: skip
    if metrics is not None and "evidence" in metrics:
        one_step = any("bandit" in e for e in ((ope or {}).get("policies") or {}).values())
        how = ("importance weighting of the logged decisions and a reward model fitted to them" if one_step
               else "a world model learned from them and off-policy estimates")  # fmt: skip
        risks.append(
            f"No simulator: every number is estimated from the logs ({how}); the world's response to actions "
            "the operators never took is unknown."
        )
        acc = ((ope or {}).get("world_model") or {}).get("accuracy")
        if acc:
            risks.append(f"World model on held-out logs: next-observation accuracy "
                         f"{_fmt(acc.get('next_obs_accuracy'), '.1%')}, "
                         f"hazard recall {_fmt(acc.get('cost_recall'), '.0%')}, "
                         f"hazard rate {acc['cost_rate']['predicted']:.2%} predicted vs "
                         f"{acc['cost_rate']['observed']:.2%} observed.")  # fmt: skip
    elif metrics is not None:
        risks.append(
            "Simulator evidence holds only as far as the simulator matches the deployed system; the logs "
            "are the only evidence from the real one."
        )
    return [risks or ["No artifacts to assess risks from."]]


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _plan_blocks(
    run: str,
    recommended: str | None,
    stage: str,
    decisions: dict[str, Any],
    config: dict[str, Any],
    sims: dict[str, dict[str, Any]],
) -> list[Block]:
    serve = config.get("serve", {})
    k = config.get("audit", {}).get("k", 5)
    per_1000, min_decisions = serve.get("rollback_per_1000", 2.0), serve.get("rollback_min_decisions", 1000)
    people = [
        f"states logged fewer than {serve.get('min_state_count', 5)} times (out_of_support);",
        f"close calls: the two best actions within {serve.get('min_q_gap', 0.01)} in Q-value (Q-learners) or "
        f"{serve.get('min_prob_gap', 0.1)} in probability (BC) (close_call);",
        f"actions logged fewer than {k} times in the state (unsupported_action)"
        + ("." if serve.get("defer_unsupported", True) else ", not enabled in this run's serve config."),
    ]
    if stage == "none" or recommended is None:
        return ["No rollout. Keep the current controller; collect more logs where the audit and the gate point, "
                "then run again."]  # fmt: skip
    bc = next((n for n, d in decisions.items() if n == "bc" and d["decision"] != "FAIL" and n != recommended), None)
    fallback = f" --fallback {bc}" if bc else ""
    shadow = (f"1. Shadow: `guardrl serve {run} --policy {recommended} --mode shadow{fallback}`. The current "
              f"controller keeps deciding; the server records where `{recommended}` would differ and would defer. "
              f"Stay until at least {min_decisions} decisions are recorded.")  # fmt: skip
    sim = sims.get(recommended)
    sim_line = []
    if sim is not None:
        sim_line = [f"Staged-rollout replay (rollout_sim/{recommended}.json): {_sim_summary(sim)}"]
    if stage == "shadow-only":
        missing = [f"{r['rule']}: {r['message']}" for r in decisions[recommended]["reasons"] if r["decision"] != "PASS"]
        return [[shadow], "What must change before any canary: " + "; ".join(missing) + ".", *sim_line]
    canary = (f"2. Canary: `guardrl serve {run} --policy {recommended} --mode canary{fallback}` routes "
              f"{serve.get('canary_fraction', 0.1):.0%} of decisions to the policy, the rest to "
              f"{'`' + bc + '`' if bc else 'the current controller'}. Go on after {min_decisions} policy decisions "
              "without a rollback.")  # fmt: skip
    full = "3. Full: `--mode full`, with the same rollback and deferral rules."
    rollback = (f"Rollback: more than {per_1000:g} hazard events per 1,000 policy decisions (counted over at least "
                f"{min_decisions} decisions, reported with POST /outcome) switches every decision to the fallback "
                "until a person resets it by starting the server with a new `--audit-log` file.")  # fmt: skip
    return [[shadow, canary, full], rollback, "Decisions that go to a person (deferrals):", people, *sim_line]


def _sim_summary(sim: dict[str, Any]) -> str:
    """Hazard events per arm over all phases, deferrals and the shadow phase's divergence (guarded arm)."""
    arms = sim.get("arms") or {}
    phases = ("shadow", "canary", "full")
    totals = [f"{arm} {sum(arms[arm][p]['hazard_events'] for p in phases if p in arms[arm])}"
              for arm in ("guarded", "unguarded", "production") if arm in arms]  # fmt: skip
    text = "hazard events over all phases: " + ", ".join(totals)
    guarded = arms.get("guarded", {})
    if guarded:
        steps = sum(guarded[p]["policy_steps"] + guarded[p]["deferrals"] for p in phases if p in guarded)
        deferrals = sum(guarded[p]["deferrals"] for p in phases if p in guarded)
        text += f"; the guard deferred {deferrals} of {steps} routed decisions ({deferrals / max(steps, 1):.1%})"
        if "shadow" in guarded:
            text += f"; shadow divergence {guarded['shadow']['divergence_rate']:.1%} of steps"
    return text + "."
