"""Console tables of a run, readable in an 80-column terminal and in logs or pipes (no terminal).

Each function returns rich renderables; the command line prints them. Intervals are printed by
:func:`guardrl.evaluate.metrics.format_interval`, the one formatter the report and the gate use too.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from guardrl.evaluate.metrics import format_interval

COLORS = {"PASS": "green", "CAUTION": "yellow", "FAIL": "red"}
AUDIT_COLORS = {"offline-RL-ready": "green", "BC-only": "yellow"}


def _table(title: str, *columns: str, left: int = 1) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title_justify="left")
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i < left else "right", no_wrap=True)
    return table


def summary(metrics: dict[str, Any]) -> RenderableType:
    """The evaluation in three narrow tables: rollouts, goal and score, agreement with the logs. A logs-only
    run has no rollouts: only the agreement with the logs, and a line saying where the rest comes from."""
    policies = metrics["policies"]
    if "evidence" in metrics:
        return _logs_only_summary(metrics)
    safety = _table("evaluation: rollouts on held-out seeds (95% bootstrap CIs)", "policy", "return", "hazard %")
    score = _table("", "policy", "goal %", "normalized", "exact ret / haz %")
    logs = _table("", "policy", "logged-action mismatch", "unsupported: logs / own")
    for name, p in policies.items():
        safety.add_row(name, format_interval(p["return"]), format_interval(p["hazard_rate"], pct=True))
        ex = p.get("exact")
        exact = f"{ex['expected_return']:.2f} / {100 * ex['hazard_prob']:.2f}" if ex else "-"
        score.add_row(
            name, format_interval(p["goal_rate"], pct=True), format_interval(p.get("normalized_score")), exact
        )
        mismatch = p.get("mismatch")
        logs.add_row(name, f"{mismatch['rate']:.1%}" if mismatch else "-", _unsupported(p.get("unsupported")))
    lines: list[RenderableType] = [safety, Text(""), score, Text(""), logs, Text("")]
    lines.append(Text("mismatch and unsupported-action rates: < 10% ok, 10-20% caution, > 20% red"))
    if "mismatch_floor" in metrics:
        lines.append(Text(f"mismatch floor (exact optimum vs logged actions): {metrics['mismatch_floor']:.1%}"))
    if "cql_vs_bc_hazard" in metrics:
        lines.append(Text(f"CQL vs BC on hazard rate: {metrics['cql_vs_bc_hazard']}"))
    return Group(*lines)


def _logs_only_summary(metrics: dict[str, Any]) -> RenderableType:
    """How far each policy strays from the logs; where a simulator made the logs, its exact values beside (the
    gate never reads them)."""
    with_exact = "behaviour_exact" in metrics
    logs = _table("evaluation on the logged states (no simulator)", "policy", "logged-action mismatch",
                  "unsupported actions", *(["exact r / haz%"] if with_exact else []))  # fmt: skip
    for name, p in metrics["policies"].items():
        logs.add_row(name, f"{p['mismatch']['rate']:.1%}", f"{p['unsupported']['logs_rate']:.1%}",
                     *([_exact(p.get("exact"))] if with_exact else []))  # fmt: skip
    if with_exact:
        logs.add_row("behaviour", "-", "-", _exact(metrics["behaviour_exact"]))
    lines: list[RenderableType] = [logs, Text(""), Text(f"evidence: {metrics['evidence']}")]
    if with_exact:
        lines.append(Text(f"exact values: {metrics.get('exact_source', '')}"))
    return Group(*lines)


def _exact(ex: dict[str, Any] | None) -> str:
    return f"{ex['expected_return']:.3f} / {100 * ex['hazard_prob']:.2f}" if ex else "-"


def _unsupported(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "-"
    logs = f"{entry['logs_rate']:.1%}" if "logs_rate" in entry else "-"
    return f"{logs} / {entry['rollout_rate']:.1%}"


def world_model(accuracy: dict[str, Any]) -> RenderableType:
    """The world model's accuracy on the held-out episodes."""
    table = _table(f"world model: accuracy on {accuracy['n_transitions']} held-out transitions", "measure", "value")
    rows = [
        ("next observation: top-1 accuracy", accuracy.get("next_obs_accuracy"), "{:.1%}"),
        ("next observation: mean log-likelihood", accuracy.get("next_obs_log_likelihood"), "{:.3f}"),
        ("next observation: RMSE", accuracy.get("next_obs_rmse"), "{:.3f}"),
        ("reward: mean absolute error", accuracy.get("reward_mae"), "{:.3f}"),
        ("cost rate: logged / predicted", None, None),
        ("cost: Brier score", accuracy.get("cost_brier"), "{:.4f}"),
        ("cost events predicted (recall at 0.5)", accuracy.get("cost_recall"), "{:.1%}"),
        ("termination accuracy", accuracy.get("termination_accuracy"), "{:.1%}"),
        ("ensemble disagreement (mean TV)", accuracy.get("disagreement_mean"), "{:.3f}"),
    ]
    for label, value, fmt in rows:
        if fmt is None:
            rate = accuracy["cost_rate"]
            table.add_row(label, f"{rate['observed']:.2%} / {rate['predicted']:.2%}")
        elif value is not None:
            table.add_row(label, fmt.format(value))
    return table


