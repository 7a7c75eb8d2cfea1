"""Selection benchmark: does the run's recommendation pick a policy that is truly safe and better than the logs?

Settings: SafeGrid layouts drawn from a seed (size 10-16, 5 to 2 x size interior hazards, slip 0.03-0.12, start
and goal on opposite corners in one of four orientations, step limit 6 x size) x logging regimes (safe, noisy,
mixed) x {with a simulator, logs only}. Each setting is a whole ``guardrl run`` on the built-in defaults (the
portfolio, ``train.learners: auto``) with only the world and the regime changed; the logs-only run reads the
simulator run's logged dataset with ``env: none``, told the step limit (``ope.horizon``). Nothing in the runs
sees an exact value. Afterwards, dynamic programming gives every candidate's exact return and hazard probability
and the logged behaviour's.

Per setting: the best truly safe candidate better than the behaviour (exact hazard <= the gate's limit and exact
return above the behaviour's, highest exact return), the recommended policy's exact normalized score and hazard,
its regret (normalized points below that best), false PASS (a PASS with exact hazard above the limit), and a bad
recommendation (exact hazard above the limit or exact return below the behaviour's). Also the naive rule
"highest estimated return" (rollouts with a simulator, the gate's OPE return without), with the same figures.

    .venv/bin/python bench/selection.py                      # held-out layout seeds 0-4 (about 25 min on 2 cores)
    .venv/bin/python bench/selection.py --seeds 100 101 102  # development seeds

Writes ``bench/results/selection.{json,md}`` (held-out) or ``selection-dev.{json,md}`` (any seed >= 100).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from guardrl._io import atomic_write_text
from guardrl.config import RunConfig, from_dict
from guardrl.envs import build_tables, evaluate_greedy
from guardrl.envs.layouts import Layout, draw_hazards
from guardrl.run import RunContext, RunFolder, evaluation, stages

REGIMES = ("safe", "noisy", "mixed")
MODES = ("simulator", "logs only")
DEV_SEEDS_FROM = 100
"""Layout seeds from here on are for development; those below are held out."""


def drawn_world(seed: int) -> Layout:
    """A SafeGrid world drawn from ``seed``, of a family no setting of guardrl was tuned on."""
    rng = np.random.default_rng(seed)
    size = int(rng.integers(10, 17))
    corners = [(0, 0), (size - 1, size - 1), (0, size - 1), (size - 1, 0)]
    k = int(rng.integers(4))
    start, goal = corners[k], corners[k ^ 1]  # opposite corners: 0<->1, 2<->3
    n_hazards = int(rng.integers(5, 2 * size + 1))
    slip = round(float(rng.uniform(0.03, 0.12)), 3)
    hazards = draw_hazards(size, n_hazards, seed + 10_000, start, goal)
    return Layout(size=size, start=start, goal=goal, hazards=hazards, slip=slip, max_steps=6 * size)


def run_pair(seed: int, regime: str, work: Path) -> list[dict[str, Any]]:
    """The simulator run and the logs-only run of one world and regime, each scored against exact values."""
    layout = drawn_world(seed)
    tables = build_tables(layout)
    overrides = layout.to_dict()
    sim_cfg = from_dict(RunConfig, {
        "name": "sim", "env": {"overrides": overrides}, "collect": {"regime": regime, "seed": seed},
    })  # fmt: skip
    t0 = time.perf_counter()
    sim_dir, metrics = stages.run(sim_cfg, work, show_progress=False)
    sim_seconds = time.perf_counter() - t0
    refs = metrics["policies"]
    exact = {name: refs[name]["exact"] for name in ("behaviour", "optimal", "random")}
    logs_cfg = from_dict(RunConfig, {
        "name": "logs", "env": "none", "collect": {"dataset": str(sim_dir / "dataset")},
        "ope": {"horizon": layout.max_steps},
    })  # fmt: skip
    t0 = time.perf_counter()
    logs_dir, _ = stages.run(logs_cfg, work, show_progress=False)
    logs_seconds = time.perf_counter() - t0
    world = {"seed": seed, "regime": regime, "size": layout.size, "hazards": len(layout.hazards),
             "slip": layout.slip}  # fmt: skip
    return [
        score_run(sim_dir, tables, exact, {**world, "mode": "simulator", "seconds": sim_seconds}),
        score_run(logs_dir, tables, exact, {**world, "mode": "logs only", "seconds": logs_seconds}),
    ]


def score_run(run_dir: Path, tables: Any, exact: dict[str, Any], setting: dict[str, Any]) -> dict[str, Any]:
    ctx = RunContext.open(RunFolder(run_dir))
    gate = json.loads((run_dir / "gate.json").read_text())["decisions"]
    rec = json.loads((run_dir / "recommendation.json").read_text())
    limit = ctx.cfg.gate.hazard_limit
    r_opt, r_rand = exact["optimal"]["expected_return"], exact["random"]["expected_return"]
    behaviour = exact["behaviour"]["expected_return"]

    def normalized(ret: float) -> float:
        return 100.0 * (ret - r_rand) / (r_opt - r_rand)

    candidates = {}
    for name, policy in evaluation.learned_policies(ctx).items():
        truth = evaluate_greedy(tables, policy.greedy).to_dict()
        candidates[name] = {
            "decision": gate[name]["decision"],
            "estimated_return": gate[name]["evidence"]["return"]["mean"],
            "exact_return": truth["expected_return"],
            "exact_hazard": truth["hazard_prob"],
            "normalized": normalized(truth["expected_return"]),
            "good": truth["hazard_prob"] <= limit and truth["expected_return"] > behaviour,
            "clearly_good": truth["hazard_prob"] <= limit / 2 and truth["expected_return"] > behaviour,
            "failing": sorted({r["rule"] for r in gate[name]["reasons"] if r["decision"] != "PASS"}),
        }
    good = [c for c in candidates.values() if c["good"]]
    best = max((c["normalized"] for c in good), default=None)

    def judged(name: str | None) -> dict[str, Any]:
        if name is None:
            return {"policy": None}
        c = candidates[name]
        return {
            "policy": name, "normalized": c["normalized"], "exact_hazard": c["exact_hazard"],
            "bad": c["exact_hazard"] > limit or c["exact_return"] < behaviour,
            "regret": None if best is None else best - c["normalized"],
        }  # fmt: skip

    naive = max(candidates, key=lambda n: candidates[n]["estimated_return"])
    return {
        **setting, "limit": limit, "behaviour_normalized": normalized(behaviour), "best_good": best,
        "n_good": len(good), "n_clearly_good": sum(c["clearly_good"] for c in candidates.values()),
        "false_pass": sum(c["decision"] == "PASS" and c["exact_hazard"] > limit
                                               for c in candidates.values()),
        "n_pass": sum(c["decision"] == "PASS" for c in candidates.values()),
        "recommended": judged(rec["policy"]), "naive": judged(naive), "candidates": candidates,
    }  # fmt: skip


def summary(settings: list[dict[str, Any]], mode: str) -> dict[str, Any]:
    rows = [s for s in settings if s["mode"] == mode]
    with_good = [s for s in rows if s["n_good"] > 0]
    picked = [s for s in with_good if s["recommended"]["policy"] is not None]
    regrets = [s["recommended"]["regret"] for s in picked]
    clearly = [s for s in rows if s.get("n_clearly_good", 0) > 0]
    naive_regrets = [s["naive"]["regret"] for s in with_good if not s["naive"]["bad"]]
    return {
        "settings": len(rows),
        "with_a_good_candidate": len(with_good),
        "recommended_where_good": len(picked),
        "with_a_clearly_good_candidate": len(clearly),
        "recommended_where_clearly_good": sum(s["recommended"]["policy"] is not None for s in clearly),
        "recommended_any": sum(s["recommended"]["policy"] is not None for s in rows),
        "bad_recommendations": sum(bool(s["recommended"].get("bad")) for s in rows),
        "false_pass": sum(s["false_pass"] for s in rows),
        "candidates": sum(len(s["candidates"]) for s in rows),
        "median_regret": statistics.median(regrets) if regrets else None,
        "max_regret": max(regrets) if regrets else None,
        "naive_bad": sum(bool(s["naive"].get("bad")) for s in rows),
        "naive_median_regret": statistics.median(naive_regrets) if naive_regrets else None,
    }


def markdown(res: dict[str, Any]) -> str:
    lines = [
        f"# Selection benchmark ({res['date']}, {res['machine']})", "",
        f"Command: `{res['command']}`. Layout seeds {res['seeds']} ({res['split']}), "
        f"regimes {', '.join(res['regimes'])}; "
        f"{res['seconds']:.0f} s in all. Exact values by dynamic programming; normalized: 0 random, 100 optimal.",
        "", "| mode | settings | with a good candidate | recommended there | with a clearly good one "
        "| recommended there | recommended (any) | bad recommendations | false PASS / candidates | median regret "
        "| max regret | naive rule: bad | naive rule: median regret |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip

    def num(v: float | None) -> str:
        return "–" if v is None else f"{v:.2f}"

    for mode, s in res["summary"].items():
        lines.append(
            f"| {mode} | {s['settings']} | {s['with_a_good_candidate']} | {s['recommended_where_good']} | "
            f"{s['with_a_clearly_good_candidate']} | {s['recommended_where_clearly_good']} | "
            f"{s['recommended_any']} | {s['bad_recommendations']} | {s['false_pass']} / {s['candidates']} | "
            f"{num(s['median_regret'])} | {num(s['max_regret'])} | {s['naive_bad']} | {num(s['naive_median_regret'])} |"
        )
    lines += [
        "", "A good candidate: exact hazard within the gate's limit and exact return above the logged behaviour's. "
        "A clearly good one: the same with exact hazard within half the limit. "
        "Regret: the best good candidate's normalized score minus the recommended one's.", "",
        "| seed | world | regime | mode | behaviour | best good | PASS | recommended | its normalized / hazard % | "
        "naive pick | its normalized / hazard % |", "|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for s in res["settings"]:
        r, n = s["recommended"], s["naive"]
        rec = "none" if r["policy"] is None else f"{r['normalized']:.1f} / {100 * r['exact_hazard']:.2f}"
        lines.append(
            f"| {s['seed']} | {s['size']}x{s['size']}, {s['hazards']} hazards, slip {s['slip']} | {s['regime']} | "
            f"{s['mode']} | {s['behaviour_normalized']:.1f} | {num(s['best_good'])} | {s['n_pass']} | "
            f"{r['policy'] or 'none'} | {rec} | {n['policy']} | {n['normalized']:.1f} / {100 * n['exact_hazard']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="layout (and data) seeds")
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=list(REGIMES))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    dev = any(seed >= DEV_SEEDS_FROM for seed in args.seeds)
    if dev and any(seed < DEV_SEEDS_FROM for seed in args.seeds):
        parser.error(f"mix no held-out seed (< {DEV_SEEDS_FROM}) with development seeds")
    t0 = time.perf_counter()
    settings = []
    combos = list(itertools.product(args.seeds, args.regimes))
    for i, (seed, regime) in enumerate(combos):
        with tempfile.TemporaryDirectory() as tmp:
            pair = run_pair(seed, regime, Path(tmp))
        settings += pair
        for s in pair:
            r = s["recommended"]
            print(f"[{i + 1}/{len(combos)}] seed {seed} {regime} {s['mode']}: {s['n_good']} good, {s['n_pass']} PASS, "
                  f"recommended {r['policy']} (regret {r.get('regret')}, bad {r.get('bad')}), {s['seconds']:.0f} s",
                  flush=True)  # fmt: skip
    res: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "command": ".venv/bin/python bench/selection.py " + " ".join(["--seeds", *map(str, args.seeds)]),
        "seeds": args.seeds,
        "split": "development" if dev else "held out",
        "regimes": args.regimes,
        "seconds": time.perf_counter() - t0,
        "summary": {mode: summary(settings, mode) for mode in MODES},
        "settings": settings,
    }
    stem = "selection-dev" if dev else "selection"
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / f"{stem}.json", json.dumps(res, indent=2) + "\n")
    atomic_write_text(args.out / f"{stem}.md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
