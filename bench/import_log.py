"""Import throughput: generate a 10-million-row Parquet decision log, then time ``guardrl import`` on it.

The import runs as its own process under ``/usr/bin/time``-style accounting (``resource.getrusage`` of the
child), so the peak resident memory is the importer's alone, not the generator's. Writes
``bench/results/import.json`` and ``import.md``.

    .venv/bin/python bench/import_log.py                 # 10M rows: 250,000 episodes x 40 steps, 2 features
    .venv/bin/python bench/import_log.py --episodes 25000
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from guardrl._io import atomic_write_json, atomic_write_text

ROOT = Path(__file__).resolve().parent.parent


def generate(path: Path, episodes: int, steps: int, per_group: int = 25_000) -> int:
    """A valid log with episodes of ``steps`` rows, written one row group of ``per_group`` episodes at a time."""
    rng = np.random.default_rng(0)
    writer = None
    try:
        for first in range(0, episodes, per_group):
            n_ep = min(per_group, episodes - first)
            n = n_ep * steps
            ep = np.repeat(np.arange(first, first + n_ep, dtype=np.int64), steps)
            step = np.tile(np.arange(steps, dtype=np.int64), n_ep)
            last = step == steps - 1
            table = pa.table({
                "episode_id": ep, "step": step,
                "obs_0": rng.integers(0, 15, n).astype(np.float32), "obs_1": rng.integers(0, 15, n).astype(np.float32),
                "action": rng.integers(0, 4, n), "reward": np.where(last, 50.0, -1.0),
                "terminated": last & (ep % 2 == 0), "truncated": last & (ep % 2 == 1),
                "cost": np.zeros(n), "propensity": np.full(n, 0.25),
            })  # fmt: skip
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=len(table))
    finally:
        if writer is not None:
            writer.close()
    return episodes * steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=250_000)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "import")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="guardrl-import-bench-"))
    try:
        log = tmp / "log.parquet"
        rows = generate(log, args.episodes, args.steps)
        guardrl = shutil.which("guardrl", path=str(Path(sys.executable).parent)) or "guardrl"
        start = time.perf_counter()
        proc = subprocess.run(
            [guardrl, "import", str(log), "--format", "parquet", "--n-actions", "4", "--out", str(tmp / "ds")],
            capture_output=True, text=True,
        )  # fmt: skip
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"import failed: {proc.stderr}")
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        result = {
            "date": dt.date.today().isoformat(),
            "machine": f"{os.cpu_count()} cores",
            "command": "python bench/import_log.py " + " ".join(sys.argv[1:]),
            "rows": rows,
            "episodes": args.episodes,
            "file_mb": log.stat().st_size / 2**20,
            "wall_seconds": wall,
            "rows_per_second": rows / wall,
            "peak_rss_mb": peak_kb / 1024,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out.with_suffix(".json"), result)
    md = (
        f"Measured {result['date']} on {result['machine']}: `{result['command']}`\n\n"
        "| rows | Parquet file | wall (whole command) | rows/s | peak RSS |\n|---|---|---|---|---|\n"
        f"| {rows:,} | {result['file_mb']:.0f} MB | {wall:.1f} s | {result['rows_per_second']:,.0f} | "
        f"{result['peak_rss_mb']:,.0f} MB |\n"
    )
    atomic_write_text(args.out.with_suffix(".md"), md)
    print(md)


if __name__ == "__main__":
    main()
