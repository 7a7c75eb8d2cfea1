"""The run report: one self-contained HTML page (plots embedded as base64 PNG; no network needed)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from guardrl.evaluate.metrics import format_interval

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; vertical-align: top;
         font-variant-numeric: tabular-nums; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
.reasons { text-align: left; white-space: normal; }
tr.PASS { background: #ebfbee; } tr.CAUTION { background: #fff9db; } tr.FAIL { background: #fff0f0; }
.tag { display: inline-block; min-width: 5.2em; padding: 0 0.3em; margin-right: 0.4em; border-radius: 3px;
       color: #fff; font-weight: bold; text-align: center; font-size: 0.85em; }
.tag.PASS { background: #2b8a3e; } .tag.CAUTION { background: #e67700; } .tag.FAIL { background: #c92a2a; }
.ok { color: #2b8a3e; } .caution { color: #e67700; } .red { color: #c92a2a; font-weight: bold; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.4em 0; }
.figs { display: flex; flex-wrap: wrap; gap: 1em; } .figs img { max-width: 520px; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _ci(e: dict[str, float] | None, pct: bool = False, digits: int = 2) -> str:
    return format_interval(e, pct=pct, digits=digits, missing="–")


def _spread(e: dict[str, float] | None, pct: bool = False) -> str:
    return format_interval(e, pct=pct, missing="–", spread=True)


def _tag(decision: str) -> str:
    return f'<span class="tag {_e(decision)}">{_e(decision)}</span>'


def _img(path: Path, alt: str) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _table(head: list[str], rows: list[list[str]], cls: list[str] | None = None, raw: bool = False) -> str:
    out = ["<table>", "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for i, row in enumerate(rows):
        klass = f' class="{cls[i]}"' if cls else ""
        cells = "".join(f"<td>{c if raw else _e(c)}</td>" for c in row)
        out.append(f"<tr{klass}>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def _gate_section(gate: dict[str, Any] | None) -> str:
    if not gate:
        return "<p>No gate decisions (run <code>guardrl gate</code>).</p>"
    rows, classes = [], []
    for name, d in gate["decisions"].items():
        reasons = "<br>".join(f"{_tag(r['decision'])} {_e(r['rule'])}: {_e(r['message'])}" for r in d["reasons"])
        rows.append([_e(name), _tag(d["decision"]), f'<div class="reasons">{reasons}</div>'])
        classes.append(d["decision"])
    return (
        '<div id="verdicts">'
        + _table(["policy", "decision", "reasons and evidence"], rows, classes, raw=True)
        + "</div>"
    )


def _audit_section(audit: dict[str, Any] | None, plots: Path) -> str:
    if not audit:
        return "<p>No audit.</p>"
    v = audit["verdict"]
    cov, ends, prop = audit.get("coverage", {}), audit.get("episode_ends", {}), audit.get("propensities", {})
    klass = {"offline-RL-ready": "PASS", "BC-only": "CAUTION"}.get(v["verdict"], "FAIL")
    parts = [
        f'<p>Verdict: <span class="tag {klass}">{_e(v["verdict"])}</span> {_e("; ".join(v["reasons"]))}</p>',
        _table(
            ["measure", "value"],
            [
                ["transitions / episodes", f"{audit['size']['transitions']} / {audit['size']['episodes']}"],
                ["visited states", str(cov.get("visited_states", "–"))],
                ["transitions in states logged >= k times", f"{cov.get('covered_share', float('nan')):.1%}"],
                ["transitions in states with >= 2 supported actions", f"{cov.get('choice_share', float('nan')):.1%}"],
                [
                    "visited states with some action logged < k times",
                    f"{cov.get('states_with_thin_action', float('nan')):.1%}",
                ],
                ["logged action counts", str(cov.get("action_counts", "–"))],
                [
                    "episode ends: termination / truncation / goal / hazard",
                    f"{ends.get('termination')} / {ends.get('truncation')} / {ends.get('goal')} / {ends.get('hazard')}",
                ],
                [
                    "min propensity / share < 0.05",
                    f"{prop.get('min', float('nan')):.3f} / {prop.get('share_below_0.05', float('nan')):.1%}",
                ],
            ],
        ),
        "<p>Sanity findings: " + (_e("; ".join(audit["sanity"])) if audit.get("sanity") else "none") + "</p>",
        '<div class="figs">'
        + _img(plots / "state_visitation.png", "state visitation")
        + _img(plots / "rewards.png", "rewards")
        + "</div>",
    ]
    return "\n".join(parts)


def _metrics_section(metrics: dict[str, Any] | None, plots: Path) -> str:
    if not metrics:
        return "<p>No evaluation.</p>"
    if "evidence" in metrics:  # logs only: no rollouts, only how far each policy strays from the logs
        exact = "behaviour_exact" in metrics  # a simulator made the logs: its exact values, beside (never read)
        rows = [[name, f"{p['mismatch']['rate']:.1%} ({p['mismatch']['flag']})",
                 f"{p['unsupported']['logs_rate']:.1%} ({p['unsupported']['logs_flag']})",
                 *([_exact_cell(p.get("exact"))] if exact else [])]
                for name, p in metrics["policies"].items()]  # fmt: skip
        head = ["policy", "logged-action mismatch", "unsupported (logged states)"]
        note = f"<p>{_e(metrics['evidence'])}.</p>"
        if exact:
            rows.append(["logged behaviour", "–", "–", _exact_cell(metrics["behaviour_exact"])])
            head.append("exact return / hazard")
            note += f"<p>Exact values: {_e(metrics.get('exact_source', ''))}.</p>"
        return _table(head, rows) + note
    rows = []
    for name, p in metrics["policies"].items():
        sup = p.get("unsupported", {})
        mm = p.get("mismatch")
        ex = p.get("exact")
        rows.append([
            name, _ci(p["return"]), _ci(p.get("normalized_score"), digits=1), _ci(p["hazard_rate"], pct=True, digits=1),
            _ci(p["goal_rate"], pct=True, digits=1),
            f"{ex['expected_return']:.2f} / {ex['hazard_prob']:.2%}" if ex else "–",
            f"{mm['rate']:.1%} ({mm['flag']})" if mm else "–",
            f"{sup['logs_rate']:.1%} ({sup['logs_flag']})" if "logs_rate" in sup else "–",
            f"{sup['rollout_rate']:.1%} ({sup['rollout_flag']})" if "rollout_rate" in sup else "–",
        ])  # fmt: skip
    head = ["policy", "return", "normalized", "hazard %", "goal %", "exact return / hazard", "logged-action mismatch",
            "unsupported (logged states)", "unsupported (own rollouts)"]  # fmt: skip
    floor = metrics.get("mismatch_floor")
    floor_note = "" if floor is None else f"Mismatch floor (exact optimal policy vs logged actions): {floor:.1%}. "
    note = (
        "<p>"
        + floor_note
        + f"An action is unsupported in a state logged fewer than k = {metrics.get('unsupported_k', '?')} times "
        "with it. Traffic light: &lt; 10% ok, 10–20% caution, &gt; 20% red.</p>"
    )
    figs = (
        '<div class="figs">' + _img(plots / "returns.png", "returns") + _img(plots / "safety.png", "safety") + "</div>"
    )
    return _table(head, rows) + note + figs


def _exact_cell(ex: dict[str, Any] | None) -> str:
    return f"{ex['expected_return']:.3f} / {ex['hazard_prob']:.2%}" if ex else "–"


def _ope_section(ope: dict[str, Any] | None, plots: Path) -> str:
    if not ope:
        return "<p>No off-policy evaluation.</p>"
    rows = []
    has_truth = all("truth" in r for r in ope["policies"].values())
    labels = {"pdis": "PDIS", "wis": "WIS", "fqe": "FQE", "dr": "DR", "model": "model",
              "model_pessimistic": "model, pessimistic", "survival_is": "1 - IS survival"}  # fmt: skip
    present = {e for r in ope["policies"].values() for by in r["estimates"].values() for e in by}
    ests = [e for e in labels if e in present]
    for name, r in ope["policies"].items():
        for key in ("return", "cost"):
            if key not in r["estimates"]:
                continue
            digits = 3 if key == "cost" else 2
            cells = [name if key == "return" else "", key]
            if has_truth:
                cells.append(f"{r['truth'][key]['mean']:.{digits}f}")
            cells += [_ci(r["estimates"][key].get(e), digits=digits) for e in ests]
            ess = r.get("weights", {}).get("ess_episodes")
            cells.append(f"{ess:.1f}" if key == "return" and ess is not None else "")
            rows.append(cells)
    sources = sorted({r.get("truth_source", "rollouts") for r in ope["policies"].values()})
    truth_head = [f"truth ({', '.join(sources)})"] if has_truth else []
    table = _table(["policy", "signal", *truth_head, *(labels[e] for e in ests), "IS ESS (episodes)"], rows)
    if not has_truth:
        table += f"<p>No truth to compare with: {_e(sources[0])}.</p>"
    table += f"<p>Behaviour propensities: {_e(ope.get('propensities', 'logged'))}.</p>"
    fqe = next((r["fqe"] for r in ope["policies"].values() if "fqe" in r), None)
    if fqe is not None:
        table += f"<p>FQE: {_e(fqe['function_class'])}; interval: {_e(fqe['interval'])}.</p>"
    if "world_model" in ope:
        acc = ope["world_model"]["accuracy"]
        wm_rows = [[k.replace("_", " "), f"{v:.4g}" if isinstance(v, float) else _e(v)]
                   for k, v in acc.items() if not isinstance(v, dict)]  # fmt: skip
        if "cost_rate" in acc:
            wm_rows.append(["cost rate: logged / predicted",
                            f"{acc['cost_rate']['observed']:.2%} / {acc['cost_rate']['predicted']:.2%}"])  # fmt: skip
        table += (f"<h3>World model ({_e(ope['world_model']['kind'])} transitions): accuracy on held-out "
                  "episodes</h3>" + _table(["measure", "value"], wm_rows))  # fmt: skip
    val = ope.get("validation", {})
    vrows = []
    for key, by in val.items():
        for est, v in by.items():
            rc = "–" if v["rank_correlation"] is None else f"{v['rank_correlation']:.2f}"
            covers = v.get("ci_covers_truth", {})
            vrows.append([key, est, f"{v['mean_abs_error']:.3f}", rc, f"{sum(covers.values())}/{len(covers)}"])
    softening = (
        ope.get("note")
        or f"Deterministic targets are softened with ε = {ope['config']['epsilon']} for importance sampling."
    )
    note = f"<p>{_e(softening)} Cost = expected hazard events per episode.</p>"
    return (
        table
        + note
        + (
            _table(["signal", "estimator", "mean abs error", "rank correlation", "interval covers truth"], vrows)
            if vrows
            else ""
        )
        + _img(plots / "ope_vs_truth.png", "OPE vs truth")
    )


def _recommendation_section(rec: dict[str, Any] | None) -> str:
    if rec is None:
        return ""
    head = f"Recommended: <code>{_e(rec['policy'])}</code>" if rec.get("policy") else "Recommended: none"
    return f'<h2>Recommendation</h2><p class="reasons"><strong>{head}.</strong> {_e(rec["reason"])}.</p>'


def render_html(
    title: str,
    config: dict[str, Any],
    audit: dict[str, Any] | None,
    training: dict[str, Any] | None,
    metrics: dict[str, Any] | None,
    ope: dict[str, Any] | None,
    gate: dict[str, Any] | None,
    plots: Path,
    memo_html: str = "",
    recommendation: dict[str, Any] | None = None,
) -> str:
    """The whole report as one HTML string: the recommendation heads it, ``memo_html`` (the deployment memo)
    ends it."""
    plots = Path(plots)
    train_rows = [
        [n, str(t["n_steps"]), f"{t['seconds']:.1f}", f"{t['steps_per_second']:.0f}"]
        for n, t in (training or {}).items()
    ]
    logs_only = bool(metrics and "evidence" in metrics)
    sections = [
        f"<h1>{_e(title)}</h1>",
        (
            '<p class="reasons"><strong>No simulator: every number in this report is estimated from the logs</strong> '
            "(off-policy estimates, and a world model learned from them where episodes are longer than one step).</p>"
        )
        if logs_only
        else "",
        _recommendation_section(recommendation),
        "<h2>Deployment gate</h2>",
        _gate_section(gate),
        "<h2>Dataset audit</h2>",
        _audit_section(audit, plots),
        "<h2>Training</h2>",
        _table(["learner", "gradient steps", "seconds", "steps/s"], train_rows)
        if train_rows
        else "<p>No training.</p>",
        _img(plots / "learning_curves.png", "learning curves"),
        "<h2>Evaluation on the logged states</h2>"
        if logs_only
        else "<h2>Evaluation (rollouts on held-out seeds, 95% bootstrap CIs)</h2>",
        _metrics_section(metrics, plots),
        "<h2>Off-policy evaluation (estimates from the logs)</h2>"
        if logs_only
        else "<h2>Off-policy evaluation (logs only) against the truth</h2>",
        _ope_section(ope, plots),
        "<h2>Run config</h2>",
        f"<pre>{_e(json.dumps(config, indent=2))}</pre>",
        memo_html,
    ]
    return _page(title, "\n".join(s for s in sections if s))


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")  # fmt: skip


def render_sweep_html(name: str, results: dict[str, Any], plot: Path) -> str:
    """A sweep's report: the trade-off plot, the grouped table and every trial."""

    grouped = [
        [e["regime"], e["learner"], "–" if e["alpha"] is None else f"{e['alpha']:g}", str(e["n_seeds"]),
         _spread(e["normalized_score"]), _spread(e["hazard_rate"], pct=True),
         _spread(e["goal_rate"], pct=True)]
        for e in results["table"]
    ]  # fmt: skip
    trials = [
        [t["name"], str(t["seed"]), _ci(t.get("normalized_score"), digits=1), _ci(t["hazard_rate"], pct=True, digits=1),
         f"{t['seconds']:.1f}"]
        for t in results["trials"]
    ]  # fmt: skip
    body = "\n".join([
        f"<h1>guardrl sweep {_e(name)}</h1>",
        f"<p>{len(results['trials'])} trials on the {_e(results['backend'])} backend in "
        f"{results['wall_seconds']:.1f} s. Each trial collects, trains and evaluates one learner.</p>",
        "<h2>Safety vs return</h2>",
        _img(Path(plot), "trade-off plot"),
        "<h2>By learner, regime and conservative weight (mean [min, max] over seeds)</h2>",
        _table(["regime", "learner", "alpha", "seeds", "normalized score", "hazard %", "goal %"], grouped),
        "<h2>Trials (95% bootstrap CIs over evaluation episodes)</h2>",
        _table(["trial", "seed", "normalized score", "hazard %", "seconds"], trials),
        "<h2>Sweep config</h2>",
        f"<pre>{_e(json.dumps(results['sweep'], indent=2))}</pre>",
    ])  # fmt: skip
    return _page(f"sweep {name}", body)
