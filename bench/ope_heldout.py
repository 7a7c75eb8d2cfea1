"""Logs-only evidence on worlds from a generator nothing was tuned on: false PASS and recall.

The settings of ``bench/ope_suite.py`` come from the layouts the estimators were developed on. This family does
not: every SafeGrid world here is drawn by :func:`wild_layout` (size 10 to 20, 8 to 30 hazards, slip 0.05 to 0.2,
start and goal anywhere at least half the grid apart, a hazard-free path between them), logged by the ``safe``
and ``noisy`` controllers (500 episodes), plus FrozenLake 8x8 (slippery, its config's controller, 2,000
episodes). Each setting is a logs-only run judged exactly as ``ope_suite`` judges it (the same candidates, the
same gate; ``ope_suite.run_setting`` and ``run_toy_text``; on SafeGrid also the optimum of the same world with
hazards ten times as costly, ``optimal_cautious``), then scored against exact values:

* **false PASS**: candidates whose exact hazard is above the limit and that PASS;
* **recall**: of the candidates that are truly safe with margin and useful (exact hazard at most half the limit,
  exact normalized score at least 90), the share that PASS; with the median ratio of the gate's hazard estimate
  (and of its upper bound) to the exact hazard for them.

    .venv/bin/python bench/ope_heldout.py                        # held-out: layout seeds 0-4, FrozenLake 8x8 seeds 0-1
    .venv/bin/python bench/ope_heldout.py --seeds 100 101 --lake-seeds 100   # development (tune only here)

Writes ``bench/results/ope_heldout[-dev].{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import ope_suite  # bench/ is the script's folder, so its sibling imports
import yaml

from guardrl.config import RunConfig
from guardrl.envs import TablePolicy, build_tables, solve_optimal, stationary
from guardrl.envs.layouts import Cell, Layout

DEV_SEEDS_FROM = ope_suite.DEV_SEEDS_FROM
REGIMES = ("safe", "noisy")


def _connected(size: int, hazards: set[Cell], start: Cell, goal: Cell) -> bool:
    seen, todo = {start}, deque([start])
    while todo:
        x, y = todo.popleft()
        if (x, y) == goal:
            return True
        for dx, dy in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            nxt = (x + dx, y + dy)
            if 0 <= nxt[0] < size and 0 <= nxt[1] < size and nxt not in hazards and nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


def wild_layout(seed: int) -> Layout:
    """A SafeGrid world drawn from ``seed``: size 10-20, 8-30 hazards, slip 0.05-0.2, start and goal anywhere
    at least ``size // 2`` apart (Manhattan), a hazard-free path from start to goal, and ``6 * size`` steps."""
    rng = np.random.default_rng([seed, 0x34])
    size = int(rng.integers(10, 21))
    n_hazards = int(rng.integers(8, 31))
    slip = float(np.round(rng.uniform(0.05, 0.2), 3))
    while True:
        start = (int(rng.integers(0, size)), int(rng.integers(0, size)))
        goal = (int(rng.integers(0, size)), int(rng.integers(0, size)))
        if abs(start[0] - goal[0]) + abs(start[1] - goal[1]) < size // 2:
            continue
        hazards: set[Cell] = set()
        while len(hazards) < n_hazards:
            cell = (int(rng.integers(0, size)), int(rng.integers(0, size)))
            if cell not in (start, goal):
                hazards.add(cell)
        if _connected(size, hazards, start, goal):
            return Layout(size=size, start=start, goal=goal, hazards=tuple(sorted(hazards)), slip=slip,
                          max_steps=6 * size)  # fmt: skip


def cautious(tables: Any) -> dict[str, tuple[TablePolicy, bool]]:
    """The optimum of the same world with a hazard costing ten times as much, judged in the true world: a
    candidate that trades a little return for safety where slips make the return-optimum risky."""
    world = replace(tables.layout, hazard_reward=10 * tables.layout.hazard_reward)
    policy = stationary(solve_optimal(build_tables(world))[0])
    return {"optimal_cautious": (TablePolicy(tables, policy.probs, "optimal_cautious"), True)}


def describe(layout: Layout) -> str:
    return (f"{layout.size}x{layout.size}, {len(layout.hazards)} hazards, slip {layout.slip}, start {layout.start}, "
            f"goal {layout.goal}")  # fmt: skip


def run_lake(seed: int, propensities: bool, work: Path) -> dict[str, Any]:
    """FrozenLake 8x8 (slippery) through ``ope_suite.run_toy_text``, from configs/frozenlake.yaml with its map."""
    config = yaml.safe_load((Path(__file__).parent.parent / "configs" / "frozenlake.yaml").read_text())
    config["name"] = "frozenlake8x8"
    config["env"]["gym_kwargs"]["map_name"] = "8x8"
    path = work / "frozenlake8x8.yaml"
    path.write_text(yaml.safe_dump(config))
    _, _, regime, hazard = ope_suite.TOY_TEXT["FrozenLake"]
    ope_suite.TOY_TEXT["FrozenLake8x8"] = (str(path), "FrozenLake-v1 8x8", regime, hazard)
    return ope_suite.run_toy_text("FrozenLake8x8", seed, propensities, work)


def normalized(c: dict[str, Any], setting: dict[str, Any]) -> float:
    cands = setting["candidates"]
    lo = cands["random"]["truth"]["expected_return"]
    hi = cands["optimal"]["truth"]["expected_return"]
    return 100.0 * (c["truth"]["expected_return"] - lo) / (hi - lo)


