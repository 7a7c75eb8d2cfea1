"""BC's training length against the size of the logs, and the encoder it reads states with.

For 500, 5,000 and 50,000 logged episodes of the default world's ``safe`` controller (development data seed
100), BC is trained with each encoder (``grid``: one-hot of the (x, y) cell; ``index``: embedding of the nearest
logged state, as imported logs get; ``mlp``: raw coordinates) and each stopping rule (``steps``: a fixed 1,000;
``epochs``: 3 passes within 1,000-20,000 steps, the default; ``held_out``: until the held-out loss stops
improving), then judged by its exact return and hazard probability (dynamic programming on its greedy table).

    .venv/bin/python bench/bc_length.py      # about 6 minutes on 2 cores

Writes ``bench/results/bc_length.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from guardrl._io import atomic_write_text
from guardrl.data import collect
from guardrl.data.audit import AuditConfig, Support
from guardrl.envs import build_tables, evaluate_greedy
from guardrl.envs.layouts import default_layout
from guardrl.train import BCConfig, ObsBounds, TrainConfig, train_all

STOPS = {"steps": BCConfig(stop="steps"), "epochs": BCConfig(), "held_out": BCConfig(stop="held_out")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, nargs="+", default=[500, 5000, 50000])
    parser.add_argument("--seed", type=int, default=100, help="data seed (development: 100+)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    tables = build_tables(default_layout())
    rows = []
    for n_episodes in args.episodes:
        ds = collect(tables, "safe", n_episodes, seed=args.seed)
        table = Support.from_dataset(ds, AuditConfig()).index.exact
        # as runs scale inputs: SafeGrid by its grid, imported logs by their logged range
        grid_bounds = ObsBounds(np.zeros(2), np.full(2, tables.layout.size - 1.0))
        logged_bounds = ObsBounds(*ds.observation_range())
        for encoder in ("grid", "index", "mlp"):
            for stop, bc in STOPS.items():
                t0 = time.perf_counter()
                res = train_all(
                    ds, TrainConfig(learners=("bc",), bc=bc), grid_bounds if encoder == "grid" else logged_bounds,
                    show_progress=False,
                    grid_size=tables.layout.size if encoder == "grid" else None,
                    state_table=table if encoder == "index" else None,
                )["bc"]  # fmt: skip
                exact = evaluate_greedy(tables, res.predict).to_dict()
                row = {
                    "episodes": n_episodes, "transitions": len(ds), "encoder": encoder, "stop": stop,
                    "steps": res.n_steps, "exact_return": exact["expected_return"],
                    "exact_hazard": exact["hazard_prob"], "seconds": time.perf_counter() - t0,
                }  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
    res_all = {
        "date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "command": ".venv/bin/python bench/bc_length.py", "seed": args.seed, "rows": rows,
    }  # fmt: skip
    lines = [
        f"# BC: training length and encoder ({res_all['date']}, {res_all['machine']})", "",
        f"Command: `{res_all['command']}`. Default world, `safe` logs, data seed {args.seed} (development). Exact "
        "values by dynamic programming (the optimum: 21.69 / 0.00%; the logging controller without noise: "
        "16.61 / 3.6%).", "",
        "| episodes | transitions | encoder | stop | steps | exact return | exact hazard % | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['episodes']:,} | {r['transitions']:,} | {r['encoder']} | {r['stop']} | {r['steps']:,} | "
            f"{r['exact_return']:.2f} | {100 * r['exact_hazard']:.2f} | {r['seconds']:.1f} |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "bc_length.json", json.dumps(res_all, indent=2) + "\n")
    atomic_write_text(args.out / "bc_length.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
