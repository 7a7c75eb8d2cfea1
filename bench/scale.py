"""Scale: logs-only runs (``env: none``) on SafeGrid logs of 10^4 to 10^7 transitions, import included.

For each size the logs are made with ``guardrl collect`` (the default logging controller, regime safe;
``collect.n_episodes`` set from the size), written as Parquet with ``guardrl export``, then timed: ``guardrl
import`` and ``guardrl run`` on the logs-only config (the default portfolio: BC, SPIBB, MOPO and MOReL at two
settings each). Each command runs as its own process; its peak memory is sampled every 0.2 s as the proportional
set size (PSS) summed over it and its children (forked workers share pages copy-on-write: PSS counts a shared
page once), and its largest single resident set comes from ``getrusage``. Every stage's time comes from the
run's ``metrics.json``; the growth exponent of each stage is the slope of log(time) against log(transitions)
from 10^5 up.

Then the run at ``--ray-size`` runs again on a local two-node Ray cluster (``ray start --head`` and one
``ray start --address`` worker, one CPU each) and is set beside the same run with local processes.

    .venv/bin/python bench/scale.py                                   # 1e4 .. 1e7, then Ray at 1e6 (about 15 min)
    .venv/bin/python bench/scale.py --sizes 10000 100000 --ray-size 100000 --tag small

Writes ``bench/results/scale[-TAG].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from guardrl._io import atomic_write_json, atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MEAN_EPISODE = 33.75  # transitions per episode of the default logging controller (measured on 300,000 episodes)


def _pss_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in text.splitlines() if line.startswith("Pss:")), 0)


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                pass
    return out


def measured(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd``; its wall time, its process tree's peak PSS (sampled) and its largest resident set."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], sum(_pss_kb(p) for p in _tree(proc.pid)))
            time.sleep(0.2)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    output, _ = proc.communicate()
    wall = time.perf_counter() - start
    watcher.join()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{output[-3000:]}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"seconds": wall, "peak_pss_gb": peak[0] / 2**20, "max_rss_gb": (rss if rss > before else 0) / 2**20}


def one_size(work: Path, n: int, ray_address: str | None = None, logs: Path | None = None) -> dict[str, Any]:
    """Make ``n`` transitions of logs (unless ``logs`` exist), import them and run the logs-only portfolio."""
    g = str(BIN / "guardrl")
    if logs is None:
        episodes = max(2, round(n / MEAN_EPISODE))
        (work / "collect.yaml").write_text(f"name: logs\ncollect: {{n_episodes: {episodes}, seed: 0}}\n")
        subprocess.run([g, "collect", str(work / "made"), "-c", str(work / "collect.yaml"), "-q"], check=True,
                       capture_output=True)  # fmt: skip
        subprocess.run([g, "export", str(work / "made" / "dataset"), "--format", "parquet",
                        "--out", str(work / "logs.parquet"), "-q"], check=True, capture_output=True)  # fmt: skip
        shutil.rmtree(work / "made")
        imported = measured([g, "import", str(work / "logs.parquet"), "--n-actions", "4", "--out",
                             str(work / "data"), "-q"])  # fmt: skip
    else:
        imported = None
    name = "on_ray" if ray_address else "local"
    ray_line = f'ray: {{address: "{ray_address}"}}\n' if ray_address else ""
    (work / f"{name}.yaml").write_text(f"name: {name}\nenv: none\ncollect: {{dataset: {work / 'data'}}}\n{ray_line}")
    ran = measured([g, "run", "-c", str(work / f"{name}.yaml"), "--runs-dir", str(work / "runs"), "-q"])
    run_dir = work / "runs" / name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    gate = json.loads((run_dir / "gate.json").read_text())["decisions"]
    rec = json.loads((run_dir / "recommendation.json").read_text())
    audit = json.loads((run_dir / "audit.json").read_text())["size"]
    out = {
        "transitions": audit["transitions"],
        "episodes": audit["episodes"],
        "run": ran,
        "stages": metrics["timings_seconds"],
        "parallel": metrics.get("parallel"),
        "gate": {k: d["decision"] for k, d in gate.items()},
        "recommended": rec.get("policy"),
    }
    if imported is not None:
        out["import"] = imported
        out["total_seconds"] = imported["seconds"] + ran["seconds"]
        out["peak_pss_gb"] = max(imported["peak_pss_gb"], ran["peak_pss_gb"])
    return out


def exponents(rows: list[dict[str, Any]], smallest: int = 100_000) -> dict[str, float]:
    """Slope of log(seconds) on log(transitions) per stage (and import, run, total), over sizes >= ``smallest``."""
    rows = [r for r in rows if r["transitions"] >= smallest * 0.9]
    if len(rows) < 2:
        return {}
    x = np.log([r["transitions"] for r in rows])
    series = {"import": [r["import"]["seconds"] for r in rows], "run": [r["run"]["seconds"] for r in rows],
              "total": [r["total_seconds"] for r in rows]}  # fmt: skip
    for stage in rows[0]["stages"]:
        series[stage] = [r["stages"][stage] for r in rows]
    return {k: float(np.polyfit(x, np.log(np.maximum(v, 1e-3)), 1)[0]) for k, v in series.items()}


def start_cluster(env: dict[str, str]) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray = str(BIN / "ray")
    subprocess.run([ray, "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                    "--disable-usage-stats"], check=True, env=env, capture_output=True)  # fmt: skip
    for _ in range(5):  # the head may still be coming up
        joined = subprocess.run([ray, "start", f"--address=127.0.0.1:{port}", "--num-cpus=1"], env=env,
                                capture_output=True, text=True)  # fmt: skip
        if joined.returncode == 0:
            break
        time.sleep(5)
    else:
        sys.exit(f"ray start --address failed:\n{joined.stdout[-2000:]}{joined.stderr[-2000:]}")
    return f"127.0.0.1:{port}"


def markdown(result: dict[str, Any]) -> str:
    rows = result["sizes"]
    stages = list(rows[0]["stages"])
    lines = [
        f"Measured {result['date']} on {result['machine']}: `{result['command']}`",
        "",
        "Logs-only run (`env: none`, the default portfolio of seven candidates) on SafeGrid logs made with "
        "`guardrl collect` and imported from Parquet. Seconds; peak memory is the proportional set size summed "
        "over the command's processes (import and run are separate commands; the larger is shown).",
        "",
        "| transitions | episodes | import | run | import + run | peak memory | " + " | ".join(stages) + " |",
        "|" + "---|" * (6 + len(stages)),
    ]
    for r in rows:
        lines.append(
            f"| {r['transitions']:,} | {r['episodes']:,} | {r['import']['seconds']:.1f} | {r['run']['seconds']:.1f} | "
            f"{r['total_seconds']:.1f} | {r['peak_pss_gb']:.2f} GB | "
            + " | ".join(f"{r['stages'][s]:.1f}" for s in stages) + " |"
        )  # fmt: skip
    if result["exponents"]:
        lines += ["", "Growth exponent (slope of log time on log transitions, 10^5 and up):", ""]
        lines += ["| " + " | ".join(result["exponents"]) + " |", "|" + "---|" * len(result["exponents"])]
        lines.append("| " + " | ".join(f"{v:.2f}" for v in result["exponents"].values()) + " |")
    lines += ["", "Verdicts:", ""]
    for r in rows:
        lines.append(f"- {r['transitions']:,}: {r['gate']}, recommended {r['recommended']}")
    ray = result.get("ray")
    if ray:
        lines += [
            "",
            f"Ray: the {ray['local']['transitions']:,}-transition run on a local two-node cluster (head and one "
            "worker, one CPU each) against the same run with local processes:",
            "",
            "| where | run | train | ope | tasks on Ray | gate |",
            "|---|---|---|---|---|---|",
        ]
        for label, r in (("local processes", ray["local"]), ("Ray, 2 nodes", ray["on_ray"])):
            tasks = (r.get("parallel") or {}).get("tasks", "-")
            lines.append(f"| {label} | {r['run']['seconds']:.1f} | {r['stages']['train']:.1f} | "
                         f"{r['stages']['ope']:.1f} | {tasks} | {r['gate']} |")  # fmt: skip
        lines.append("")
        lines.append(f"Same verdicts: {ray['same_gate']}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000, 10_000_000])
    parser.add_argument("--ray-size", type=int, default=1_000_000, help="0: no Ray comparison")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    work_root = Path(tempfile.mkdtemp(prefix="guardrl-scale-"))
    result: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GB",
        "command": "python bench/scale.py " + " ".join(sys.argv[1:]),
        "sizes": [],
    }
    try:
        for n in args.sizes:
            work = work_root / str(n)
            work.mkdir()
            row = one_size(work, n)
            result["sizes"].append(row)
            summary = f"import {row['import']['seconds']:.1f} s, run {row['run']['seconds']:.1f} s"
            summary += f", peak {row['peak_pss_gb']:.2f} GB, {row['stages']}"
            print(f"{row['transitions']:,} transitions: {summary}", flush=True)
        result["exponents"] = exponents(result["sizes"])
        write(result, args.tag)  # kept even if the Ray comparison below fails
        if args.ray_size:
            local = next((r for r, n in zip(result["sizes"], args.sizes, strict=True) if n == args.ray_size), None)
            work = work_root / str(args.ray_size)
            if local is None:
                work.mkdir()
                local = one_size(work, args.ray_size)
            # a loopback cluster, without Ray's token authentication for the nodes and the run alike
            os.environ.update({"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"})
            env = dict(os.environ)
            try:
                address = start_cluster(env)
                on_ray = one_size(work, args.ray_size, address, logs=work / "data")
            finally:
                subprocess.run([str(BIN / "ray"), "stop", "--force"], env=env, capture_output=True)
            on_ray["transitions"] = local["transitions"]
            result["ray"] = {"local": local, "on_ray": on_ray, "same_gate": local["gate"] == on_ray["gate"]}
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    print(write(result, args.tag))


def write(result: dict[str, Any], tag: str) -> str:
    """Write ``bench/results/scale[-TAG].json`` and ``.md``; returns the Markdown."""
    out = ROOT / "bench" / "results" / ("scale" + (f"-{tag}" if tag else ""))
    atomic_write_json(out.with_suffix(".json"), result)
    md = markdown(result)
    atomic_write_text(out.with_suffix(".md"), md)
    return md


if __name__ == "__main__":
    main()
