"""Quality matrix in the style of D4RL tables: dataset regime x learner x dataset seed.

Each cell is a full ``guardrl run`` (collect 500 episodes with that seed, train every learner with the same seed,
1,500 evaluation episodes on the held-out seeds 10001-10003). Scores are **exact** (dynamic programming over the
grid: no Monte Carlo noise): per regime and learner the table gives the mean exact normalized score and hazard
probability over seeds with a 95% CI across seeds (t interval), and how many seeds meet the bar (normalized
score >= 99 and hazard <= 0.5%). Per seed it also says whether CQL's rollout hazard CI upper bound lies below
BC's rollout hazard rate.

    .venv/bin/python bench/matrix.py                          # 4 regimes x 7 learners x 5 seeds (~25 min)
    .venv/bin/python bench/matrix.py --regimes safe --seeds 100 101 --out /tmp/dev   # development seeds

Writes ``bench/results/matrix.json`` and ``bench/results/matrix.md`` (or ``--out DIR``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from guardrl._io import atomic_write_json, atomic_write_text
from guardrl.config import CollectConfig, RunConfig
from guardrl.evaluate.ope import OPEConfig
from guardrl.run import run

# two-sided 95% Student t quantiles for n-1 degrees of freedom
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def across_seeds(values: list[float]) -> dict[str, float]:
    """Mean with a 95% t interval over seeds (the interval is the mean when there is one seed)."""
    a = np.asarray(values, dtype=np.float64)
    mean = float(a.mean())
    if a.size < 2:
        return {"mean": mean, "low": mean, "high": mean}
    half = T95.get(a.size - 1, 1.96) * float(a.std(ddof=1)) / math.sqrt(a.size)
    return {"mean": mean, "low": mean - half, "high": mean + half}


def result_header(command: str, default: bool) -> dict[str, str]:
    """The opening fields of a bench's saved result: date, machine, and the command (marked when a subset ran)."""
    return {
        "date": dt.date.today().isoformat(),
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "command": command + ("" if default else " (subset)"),
    }


def save_results(out: Path, name: str, default: bool, res: dict[str, Any], text: str) -> None:
    """Write ``<name>.json`` and ``<name>.md`` (``<name>-subset.*`` for a non-default run) and print the text."""
    out.mkdir(parents=True, exist_ok=True)
    stem = name if default else f"{name}-subset"
    atomic_write_json(out / f"{stem}.json", res)
    atomic_write_text(out / f"{stem}.md", text)
    print(text)


def run_cell(regime: str, seed: int, learners: tuple[str, ...]) -> dict[str, Any]:
    base = RunConfig()
    cfg = dataclasses.replace(
        base,
        name=f"{regime}-{seed}",
        collect=CollectConfig(regime=regime, n_episodes=base.collect.n_episodes, seed=seed),
        train=dataclasses.replace(base.train, learners=learners, seed=seed),
        ope=OPEConfig(estimators=("pdis", "wis")),  # quality only: no FQE, no report
        report=False,
    )
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        _, metrics = run(cfg, Path(tmp), show_progress=False)
        seconds = time.perf_counter() - t0
    out: dict[str, Any] = {"seconds": seconds, "timings": metrics["timings_seconds"], "policies": {}}
    for name in ("behaviour", *learners):
        p = metrics["policies"][name]
        out["policies"][name] = {
            "exact": p["exact"],
            "normalized_score": p["normalized_score"],
            "hazard_rate": p["hazard_rate"],
            "goal_rate": p["goal_rate"],
        }
    return out


BAR_SCORE, BAR_HAZARD = 99.0, 0.005


def meets_bar(exact: dict[str, float]) -> bool:
    return exact["normalized_score"] >= BAR_SCORE and exact["hazard_prob"] <= BAR_HAZARD