def gate(result: dict[str, Any]) -> RenderableType:
    """The gate's decision per candidate, each reason on its own (indented, wrapping) line under it."""
    lines: list[RenderableType] = [Text("deployment gate", style="italic")]
    for name, d in result["decisions"].items():
        lines.append(Text.assemble((f"{name}: ", "bold"), (d["decision"], f"bold {COLORS[d['decision']]}")))
        reasons = Table.grid(padding=(0, 1))
        reasons.add_column(width=1)
        reasons.add_column(width=7, no_wrap=True)
        reasons.add_column(ratio=1)
        for r in d["reasons"]:
            reasons.add_row("", Text(r["decision"], style=COLORS[r["decision"]]), f"{r['rule']}: {r['message']}")
        lines.append(reasons)
    return Group(*lines)


def _actions(size: dict[str, Any]) -> str:
    """``4 actions``, or for continuous logs ``2-dimensional continuous actions``."""
    if "n_actions" in size:
        return f"{size['n_actions']} actions"
    return f"{size['action_dim']}-dimensional continuous actions"


def _coverage_rows(cov: dict[str, Any], k: int) -> list[tuple[str, str]]:
    """Per-state support (discrete logs), or the action box's use and the support threshold (continuous logs)."""
    if "visited_states" not in cov:
        return [
            ("support: distance threshold", f"{cov['support_threshold']:.3g}"),
            ("action mean", " ".join(f"{m:.2f}" for m in cov["action_mean"])),
            ("actions on the box edge", f"{cov['share_on_box_edge']:.1%}"),
        ]
    return [
        ("visited states", f"{cov['visited_states']} ({cov['state_mode']})"),
        (f"transitions in states logged >= {k} times", f"{cov['covered_share']:.1%}"),
        (f"... with >= 2 actions logged >= {k} times", f"{cov['choice_share']:.1%}"),
        (f"visited states with an action logged < {k} times", f"{cov['states_with_thin_action']:.1%}"),
        ("logged action counts", " ".join(str(c) for c in cov["action_counts"])),
    ]


def _propensity_row(prop: dict[str, Any]) -> tuple[str, str]:
    if "share_below_0.05" not in prop:  # continuous logs: densities, not probabilities
        return ("density min / median", f"{prop['min']:.3g} / {prop['median']:.3g}")
    return ("min propensity / share < 0.05", f"{prop['min']:.3f} / {prop['share_below_0.05']:.1%}")


