"""Load benchmark of ``guardrl serve`` on loopback: requests/s and latency percentiles with deferral on, with role
tokens (the default) against ``--no-auth``, side by side in one run.

Starts ``guardrl serve RUN --policy morel --mode full`` (one uvicorn process) and drives ``POST /act`` from this
process with keep-alive connections over asyncio (a minimal HTTP/1.1 client, so the load generator costs little
CPU next to the server on a 2-core machine). Observations are every grid cell, logged or not, so the guard's
deferral paths run too. The two servers alternate (``--rounds`` each), and the overhead of authentication is
1 - (requests/s with tokens) / (requests/s without), on the medians. Writes ``bench/results/serve.json`` and
``serve.md``.

    .venv/bin/python bench/serve.py                      # needs runs/default (./scripts/run.sh)
    .venv/bin/python bench/serve.py --seconds 5 --connections 8
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from guardrl._io import atomic_write_json, atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def worker(
    port: int, bodies: list[bytes], stop: float, latencies: list[float], decisions: dict, auth: bytes
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    try:
        while time.perf_counter() < stop:
            body = bodies[i % len(bodies)]
            i += 1
            request = (
                b"POST /act HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + auth
                + b"Content-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            t0 = time.perf_counter()
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            match = LENGTH.search(head)
            assert match, head
            payload = await reader.readexactly(int(match.group(1)))
            latencies.append(time.perf_counter() - t0)
            if not head.startswith(b"HTTP/1.1 200"):
                decisions["errors"] = decisions.get("errors", 0) + 1
                continue
            kind = json.loads(payload)["decision"]
            decisions[kind] = decisions.get(kind, 0) + 1
    finally:
        writer.close()


async def load(
    port: int, bodies: list[bytes], seconds: float, connections: int, auth: bytes
) -> tuple[list[float], dict, float]:
    latencies: list[float] = []
    decisions: dict[str, int] = {}
    start = time.perf_counter()
    stop = start + seconds
    await asyncio.gather(*(worker(port, bodies, stop, latencies, decisions, auth) for _ in range(connections)))
    return latencies, decisions, time.perf_counter() - start


def measure(args: argparse.Namespace, with_auth: bool) -> dict:
    """One server, warmed up, then loaded for ``args.seconds``: throughput, latency, decisions."""
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="guardrl-serve-bench-"))
    guardrl = shutil.which("guardrl", path=str(Path(sys.executable).parent)) or "guardrl"
    auth_args = ["--key-file", str(tmp / "keys.json")] if with_auth else ["--no-auth"]
    server = subprocess.Popen(
        [guardrl, "serve", str(args.run), "--policy", args.policy, "--mode", "full", "--port", str(port),
         "--audit-log", str(tmp / "audit.jsonl"), "--allow-gate-fail", *auth_args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"server did not start: {server.stderr.read().decode() if server.stderr else ''}")
                time.sleep(0.2)
        tokens = json.loads((tmp / "keys.json").read_text()) if with_auth else {}
        header = f"Authorization: Bearer {tokens['client']}\r\n".encode() if with_auth else b""
        cells = [[float(x), float(y)] for y in range(15) for x in range(15)]
        bodies = [json.dumps({"observation": c}).encode() for c in cells]
        try:
            import uvloop  # noqa: F401

            runner = uvloop.run  # type: ignore[attr-defined]
        except ImportError:
            runner = asyncio.run
        runner(load(port, bodies, args.warmup, args.connections, header))
        latencies, decisions, wall = runner(load(port, bodies, args.seconds, args.connections, header))
        request = urllib.request.Request(f"http://127.0.0.1:{port}/status")
        if with_auth:
            request.add_header("Authorization", f"Bearer {tokens['operator']}")
        with urllib.request.urlopen(request, timeout=5) as r:
            status = json.loads(r.read())
    finally:
        server.terminate()
        server.wait(timeout=10)
        log_lines = sum(1 for _ in open(tmp / "audit.jsonl")) if (tmp / "audit.jsonl").exists() else 0
        shutil.rmtree(tmp, ignore_errors=True)
    lat = np.array(latencies) * 1000.0
    n = len(latencies)
    return {
        "auth": with_auth,
        "seconds": wall,
        "requests": n,
        "requests_per_second": n / wall,
        "latency_ms": {p: float(np.percentile(lat, q)) for p, q in (("p50", 50), ("p90", 90), ("p99", 99))}
        | {"max": float(lat.max()), "mean": float(lat.mean())},
        "decisions": decisions,
        "defer_share": decisions.get("defer", 0) / max(n, 1),
        "defer_reasons_total": status["defer_reasons"],
        "audit_log_lines": log_lines,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "default")
    parser.add_argument("--policy", default="morel")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each server, alternating")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serve")
    args = parser.parse_args()
    if not (args.run / "policies" / f"{args.policy}.scores.pt").is_file():
        sys.exit(f"{args.run}: no exported {args.policy} with action scores; run ./scripts/run.sh first")

    runs = [measure(args, with_auth) for _ in range(args.rounds) for with_auth in (False, True)]
    median = {
        auth: float(np.median([r["requests_per_second"] for r in runs if r["auth"] == auth])) for auth in (False, True)
    }
    result = {
        "date": dt.date.today().isoformat(),
        "machine": f"{os.cpu_count()} cores",
        "command": "python bench/serve.py " + " ".join(sys.argv[1:]),
        "policy": args.policy,
        "connections": args.connections,
        "rounds": args.rounds,
        "median_requests_per_second": {"no_auth": median[False], "auth": median[True]},
        "auth_overhead": 1.0 - median[True] / median[False],
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out.with_suffix(".json"), result)
    rows = "".join(
        f"| {'tokens' if r['auth'] else 'no auth'} | {r['requests_per_second']:,.0f} | {r['latency_ms']['p50']:.2f} | "
        f"{r['latency_ms']['p90']:.2f} | {r['latency_ms']['p99']:.2f} | {r['latency_ms']['max']:.1f} | "
        f"{r['defer_share']:.1%} | {r['decisions'].get('errors', 0)} |\n"
        for r in runs
    )
    md = (
        f"Measured {result['date']} on {result['machine']}: `{result['command']}` ({args.connections} keep-alive "
        f"connections, {args.seconds:g} s per measurement after a {args.warmup:g} s warm-up, the two servers "
        f"alternating, {args.rounds} rounds each).\n\n"
        "| server | requests/s | p50 ms | p90 ms | p99 ms | max ms | deferred | errors |\n"
        "|---|---|---|---|---|---|---|---|\n" + rows + "\n"
        f"Median requests/s: {median[False]:,.0f} without authentication, {median[True]:,.0f} with role tokens: "
        f"**overhead {result['auth_overhead']:.1%}**.\n"
    )
    atomic_write_text(args.out.with_suffix(".md"), md)
    print(md)


if __name__ == "__main__":
    main()
