"""GAIL against the expert it imitates, on SafeGrid and CartPole-v1, with BC on the same demonstrations beside it.

Per seed:

* **SafeGrid** (the default layout): 20 episodes of the expert regime (the exact optimum with 5% noise) are the
  demonstrations. GAIL (``guardrl.train.gail``, default config, one-hot cells) learns in the vectorized
  simulator without reading a reward. Its greedy policy and BC's are scored by exact dynamic programming; the
  expert's return is the exact return of the noisy optimum that logged the demonstrations.
* **CartPole-v1** (``guardrl.envs.cartpole``, gymnasium 1.0's dynamics vectorized): 10 episodes of the scripted
  balancing expert (500 each) are the demonstrations; GAIL's and BC's greedy policies play 100 episodes.

The ratio is the learner's return over the expert's (the bar is 0.9). Held-out seeds 0-4 by default; the
configuration (16 episodes per iteration, 80 iterations, PPO step 1e-3 decayed to 0) was chosen on development
seeds 100-104.

    .venv/bin/python bench/gail.py                     # held-out seeds 0-4 (about 8 min on 2 cores)
    .venv/bin/python bench/gail.py --seeds 100 101 --out /tmp/dev

Writes ``bench/results/gail.{json,md}``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from matrix import (
    across_seeds,
    result_header,
    save_results,
)  # bench/matrix.py: bench/ is on the path when a bench script runs

from guardrl.config import RunConfig
from guardrl.data import collect
from guardrl.data.behaviour import optimal_noisy_policy
from guardrl.envs import build_tables, evaluate_exact, simulate
from guardrl.envs.cartpole import OBSERVATION_SCALE, balancing_expert, simulate_cartpole
from guardrl.run.dagger import ExactScorer
from guardrl.train import ObsBounds, fit_bc
from guardrl.train.gail import Demonstrations, GAILConfig, GridCells, Scaled, train_gail


def safegrid_seed(seed: int, demos: int, cfg: GAILConfig) -> dict[str, Any]:
    run = RunConfig()
    tables = build_tables(run.env.build())
    ds = collect(tables, "expert", demos, seed)
    expert = evaluate_exact(optimal_noisy_policy(tables, 0.05)).expected_return
    scorer = ExactScorer(tables)
    demo = Demonstrations.from_arrays(ds.observations, ds.actions, ds.next_observations, ds.terminations)
    t0 = time.perf_counter()
    gail = train_gail(
        lambda pol, n, rng: simulate(tables, pol, n, rng), GridCells(tables.layout.size), demo, 4, cfg
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    size = tables.layout.size
    bc = fit_bc(ds.observations, ds.actions, 4, run.train, ObsBounds(np.zeros(2), np.full(2, size - 1.0)), seed,
                grid_size=size)  # fmt: skip
    out: dict[str, Any] = {"expert_return": expert, "demo_transitions": len(ds), "gail_seconds": seconds}
    for name, predict in (("gail", gail.predict), ("bc", bc.predict)):
        r = scorer(predict)
        out[name] = {"return": r["expected_return"], "ratio": r["expected_return"] / expert,
                     "hazard": r["hazard_prob"], "normalized_score": r["normalized_score"]}  # fmt: skip
    return out


def cartpole_seed(seed: int, demos: int, cfg: GAILConfig) -> dict[str, Any]:
    ex = simulate_cartpole(lambda o, s, r: balancing_expert(o), demos, np.random.default_rng([seed, 1]))
    expert = float(ex.returns.mean())
    t0 = time.perf_counter()
    gail = train_gail(simulate_cartpole, Scaled(OBSERVATION_SCALE), Demonstrations.from_episodes(ex), 2, cfg)
    seconds = time.perf_counter() - t0
    obs, act = ex.obs[ex.valid], ex.actions[ex.valid]
    bc = fit_bc(obs, act, 2, RunConfig().train, ObsBounds(-OBSERVATION_SCALE, OBSERVATION_SCALE), seed)
    out: dict[str, Any] = {"expert_return": expert, "demo_transitions": int(len(act)), "gail_seconds": seconds}
    for name, predict in (("gail", gail.predict), ("bc", bc.predict)):
        eps = simulate_cartpole(lambda o, s, r, p=predict: p(o), 100, np.random.default_rng([seed, 2]))
        ret = float(eps.returns.mean())
        out[name] = {"return": ret, "ratio": ret / expert}
    return out


def markdown(res: dict[str, Any]) -> str:
    lines = [
        f"# GAIL against its expert ({res['date']}, {res['machine']})",
        "",
        f"Command: `{res['command']}`. Seeds {res['seeds']}; {res['total_seconds']:.0f} s in all. "
        f"Demonstrations: SafeGrid {res['setting']['safegrid_demos']} expert-regime episodes, CartPole "
        f"{res['setting']['cartpole_demos']} episodes of the scripted expert. Ratio = return / expert's return "
        "(SafeGrid: exact values; CartPole: 100 greedy episodes); mean over seeds with a 95% t interval.",
        "",
        "| task | learner | return / expert's | seeds >= 0.9 |",
        "|---|---|---|---|",
    ]
    for task in ("safegrid", "cartpole"):
        for arm in ("gail", "bc"):
            s = res["summary"][task][arm]
            ok = sum(c[arm]["ratio"] >= 0.9 for c in res["cells"][task].values())
            lines.append(f"| {task} | {arm} | {s['mean']:.3f} [{s['low']:.3f}, {s['high']:.3f}] | "
                         f"{ok}/{len(res['seeds'])} |")  # fmt: skip
    lines += ["", "Per seed (return / expert's return):", ""]
    for task in ("safegrid", "cartpole"):
        for arm in ("gail", "bc"):
            cells = "; ".join(f"{c[arm]['return']:.2f}/{c['expert_return']:.2f}" for c in res["cells"][task].values())
            lines.append(f"- {task} {arm}: {cells}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--safegrid-demos", type=int, default=20)
    parser.add_argument("--cartpole-demos", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    t0 = time.perf_counter()
    cells: dict[str, dict[str, Any]] = {"safegrid": {}, "cartpole": {}}
    for seed in args.seeds:
        cfg = GAILConfig(seed=seed)
        sg = cells["safegrid"][str(seed)] = safegrid_seed(seed, args.safegrid_demos, cfg)
        cp = cells["cartpole"][str(seed)] = cartpole_seed(seed, args.cartpole_demos, cfg)
        print(f"seed {seed}: safegrid gail {sg['gail']['ratio']:.3f} bc {sg['bc']['ratio']:.3f}; "
              f"cartpole gail {cp['gail']['return']:.1f} bc {cp['bc']['return']:.1f}", flush=True)  # fmt: skip
    summary = {
        task: {arm: across_seeds([c[arm]["ratio"] for c in cells[task].values()]) for arm in ("gail", "bc")}
        for task in cells
    }
    default = args.seeds == parser.get_default("seeds")
    res = {
        **result_header(".venv/bin/python bench/gail.py", default),
        "seeds": args.seeds,
        "setting": {
            "safegrid_demos": args.safegrid_demos,
            "cartpole_demos": args.cartpole_demos,
            "gail": {k: v for k, v in vars(GAILConfig()).items() if k != "seed"},
        },  # fmt: skip
        "total_seconds": time.perf_counter() - t0,
        "cells": cells,
        "summary": summary,
    }
    save_results(args.out, "gail", default, res, markdown(res))


if __name__ == "__main__":
    main()