def summarize(cells: dict[str, dict[int, dict[str, Any]]], learners: tuple[str, ...]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for regime, by_seed in cells.items():
        rows: dict[str, Any] = {}
        for name in ("behaviour", *learners):
            per_seed = [by_seed[s]["policies"][name]["exact"] for s in sorted(by_seed)]
            rows[name] = {
                "normalized_score": across_seeds([p["normalized_score"] for p in per_seed]),
                "hazard_rate": across_seeds([p["hazard_prob"] for p in per_seed]),
                "per_seed_score": [p["normalized_score"] for p in per_seed],
                "per_seed_hazard": [p["hazard_prob"] for p in per_seed],
                "bar_met": int(sum(meets_bar(p) for p in per_seed)),
            }
        if "bc" in learners and "cql" in learners:
            wins = [
                by_seed[s]["policies"]["cql"]["hazard_rate"]["high"]
                < by_seed[s]["policies"]["bc"]["hazard_rate"]["mean"]
                for s in sorted(by_seed)
            ]
            rows["cql_hazard_ci_below_bc"] = {"seeds": sorted(by_seed), "per_seed": wins, "count": int(sum(wins))}
        summary[regime] = rows
    return summary


def fmt(e: dict[str, float], scale: float = 1.0, digits: int = 1) -> str:
    return f"{e['mean'] * scale:.{digits}f} [{e['low'] * scale:.{digits}f}, {e['high'] * scale:.{digits}f}]"


def markdown(res: dict[str, Any]) -> str:
    learners = res["learners"]
    lines = [
        f"# Quality matrix ({res['date']}, {res['machine']})",
        "",
        f"Command: `{res['command']}`. Seeds {res['seeds']}; {res['total_seconds']:.0f} s in all.",
        "Exact normalized score (0 = uniform random, 100 = exact optimum) and exact hazard probability (%), by",
        "dynamic programming; mean over dataset seeds with a 95% t interval across seeds.",
        "",
        "| regime | " + " | ".join(f"{n} score" for n in ("behaviour", *learners)) + " |",
        "|---|" + "---|" * (len(learners) + 1),
    ]
    for regime, rows in res["summary"].items():
        cells = [fmt(rows[n]["normalized_score"]) for n in ("behaviour", *learners)]
        lines.append(f"| {regime} | " + " | ".join(cells) + " |")
    lines += ["", "| regime | " + " | ".join(f"{n} hazard %" for n in ("behaviour", *learners)) + " |"]
    lines.append("|---|" + "---|" * (len(learners) + 1))
    for regime, rows in res["summary"].items():
        cells = [fmt(rows[n]["hazard_rate"], 100) for n in ("behaviour", *learners)]
        lines.append(f"| {regime} | " + " | ".join(cells) + " |")
    lines += ["", f"Seeds meeting the bar (exact score >= {BAR_SCORE:g} and hazard <= {100 * BAR_HAZARD:g}%):", ""]
    lines += ["| regime | " + " | ".join(learners) + " |", "|---|" + "---|" * len(learners)]
    for regime, rows in res["summary"].items():
        n_seeds = len(rows[learners[0]]["per_seed_score"])
        lines.append(f"| {regime} | " + " | ".join(f"{rows[n]['bar_met']}/{n_seeds}" for n in learners) + " |")
    lines += ["", "Per seed, exact normalized score / hazard %:", ""]
    for regime, rows in res["summary"].items():
        for n in learners:
            parts = [
                f"{s:.1f}/{100 * h:.2f}"
                for s, h in zip(rows[n]["per_seed_score"], rows[n]["per_seed_hazard"], strict=True)
            ]
            lines.append(f"- {regime} {n}: " + "; ".join(parts))
    if all("cql_hazard_ci_below_bc" in rows for rows in res["summary"].values()):
        lines += [
            "",
            "Rollouts (1,500 episodes) per seed: CQL normalized score / hazard % (BC hazard %); CQL's rollout hazard",
            "CI upper bound below BC's rollout hazard:",
            "",
        ]
        for regime, rows in res["summary"].items():
            by_seed = res["cells"][regime]
            parts = [
                f"{c['policies']['cql']['normalized_score']['mean']:.1f} / "
                f"{100 * c['policies']['cql']['hazard_rate']['mean']:.1f} "
                f"({100 * c['policies']['bc']['hazard_rate']['mean']:.1f})"
                for c in by_seed.values()
            ]
            win = rows["cql_hazard_ci_below_bc"]
            lines.append(f"- **{regime}**: " + "; ".join(parts) + f" -> below BC on {win['count']}/{len(parts)}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regimes", nargs="+", default=["safe", "noisy", "mixed", "expert"])
    parser.add_argument("--learners", nargs="+", default=["bc", "cql", "dqn", "bcq", "spibb", "mopo", "morel"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    learners = tuple(args.learners)
    cells: dict[str, dict[int, dict[str, Any]]] = {}
    t0 = time.perf_counter()
    for regime in args.regimes:
        cells[regime] = {}
        for seed in args.seeds:
            cells[regime][seed] = cell = run_cell(regime, seed, learners)
            pol = cell["policies"]
            scores = ", ".join(
                f"{n} {pol[n]['exact']['normalized_score']:.1f}/{100 * pol[n]['exact']['hazard_prob']:.2f}%"
                for n in learners
            )
            print(f"{regime} seed {seed} ({cell['seconds']:.0f} s): {scores}", flush=True)
    default_cmd = args.regimes == parser.get_default("regimes") and args.seeds == parser.get_default("seeds")
    res = {
        **result_header("python bench/matrix.py", default_cmd),
        "learners": list(learners),
        "seeds": args.seeds,
        "total_seconds": time.perf_counter() - t0,
        "cells": {r: {str(s): c for s, c in by.items()} for r, by in cells.items()},
        "summary": summarize(cells, learners),
    }
    save_results(args.out, "matrix", default_cmd, res, markdown(res))


if __name__ == "__main__":
    main()
