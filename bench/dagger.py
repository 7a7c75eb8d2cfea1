"""DAgger against BC on the same label budget, on SafeGrid with a narrow expert dataset.

Per data seed, the demonstrations are 20 episodes of the expert regime (the exact optimum with 5% noise) plus
20 episodes of the noisy controller, with their logged actions. Three learners, all the run's BC (d3rlpy,
default config), scored by exact dynamic programming (no Monte Carlo noise):

* **bc**: BC on the demonstrations;
* **bc + expert demos**: BC on the demonstrations plus ``budget`` (state, action) pairs from the exact
  planner's own episodes: the budget spent the usual way, on more expert data;
* **dagger**: ``rounds`` rounds of DAgger (``guardrl.run.dagger``) with the exact planner labelling
  ``budget / rounds`` states the learner itself visits per round; the round kept is the one whose learner
  returned most over ``--validation`` episodes of its own (no labels; 0 keeps the last round).

    .venv/bin/python bench/dagger.py                      # held-out seeds 0-4 (about 3 min on 2 cores)
    .venv/bin/python bench/dagger.py --seeds 100 101 --out /tmp/dev   # development seeds

The setting (20 + 20 episodes, 5 rounds of 40 labels) was chosen on development seeds 100-105. The first
setting, 20 + 200 episodes with 5 rounds of 100 labels (chosen on seeds 100 and 101), left BC nothing to gain:
its held-out runs are ``bench/results/dagger-200-noisy.md`` (validation of 200 episodes, chosen on seeds 100-102
after the first held-out run) and ``bench/results/dagger-last-round.md`` (the last round kept).
Writes ``bench/results/dagger.{json,md}``.
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
from guardrl.data.collect import concat
from guardrl.envs import build_tables
from guardrl.run.dagger import DaggerConfig, ExactScorer, expert_demonstrations, optimal_expert, run_dagger
from guardrl.train import ObsBounds, fit_bc

ARMS = ("bc", "bc + expert demos", "dagger")


def run_seed(
    seed: int, expert_episodes: int, noisy_episodes: int, rounds: int, labels: int, validation: int
) -> dict[str, Any]:
    cfg = RunConfig()
    tables = build_tables(cfg.env.build())
    size = tables.layout.size
    bounds = ObsBounds(np.zeros(2), np.full(2, float(size - 1)))
    demos = concat(
        [collect(tables, "expert", expert_episodes, seed), collect(tables, "noisy", noisy_episodes, seed + 50_000)],
        {"bench": "dagger", "seed": seed},
    )

    def fit(obs: np.ndarray, act: np.ndarray, fit_seed: int) -> Any:
        return fit_bc(obs, act, 4, cfg.train, bounds, fit_seed, grid_size=size)

    scorer, expert = ExactScorer(tables), optimal_expert(tables)
    out: dict[str, Any] = {}
    bc = fit(demos.observations, demos.actions, seed)
    out["bc"] = scorer(bc.predict)
    budget = rounds * labels
    extra_obs, extra_act = expert_demonstrations(tables, expert, budget, np.random.default_rng([seed, 99]))
    more = fit(np.concatenate([demos.observations, extra_obs]), np.concatenate([demos.actions, extra_act]), seed)
    out["bc + expert demos"] = scorer(more.predict)
    dagger = run_dagger(
        tables, demos.observations, demos.actions, expert, fit,
        DaggerConfig(iterations=rounds, labels_per_iteration=labels, validation_episodes=validation, seed=seed),
    )  # fmt: skip
    out["dagger"] = next(h["exact"] for h in dagger.history if h["chosen"])
    out["dagger_rounds"] = [
        {
            "labels": h["labels"],
            "score": h["exact"]["normalized_score"],
            "hazard": h["exact"]["hazard_prob"],
            "validation_return": h.get("validation_return"),
            "chosen": h["chosen"],
        }
        for h in dagger.history
    ]
    return out


def markdown(res: dict[str, Any]) -> str:
    s = res["setting"]
    lines = [
        f"# DAgger vs BC on the same label budget ({res['date']}, {res['machine']})",
        "",
        f"Command: `{res['command']}`. Seeds {res['seeds']}; {res['total_seconds']:.0f} s in all.",
        f"Demonstrations per seed: {s['expert_episodes']} expert-regime episodes + {s['noisy_episodes']} noisy "
        f"episodes. Label budget {s['rounds'] * s['labels']} ({s['rounds']} DAgger rounds x {s['labels']} labels "
        "from the exact planner). Exact values by dynamic programming; mean over seeds with a 95% t interval.",
        "",
        "| learner | exact normalized score | exact hazard % |",
        "|---|---|---|",
    ]
    for arm in ARMS:
        sc, hz = res["summary"][arm]["score"], res["summary"][arm]["hazard"]
        lines.append(
            f"| {arm} | {sc['mean']:.1f} [{sc['low']:.1f}, {sc['high']:.1f}] | "
            f"{100 * hz['mean']:.2f} [{100 * hz['low']:.2f}, {100 * hz['high']:.2f}] |"
        )
    lines += ["", "Per seed, exact normalized score / hazard %:", ""]
    for arm in ARMS:
        cells = "; ".join(
            f"{c[arm]['normalized_score']:.1f}/{100 * c[arm]['hazard_prob']:.2f}" for c in res["cells"].values()
        )
        lines.append(f"- {arm}: {cells}")
    wins = sum(c["dagger"]["hazard_prob"] < c["bc + expert demos"]["hazard_prob"] for c in res["cells"].values())
    lines += ["", f"DAgger's exact hazard is below BC + expert demos' on {wins}/{len(res['cells'])} seeds."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--expert-episodes", type=int, default=20)
    parser.add_argument("--noisy-episodes", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--labels", type=int, default=40)
    parser.add_argument("--validation", type=int, default=200, help="episodes per round to pick the best round")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    t0 = time.perf_counter()
    cells = {}
    for seed in args.seeds:
        cells[str(seed)] = c = run_seed(
            seed, args.expert_episodes, args.noisy_episodes, args.rounds, args.labels, args.validation
        )
        print(f"seed {seed}: " + ", ".join(
            f"{a} {c[a]['normalized_score']:.1f}/{100 * c[a]['hazard_prob']:.2f}%" for a in ARMS
        ), flush=True)  # fmt: skip
    summary = {
        arm: {
            "score": across_seeds([c[arm]["normalized_score"] for c in cells.values()]),
            "hazard": across_seeds([c[arm]["hazard_prob"] for c in cells.values()]),
        }
        for arm in ARMS
    }
    default = args.seeds == parser.get_default("seeds")
    res = {
        **result_header(".venv/bin/python bench/dagger.py", default),
        "seeds": args.seeds,
        "setting": {
            "expert_episodes": args.expert_episodes,
            "noisy_episodes": args.noisy_episodes,
            "rounds": args.rounds,
            "labels": args.labels,
            "validation": args.validation,
        },  # fmt: skip
        "total_seconds": time.perf_counter() - t0,
        "cells": cells,
        "summary": summary,
    }
    save_results(args.out, "dagger", default, res, markdown(res))


if __name__ == "__main__":
    main()