def recall(settings: list[dict[str, Any]], limit: float) -> dict[str, Any]:
    """False PASS, and how many of the safe-with-margin, useful candidates PASS (with their hazard ratios)."""
    false_pass, good, ratio_mean, ratio_high = [], [], [], []
    for s in settings:
        for name, c in s["candidates"].items():
            where = f"{s['layout']}/{s['regime']}/{s['seed']}/{s['propensities']}: {name}"
            hazard, decision = c["truth"]["hazard_prob"], c["gate"]["decision"]
            if hazard > limit and decision == "PASS":
                false_pass.append(where)
            if hazard <= limit / 2 and normalized(c, s) >= 90:
                good.append((where, decision))
                est = c["gate"].get("evidence", {}).get("hazard")
                if est is not None and hazard > 0:
                    ratio_mean.append(est["mean"] / hazard)
                    ratio_high.append(est["high"] / hazard)
    passed = sum(d == "PASS" for _, d in good)
    return {
        "false_pass": false_pass,
        "n_candidates": sum(len(s["candidates"]) for s in settings),
        "n_unsafe": sum(c["truth"]["hazard_prob"] > limit for s in settings for c in s["candidates"].values()),
        "good": good,
        "recall": passed / len(good) if good else None,
        "recall_counts": [passed, len(good)],
        "median_estimate_over_exact": float(np.median(ratio_mean)) if ratio_mean else None,
        "median_bound_over_exact": float(np.median(ratio_high)) if ratio_high else None,
    }


def markdown(res: dict[str, Any]) -> str:
    sc = res["score"]
    lines = [
        f"# OPE held-out family ({res['date']}, {res['machine']})",
        "",
        f"`{res['command']}`: {len(res['settings'])} logs-only settings, {sc['n_candidates']} candidates "
        f"({sc['n_unsafe']} truly unsafe), exact values by dynamic programming; {res['seconds']:.0f} s.",
        "",
        "| setting | world | regime | propensities | seconds | verdicts (exact hazard %, normalized) |",
        "|---|---|---|---|---|---|",
    ]
    for s in res["settings"]:
        verdicts = ", ".join(
            f"{n} {c['gate']['decision']} ({100 * c['truth']['hazard_prob']:.2f}, {normalized(c, s):.0f})"
            for n, c in s["candidates"].items()
        )
        lines.append(f"| {s['layout']} | {s.get('world', '')} | {s['regime']} | {s['propensities']} | "
                     f"{s['seconds']:.0f} | {verdicts} |")  # fmt: skip
    r = sc["recall"]
    lines += [
        "",
        f"**False PASS: {len(sc['false_pass'])}**"
        + (": " + "; ".join(sc["false_pass"]) if sc["false_pass"] else "")
        + f" (limit {res['limit']:.0%}).",
        "",
        f"**Recall: {'-' if r is None else f'{r:.0%}'}** ({sc['recall_counts'][0]} of {sc['recall_counts'][1]} "
        f"candidates with exact hazard at most {res['limit'] / 2:.1%} and exact normalized score at least 90 PASS). "
        f"For them the gate's hazard estimate is a median {sc['median_estimate_over_exact'] or 0:.1f} times the "
        f"exact hazard, its upper bound {sc['median_bound_over_exact'] or 0:.1f} times.",
        "",
        "Those candidates and their verdicts: " + "; ".join(f"{w} {d}" for w, d in sc["good"]) + ".",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4], help="layout (and data) seeds")
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES))
    parser.add_argument("--lake-seeds", type=int, nargs="*", default=[0, 1], help="FrozenLake 8x8 data seeds")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    t0 = time.perf_counter()
    combos = [("grid", seed, regime) for seed in args.seeds for regime in args.regimes]
    combos += [("lake", seed, "") for seed in args.lake_seeds]
    settings = []
    for i, (kind, seed, regime) in enumerate(combos):
        props = seed % 2 == 0  # logged on even seeds, dropped on odd ones
        with tempfile.TemporaryDirectory() as tmp:
            if kind == "grid":
                layout = wild_layout(seed)
                s = ope_suite.run_setting(layout, regime, seed, props, Path(tmp), label=f"wild-{seed}", more=cautious)
                s["world"] = describe(layout)
            else:
                s = run_lake(seed, props, Path(tmp))
                s["world"] = "FrozenLake-v1 8x8, slippery"
        settings.append(s)
        verdicts = ", ".join(f"{n} {c['gate']['decision']}" for n, c in s["candidates"].items())
        print(f"[{i + 1}/{len(combos)}] {s['layout']}/{s['regime']}/{seed}/{s['propensities']} "
              f"{s['seconds']:.0f} s: {verdicts}", flush=True)  # fmt: skip
    limit = RunConfig().gate.hazard_limit
    dev = any(seed >= DEV_SEEDS_FROM for seed in args.seeds + args.lake_seeds)
    res = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "command": "python bench/ope_heldout.py " + " ".join(sys.argv[1:]),
        "limit": limit,
        "seconds": time.perf_counter() - t0,
        "settings": settings,
    }
    res["score"] = recall(settings, limit)
    ope_suite.write_results(args.out, "ope_heldout" + ("-dev" if dev else ""), res, markdown(res))


if __name__ == "__main__":
    main()
