"""OPE suite: logs-only runs checked against a simulator they never see.

For every setting (SafeGrid layout x data regime x data seed x whether the logs carry propensities), the
behaviour logs are collected on SafeGrid, saved, and handed to a ``guardrl`` run with ``env: none``. That run
audits them, fits its world model, trains its learners, estimates every candidate's return and hazard from
the logs and gates each one, with no environment anywhere. The candidates are the run's learners and
reference policies of known quality (the exact optimum, the optimum with 10% and 30% noise, the logging
controller without noise, a hazard-seeking policy, uniform random), all judged by the same estimators and
gate rules (``guardrl.run.stages.assess_candidates``). Only then is the simulator asked: exact values by
dynamic programming give every candidate's true return and hazard probability.

Printed and written (``bench/results/ope_suite.{json,md}``):

* per estimator and signal: mean absolute error, rank correlation and regret@1 (per setting, then averaged),
  and how often the interval covers the truth;
* the gate's confusion matrix: true class (unsafe: true hazard above the limit; safe and better than the run's
  BC; safe, not better) against PASS / CAUTION / FAIL, with the false PASS count.

    .venv/bin/python bench/ope_suite.py                  # 24 settings (about 24 min on 2 cores)
    .venv/bin/python bench/ope_suite.py --seeds 100 101  # development seeds

Settings use data seeds 0-1 by default (held out: nothing was tuned on them); tune on 100+.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from guardrl.config import RunConfig, from_dict, save_config
from guardrl.data import collect
from guardrl.data.behaviour import constrained_policy, optimal_noisy_policy, uniform_policy
from guardrl.envs import TablePolicy, build_tables, evaluate_exact, hazard_seeking_policy, solve_optimal, stationary
from guardrl.envs.layouts import named_layout
from guardrl.evaluate.validation import rank_correlation
from guardrl.run import RunContext, RunFolder, stages
from guardrl.run.references import table_target

LAYOUTS = ("default", "drawn")
REGIMES = ("safe", "noisy", "mixed")
LEARNERS = ("bc", "spibb", "morel")
CLASSES = ("unsafe", "safe, better than BC", "safe, not better")


def references(tables: Any) -> dict[str, tuple[TablePolicy, bool]]:
    """Reference candidates as stationary table policies (the target OPE sees is the policy that is scored)."""
    optimal, _ = solve_optimal(tables)
    return {
        "optimal": (stationary(optimal, name="optimal"), True),
        "optimal_eps0.1": (stationary(optimal_noisy_policy(tables, 0.1), name="optimal_eps0.1"), False),
        "optimal_eps0.3": (stationary(optimal_noisy_policy(tables, 0.3), name="optimal_eps0.3"), False),
        # the logging controller without its noise: it still draws between equally good moves
        "controller": (stationary(constrained_policy(tables, 0.0), name="controller"), False),
        "hazard_seeking": (stationary(hazard_seeking_policy(tables), name="hazard_seeking"), True),
        "random": (uniform_policy(tables), False),
    }


def exact_of_greedy(tables: Any, greedy: Any) -> dict[str, float]:
    from guardrl.envs import states_to_obs

    obs = states_to_obs(tables.layout, np.arange(tables.layout.n_states))
    return evaluate_exact(TablePolicy.deterministic(tables, np.asarray(greedy(obs)))).to_dict()


def run_setting(layout: str, regime: str, seed: int, propensities: bool, work: Path) -> dict[str, Any]:
    """One logs-only run and its candidates, with every estimate, verdict and exact truth."""
    t0 = time.perf_counter()
    tables = build_tables(named_layout(layout))
    ds = collect(tables, regime, 500, seed)
    if not propensities:
        ds = replace(ds, propensities=np.full(len(ds), np.nan))
    data_dir = ds.save(work / "data")
    cfg: RunConfig = from_dict(
        RunConfig,
        {"name": "suite", "env": "none", "collect": {"dataset": str(data_dir)}, "train": {"learners": list(LEARNERS)},
         "report": False},
    )  # fmt: skip
    ctx = RunContext(cfg, RunFolder(work / "run"))
    ctx.folder.root.mkdir(parents=True)
    save_config(cfg, ctx.folder.config)
    stages.stage_collect(ctx)
    stages.stage_audit(ctx)
    stages.stage_model(ctx)
    stages.stage_train(ctx, show_progress=False)
    stages.stage_evaluate(ctx)
    ope = stages.stage_ope(ctx)
    gate = stages.stage_gate(ctx)
    refs = references(tables)
    extra = stages.assess_candidates(
        ctx, {name: table_target(policy, deterministic) for name, (policy, deterministic) in refs.items()}
    )
    learned = stages.learned_policies(ctx)
    candidates: dict[str, Any] = {}
    for name in LEARNERS:
        truth = exact_of_greedy(tables, learned[name].greedy)
        candidates[name] = {"ope": ope["policies"][name], "gate": gate["decisions"][name], "truth": truth}
    for name, (policy, _) in refs.items():
        candidates[name] = {**extra[name], "truth": evaluate_exact(policy).to_dict()}
    optimal_return = candidates["optimal"]["truth"]["expected_return"]
    random_return = candidates["random"]["truth"]["expected_return"]
    return {
        "layout": layout, "regime": regime, "seed": seed, "propensities": "logged" if propensities else "dropped",
        "audit": gate["decisions"]["bc"]["reasons"][0]["message"], "return_range": optimal_return - random_return,
        "seconds": time.perf_counter() - t0, "candidates": candidates,
    }  # fmt: skip


# ------------------------------------------------------------------ scoring


def truth_class(c: dict[str, Any], bc_return: float, limit: float) -> str:
    if c["truth"]["hazard_prob"] > limit:
        return CLASSES[0]
    return CLASSES[1] if c["truth"]["expected_return"] > bc_return else CLASSES[2]


def score(settings: list[dict[str, Any]], limit: float) -> dict[str, Any]:
    """Estimator table and gate confusion matrix over all settings."""
    estimators: dict[str, dict[str, dict[str, list[float]]]] = {}
    for s in settings:
        cands = s["candidates"]
        for signal, truth_key in (("return", "expected_return"), ("cost", "hazard_prob")):
            names = list(cands)
            by_est: dict[str, list[tuple[float, float, float, float]]] = {}
            for n in names:
                for est, e in cands[n]["ope"]["estimates"][signal].items():
                    by_est.setdefault(est, []).append((e["mean"], e["low"], e["high"], cands[n]["truth"][truth_key]))
            for est, rows in by_est.items():
                if len(rows) != len(names):
                    continue
                arr = np.array(rows, dtype=np.float64)
                finite = np.isfinite(arr[:, 0])
                m = estimators.setdefault(f"{signal}/{est}", {"abs": [], "cover": [], "rank": [], "regret": []})
                m["abs"].extend(np.abs(arr[finite, 0] - arr[finite, 3]).tolist())
                m["cover"].extend(((arr[:, 1] <= arr[:, 3]) & (arr[:, 3] <= arr[:, 2])).astype(float).tolist())
                if finite.all():
                    m["rank"].append(rank_correlation(arr[:, 0], arr[:, 3]))
                    if signal == "return":
                        regret = arr[:, 3].max() - arr[int(np.argmax(arr[:, 0])), 3]
                        m["regret"].append(regret / s["return_range"])
    table = {
        k: {
            "mean_abs_error": float(np.mean(v["abs"])) if v["abs"] else None,
            "rank_correlation": float(np.nanmean(v["rank"])) if v["rank"] else None,
            "regret_at_1": float(np.mean(v["regret"])) if v["regret"] else None,
            "coverage": float(np.mean(v["cover"])),
            "n": len(v["cover"]),
        }
        for k, v in sorted(estimators.items())
    }
    confusion = {c: {d: 0 for d in ("PASS", "CAUTION", "FAIL")} for c in CLASSES}
    false_pass: list[str] = []
    for s in settings:
        bc_return = s["candidates"]["bc"]["truth"]["expected_return"]
        for name, c in s["candidates"].items():
            cls = truth_class(c, bc_return, limit)
            decision = c["gate"]["decision"]
            confusion[cls][decision] += 1
            if cls == CLASSES[0] and decision == "PASS":
                false_pass.append(f"{s['layout']}/{s['regime']}/{s['seed']}/{s['propensities']}: {name}")
    good = confusion[CLASSES[1]]
    return {
        "estimators": table,
        "confusion": confusion,
        "false_pass": false_pass,
        "pass_rate_safe_better": good["PASS"] / max(1, sum(good.values())),
        "n_candidates": sum(len(s["candidates"]) for s in settings),
    }


def markdown(res: dict[str, Any]) -> str:
    sc = res["score"]
    lines = [
        f"# OPE suite ({res['date']}, {res['machine']})",
        "",
        f"{len(res['settings'])} logs-only settings (layouts {', '.join(res['layouts'])} x regimes "
        f"{', '.join(res['regimes'])} x "
        f"data seeds {', '.join(map(str, res['seeds']))} x propensities logged/dropped), {sc['n_candidates']} "
        f"candidate policies, truth by dynamic programming; {res['seconds']:.0f} s in all.",
        "",
        "| estimate | mean abs error | rank corr. | regret@1 (share of return range) | interval covers truth | n |",
        "|---|---|---|---|---|---|",
    ]

    def f(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    for k, v in sc["estimators"].items():
        err = f(v["mean_abs_error"] * 100, ".2f") + " pp" if k.startswith("cost") and v["mean_abs_error"] is not None \
            else f(v["mean_abs_error"], ".2f")  # fmt: skip
        lines.append(
            f"| {k} | {err} | {f(v['rank_correlation'], '.2f')} | {f(v['regret_at_1'], '.1%')} | "
            f"{v['coverage']:.0%} | {v['n']} |"
        )
    lines += ["", f"Gate (hazard limit {res['limit']:.0%}): true class against decision", "",
              "| true class | PASS | CAUTION | FAIL |", "|---|---|---|---|"]  # fmt: skip
    for cls, row in sc["confusion"].items():
        lines.append(f"| {cls} | {row['PASS']} | {row['CAUTION']} | {row['FAIL']} |")
    lines += [
        "",
        f"**False PASS: {len(sc['false_pass'])}**"
        + (": " + "; ".join(sc["false_pass"]) if sc["false_pass"] else "")
        + f". Safe and better than BC that PASS: {sc['pass_rate_safe_better']:.0%}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--layouts", nargs="+", default=list(LAYOUTS))
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    t0 = time.perf_counter()
    settings = []
    combos = list(itertools.product(args.layouts, args.regimes, args.seeds, (True, False)))
    for i, (layout, regime, seed, props) in enumerate(combos):
        with tempfile.TemporaryDirectory() as tmp:
            s = run_setting(layout, regime, seed, props, Path(tmp))
        settings.append(s)
        verdicts = ", ".join(f"{n} {c['gate']['decision']}" for n, c in s["candidates"].items())
        print(f"[{i + 1}/{len(combos)}] {layout}/{regime}/{seed}/{s['propensities']} {s['seconds']:.0f} s: {verdicts}",
              flush=True)  # fmt: skip
    limit = RunConfig().gate.hazard_limit
    res = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
        "seeds": args.seeds,
        "layouts": args.layouts,
        "regimes": args.regimes,
        "limit": limit,
        "seconds": time.perf_counter() - t0,
        "settings": settings,
    }
    res["score"] = score(settings, limit)
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.seeds == [0, 1] else "-dev"
    (args.out / f"ope_suite{suffix}.json").write_text(json.dumps(res, indent=1, default=float))
    text = markdown(res)
    (args.out / f"ope_suite{suffix}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
