"""Continuous-action learners (BC, TD3+BC, IQL, CQL) on SafeNav logs, and their training throughput against
d3rlpy's own ``fit()``.

Per regime (``safe``, ``noisy``) and data seed: 500 logged episodes (``guardrl.data.collect.collect_nav``), each
learner trained for ``--steps`` gradient steps (networks 64x64, one torch thread, the references' other
settings: ``guardrl.train.continuous``), then 1000 greedy episodes in the vectorized SafeNav. Scores are
normalized as D4RL's: 100 * (R - random) / (planner - random), the planner being the fine-grid value-iteration
solution (``guardrl.envs.safenav.nav_reference``: 5000 episodes each). Held-out data seeds 0-2 by default; the
step count and network width were chosen on development seed 100.

Throughput: each learner runs the same config for ``--throughput-steps`` steps through guardrl's loop and
through d3rlpy's ``fit()`` on the same data, alternately, after a warm-up; steps per second and their ratio.

MuJoCo (hopper) is not part of this run yet: its behaviour policies are not built (issue 16 stays open).

    .venv/bin/python bench/continuous.py                 # held-out seeds 0-2
    .venv/bin/python bench/continuous.py --seeds 100 --out /tmp/dev

Writes ``bench/results/continuous.{json,md}``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from matrix import across_seeds, result_header, save_results  # bench/ is on the path when a bench script runs

from guardrl._parallel import run_forked
from guardrl.data.collect import collect_nav
from guardrl.envs.safenav import NavLayout, nav_reference, simulate_nav
from guardrl.evaluate.metrics import wilson_interval
from guardrl.train.continuous import CONTINUOUS_LEARNERS, ContinuousLearnerConfig, fit_with_d3rlpy, train_continuous

HIDDEN = (64, 64)
EPISODES = 500
EVAL_EPISODES = 1000


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson interval of a rate k/n."""
    low, high = wilson_interval(k / n, n)
    return float(low), float(high)


def cell(regime: str, seed: int, name: str, steps: int) -> dict[str, Any]:
    layout = NavLayout()
    ref = nav_reference(layout)
    ds = collect_nav(layout, regime, EPISODES, seed)
    result = train_continuous(ContinuousLearnerConfig(name, n_steps=steps, hidden_units=HIDDEN), ds, seed)
    eps, _ = simulate_nav(layout, lambda p, s, r: result.predict(p), EVAL_EPISODES, np.random.default_rng([seed, 7]))
    ret = float(eps.returns.mean())
    hazards = int(eps.hazard.sum())
    return {
        "return": ret,
        "score": 100 * (ret - ref["random_return"]) / (ref["optimal_return"] - ref["random_return"]),
        "hazard_rate": hazards / EVAL_EPISODES,
        "hazard_interval": wilson(hazards, EVAL_EPISODES),
        "goal_rate": float(eps.goal.mean()),
        "logged_hazard_rate": float((ds.costs > 0).sum() / ds.n_episodes),
        "train_seconds": result.seconds,
        "normalization": result.normalization["reward"],
    }


def throughput(name: str, steps: int) -> dict[str, float]:
    import torch._dynamo  # noqa: F401  (the first optimizer step imports it: not a cost of either loop)

    ds = collect_nav(NavLayout(), "safe", EPISODES, 100)
    cfg = ContinuousLearnerConfig(name, n_steps=steps, hidden_units=HIDDEN)
    train_continuous(ContinuousLearnerConfig(name, n_steps=20, hidden_units=HIDDEN), ds, 0)  # warm-up
    ours, theirs = [], []
    for _ in range(2):  # alternate, so that a slow minute of the machine falls on both
        ours.append(steps / train_continuous(cfg, ds, 0).seconds)
        theirs.append(steps / fit_with_d3rlpy(cfg, ds, 0))
    return {"guardrl": float(np.mean(ours)), "d3rlpy_fit": float(np.mean(theirs)),
            "ratio": float(np.mean(ours) / np.mean(theirs))}  # fmt: skip


