"""Training the portfolio's network learners in forked processes (``train.workers``) against one after the other.

The network candidates of a run without indexed states (``bc`` and ``cql-1.5``, as CartPole or continuous
observations get) on the default world's 500 logged episodes (data seed 100), trained with ``train.workers`` 1
and 2 in alternating rounds in one process; the median wall time of each, and whether both give the same policies.

    .venv/bin/python bench/train_workers.py      # about 2 minutes on 2 cores

Writes ``bench/results/train_workers.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from guardrl._io import atomic_write_text
from guardrl.data import collect
from guardrl.envs import build_tables
from guardrl.envs.layouts import default_layout
from guardrl.train import TrainConfig, train_all

LEARNERS = ("bc", "cql-1.5")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    layout = default_layout()
    ds = collect(build_tables(layout), "safe", 500, seed=100)
    grid = np.stack(np.meshgrid(np.arange(layout.size), np.arange(layout.size)), -1).reshape(-1, 2)
    seconds: dict[int, list[float]] = {1: [], 2: []}
    actions: dict[int, dict[str, list[int]]] = {}
    for _ in range(args.rounds):
        for workers in (1, 2):
            cfg = TrainConfig(learners=LEARNERS, workers=workers, encoder="mlp")
            t0 = time.perf_counter()
            results = train_all(ds, cfg, show_progress=False)
            seconds[workers].append(time.perf_counter() - t0)
            actions[workers] = {k: r.predict(grid.astype(np.float32)).tolist() for k, r in results.items()}
    median = {w: statistics.median(s) for w, s in seconds.items()}
    res = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "command": ".venv/bin/python bench/train_workers.py",
        "learners": list(LEARNERS),
        "transitions": int(ds.observations.shape[0]),
        "seconds": {str(w): s for w, s in seconds.items()},
        "median_seconds": {str(w): m for w, m in median.items()},
        "speedup": median[1] / median[2],
        "same_policies": actions[1] == actions[2],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "train_workers.json", json.dumps(res, indent=2) + "\n")
    md = (
        f"# Training in forked processes ({res['date']}, {res['machine']})\n\n"
        f"Command: `{res['command']}`. Learners {', '.join(LEARNERS)} (MLP encoder) on {res['transitions']:,} "
        f"transitions, {args.rounds} alternating rounds.\n\n"
        "| train.workers | median seconds | rounds |\n|---|---|---|\n"
        + "".join(f"| {w} | {median[w]:.2f} | {', '.join(f'{s:.2f}' for s in seconds[w])} |\n" for w in (1, 2))
        + f"\nSpeed-up {res['speedup']:.2f}x; the same policies either way: {res['same_policies']}.\n"
    )
    atomic_write_text(args.out / "train_workers.md", md)
    print(md)


if __name__ == "__main__":
    main()
