"""Development-seed sweep of the tabular learners' settings (SPIBB's N∧, MOPO's penalty, MOReL's halt penalty,
the planning discount), scored exactly. This is where their defaults were chosen; the held-out seeds 0-4 are
never used here (they are ``bench/matrix.py``'s).

Per (regime, dataset seed) the logs are collected as ``guardrl run`` does, one world model is fitted with the
run's default config, and every setting is planned and scored by dynamic programming over the grid.

    .venv/bin/python bench/tabular_dev.py                                  # seeds 100-107, 3 regimes
    .venv/bin/python bench/tabular_dev.py --seeds 100 101 --regimes safe

Writes ``bench/results/tabular_dev.json`` and ``.md`` (or ``--out DIR``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from guardrl._io import atomic_write_json, atomic_write_text
from guardrl.config import RunConfig
from guardrl.data import collect
from guardrl.data.audit import AuditConfig
from guardrl.data.behaviour import uniform_policy
from guardrl.envs import build_tables, evaluate_exact, evaluate_greedy, solve_optimal
from guardrl.evaluate import normalized_score
from guardrl.train.config import MOPOConfig, MOReLConfig, SPIBBConfig
from guardrl.train.tabular import train_model_planner, train_spibb
from guardrl.train.world_model_fit import fit_world_model

BAR_SCORE, BAR_HAZARD = 99.0, 0.005


def settings() -> dict[str, Any]:
    """Every (learner, setting) tried, by label."""
    out: dict[str, Any] = {}
    for gamma in (0.99, 1.0):
        for n_wedge in (10, 20, 30):
            out[f"spibb n_wedge={n_wedge} gamma={gamma}"] = SPIBBConfig(n_wedge=n_wedge, gamma=gamma)
        for penalty in (0.0, 0.05, 0.1, 0.3):
            out[f"mopo penalty={penalty} gamma={gamma}"] = MOPOConfig(penalty=penalty, gamma=gamma)
        for kappa in (None, 50.0, 500.0):
            out[f"morel halt={kappa} gamma={gamma}"] = MOReLConfig(halt_penalty=kappa, gamma=gamma)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regimes", nargs="+", default=["safe", "noisy", "mixed"])
    parser.add_argument("--seeds", nargs="+", type=int, default=list(range(100, 108)))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if any(s < 100 for s in args.seeds):
        parser.error("development seeds are 100 and up; 0-4 are held out for bench/matrix.py")
    base = RunConfig()
    tables = build_tables(base.env.build())
    _, opt = solve_optimal(tables)
    r_random = evaluate_exact(uniform_policy(tables)).expected_return
    audit = AuditConfig()
    cells = settings()
    scores: dict[str, dict[str, list[tuple[float, float]]]] = {r: {k: [] for k in cells} for r in args.regimes}
    t0 = time.perf_counter()
    for regime in args.regimes:
        for seed in args.seeds:
            ds = collect(tables, regime, base.collect.n_episodes, seed)
            model = fit_world_model(ds, dataclasses.replace(base.world_model, seed=seed))
            for label, cfg in cells.items():
                if isinstance(cfg, SPIBBConfig):
                    policy = train_spibb(ds, cfg, audit, base.gate.hazard_limit)
                else:
                    policy = train_model_planner(ds, cfg, audit, model, base.gate.hazard_limit, label.split()[0])
                exact = evaluate_greedy(tables, policy.predict)
                score = normalized_score(exact.expected_return, r_random, opt.expected_return)
                scores[regime][label].append((score, exact.hazard_prob))
            print(f"{regime} seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
    summary = {
        regime: {
            label: {
                "mean_score": float(np.mean([s for s, _ in v])),
                "mean_hazard": float(np.mean([h for _, h in v])),
                "worst_hazard": float(np.max([h for _, h in v])),
                "bar_met": int(sum(s >= BAR_SCORE and h <= BAR_HAZARD for s, h in v)),
            }
            for label, v in by.items()
        }
        for regime, by in scores.items()
    }
    res = {
        "date": dt.date.today().isoformat(),
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "seeds": args.seeds,
        "total_seconds": time.perf_counter() - t0,
        "summary": summary,
        "per_seed": scores,
    }
    lines = [
        f"# Tabular learners on development seeds ({res['date']}, {res['machine']})",
        "",
        f"Seeds {args.seeds}, exact scores; bar = normalized >= {BAR_SCORE:g} and hazard <= {100 * BAR_HAZARD:g}%.",
        f"{res['total_seconds']:.0f} s in all.",
        "",
        "| setting | " + " | ".join(f"{r} bar met / mean score / mean, worst hazard %" for r in args.regimes) + " |",
        "|---|" + "---|" * len(args.regimes),
    ]
    n = len(args.seeds)
    for label in cells:
        parts = []
        for regime in args.regimes:
            v = summary[regime][label]
            parts.append(
                f"{v['bar_met']}/{n} / {v['mean_score']:.1f} / {100 * v['mean_hazard']:.2f}, "
                f"{100 * v['worst_hazard']:.2f}"
            )
        lines.append(f"| {label} | " + " | ".join(parts) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "tabular_dev.json", res)
    atomic_write_text(args.out / "tabular_dev.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