def markdown(res: dict[str, Any]) -> str:
    ref = res["reference"]
    lines = [
        f"# Continuous learners on SafeNav ({res['date']}, {res['machine']})",
        "",
        f"Command: `{res['command']}`. Data seeds {res['seeds']}; {res['steps']} steps per learner; "
        f"{res['total_seconds']:.0f} s in all. Score 0 = uniform random actions ({ref['random_return']:.2f}), "
        f"100 = the fine-grid planner ({ref['optimal_return']:.2f}, hazard {100 * ref['optimal_hazard_rate']:.2f}%). "
        f"Mean over seeds with a 95% t interval; hazard: share of {EVAL_EPISODES} greedy episodes per seed, pooled "
        "over seeds with a 95% Wilson interval.",
        "",
        "| logs | learner | normalized score | hazard % | logs' hazard % |",
        "|---|---|---|---|---|",
    ]
    for regime, by_learner in res["summary"].items():
        for name, s in by_learner.items():
            sc, hz = s["score"], s["hazard"]
            lines.append(
                f"| {regime} | {name} | {sc['mean']:.1f} [{sc['low']:.1f}, {sc['high']:.1f}] | "
                f"{100 * hz['rate']:.2f} [{100 * hz['low']:.2f}, {100 * hz['high']:.2f}] | "
                f"{100 * s['logged_hazard']:.2f} |"
            )
    lines += ["", "Per seed (score / hazard %):", ""]
    for regime, by_learner in res["cells"].items():
        for name, seeds in by_learner.items():
            text = "; ".join(f"{c['score']:.1f} / {100 * c['hazard_rate']:.1f}" for c in seeds.values())
            lines.append(f"- {regime} {name}: {text}")
    lines += ["", f"Throughput ({res['throughput_steps']} steps, same config, one thread, after a warm-up):", "",
              "| learner | guardrl steps/s | d3rlpy fit() steps/s | ratio |", "|---|---|---|---|"]  # fmt: skip
    for name, t in res["throughput"].items():
        lines.append(f"| {name} | {t['guardrl']:.0f} | {t['d3rlpy_fit']:.0f} | {t['ratio']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--regimes", nargs="+", default=["safe", "noisy"])
    parser.add_argument("--learners", nargs="+", default=list(CONTINUOUS_LEARNERS))
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--throughput-steps", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    t0 = time.perf_counter()
    reference = nav_reference(NavLayout())
    keys = [(r, s, n) for r in args.regimes for s in args.seeds for n in args.learners]
    jobs = [lambda k=k: cell(*k, args.steps) for k in keys]
    results = run_forked(jobs, args.workers)
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    for (regime, seed, name), value in zip(keys, results, strict=True):
        cells.setdefault(regime, {}).setdefault(name, {})[str(seed)] = value
        print(f"{regime} seed {seed} {name}: score {value['score']:.1f} hazard {100 * value['hazard_rate']:.2f}%",
              flush=True)  # fmt: skip
    summary: dict[str, dict[str, Any]] = {}
    for regime, by_learner in cells.items():
        for name, seeds in by_learner.items():
            k = sum(round(c["hazard_rate"] * EVAL_EPISODES) for c in seeds.values())
            n = EVAL_EPISODES * len(seeds)
            low, high = wilson(k, n)
            summary.setdefault(regime, {})[name] = {
                "score": across_seeds([c["score"] for c in seeds.values()]),
                "hazard": {"rate": k / n, "low": low, "high": high},
                "logged_hazard": float(np.mean([c["logged_hazard_rate"] for c in seeds.values()])),
            }
    speed = run_forked([lambda n=n: throughput(n, args.throughput_steps) for n in args.learners], 1)
    default = args.seeds == parser.get_default("seeds") and args.regimes == parser.get_default("regimes")
    res = {
        **result_header(".venv/bin/python bench/continuous.py", default),
        "seeds": args.seeds,
        "steps": args.steps,
        "throughput_steps": args.throughput_steps,
        "reference": reference,
        "total_seconds": time.perf_counter() - t0,
        "cells": cells,
        "summary": summary,
        "throughput": dict(zip(args.learners, speed, strict=True)),
    }
    save_results(args.out, "continuous", default, res, markdown(res))


if __name__ == "__main__":
    main()