def audit(result: dict[str, Any]) -> RenderableType:
    """The dataset audit: size, coverage, distributions, sanity findings and the verdict with its reasons."""
    v = result["verdict"]
    size = result["size"]
    lines: list[RenderableType] = [
        Text(f"{size['transitions']} transitions, {size['episodes']} episodes, {_actions(size)}")
    ]
    if "coverage" in result:
        cov, ends, prop, dist = (
            result["coverage"],
            result["episode_ends"],
            result["propensities"],
            result["distributions"],
        )
        table = _table("dataset audit", "measure", "value")
        for label, value in (
            *_coverage_rows(cov, result["config"]["k"]),
            ("reward mean / std", f"{dist['reward']['mean']:.3g} / {dist['reward']['std']:.3g}"),
            ("episode return mean", f"{dist['episode_return']['mean']:.2f}"),
            ("episode length mean", f"{dist['episode_length']['mean']:.1f}"),
            ("ends: terminated / truncated / unended",
             f"{ends['termination']} / {ends['truncation']} / {ends['unended']}"),
            ("ends: goal / hazard", f"{ends['goal']} / {ends['hazard']}"),
            _propensity_row(prop),
        ):  # fmt: skip
            table.add_row(label, value)
        lines.append(table)
        lines += [Text.assemble(("sanity: ", "yellow"), finding) for finding in result["sanity"]]
    lines.append(Text.assemble("verdict: ", (v["verdict"], f"bold {AUDIT_COLORS.get(v['verdict'], 'red')}")))
    lines += [Text(f"  - {reason}") for reason in v["reasons"]]
    return Group(*lines)


def ope(result: dict[str, Any]) -> RenderableType:
    """Off-policy estimates per policy and estimator, the truth first, then the validation summary."""
    table = _table("off-policy evaluation (95% intervals)", "policy", "estimate", "return", "cost", left=2)
    for name, r in result["policies"].items():
        truth = r.get("truth")
        if truth is not None:
            table.add_row(name, "truth", f"{truth['return']['mean']:.2f}",
                          f"{truth['cost']['mean']:.3f}" if "cost" in truth else "-")  # fmt: skip
        est = r["estimates"]
        names = list(dict.fromkeys([*est["return"], *est.get("cost", {})]))
        for i, e in enumerate(names):
            ret, cost = est["return"].get(e), est.get("cost", {}).get(e)
            table.add_row(name if truth is None and i == 0 else "", e,
                          format_interval(ret, digits=2) if ret else "-", format_interval(cost, digits=3),
                          end_section=e == names[-1])  # fmt: skip
    lines: list[RenderableType] = [table]
    ess = ", ".join(f"{n} {r['weights']['ess_episodes']:.1f}" for n, r in result["policies"].items())
    lines.append(Text(f"importance weights, effective episodes: {ess}"))
    source = {r.get("truth_source", "rollouts") for r in result["policies"].values()}
    lines.append(Text(f"truth: {', '.join(sorted(source))}"))
    for key, by in result.get("validation", {}).items():
        for est_name, v in by.items():
            rc = "-" if v["rank_correlation"] is None else f"{v['rank_correlation']:.2f}"
            covered = sum(v["ci_covers_truth"].values())
            lines.append(
                Text(f"{key} {est_name}: abs error {v['mean_abs_error']:.3f}, rank corr. {rc}, "
                     f"interval covers truth {covered}/{len(v['ci_covers_truth'])}")
            )  # fmt: skip
    return Group(*lines)


def sweep(results: dict[str, Any], name: str) -> RenderableType:
    """A sweep's grouped table: mean [min, max] over seeds."""
    table = _table(f"sweep {name}: {len(results['trials'])} trials, {results['backend']} backend",
                   "regime", "learner", "alpha", "seeds", "normalized", "hazard %", left=2)  # fmt: skip
    for e in results["table"]:
        alpha = "-" if e["alpha"] is None else f"{e['alpha']:g}"
        table.add_row(e["regime"], e["learner"], alpha, str(e["n_seeds"]),
                      format_interval(e["normalized_score"], spread=True),
                      format_interval(e["hazard_rate"], pct=True, spread=True))  # fmt: skip
    return table


def recommendation(rec: dict[str, Any]) -> RenderableType:
    """One line that heads a run's output: the recommended policy and why, or none and why."""
    if rec.get("policy"):
        return Text.assemble(("recommendation: ", "bold"), (str(rec["policy"]), "bold green"), f" ({rec['reason']})")
    return Text.assemble(("recommendation: ", "bold"), ("none", "bold red"), f" ({rec['reason']})")
