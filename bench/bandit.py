"""One-step (contextual bandit) benchmark: ``guardrl judge`` on the Open Bandit Dataset's real sample, and on a
synthetic bandit of 1,000 actions for time and memory.

**Open Bandit Dataset** (ZOZOTOWN, CC BY 4.0; the small sample shipped inside the ``obp`` 0.5.7 source
distribution, read from its CSVs; obp itself is not used). Per campaign (``all``, ``men``, ``women``): 10,000
rounds logged by Bernoulli Thompson sampling (``bts``) and 10,000 by uniform random (``random``), 80 (all) or
fewer items in 3 positions, each with its logged propensity. The Thompson-sampling logs are imported
(``guardrl import``: observation = the position, action = the item, reward = the click, no cost column) and
``guardrl judge`` estimates the uniform-random policy (a policy table) from them. The truth to compare with is the
random logs' own mean click rate with its 95 % (Wilson) interval.

**Synthetic, 1,000 actions**: 10,000 one-step rows over 10 contexts, a softmax logger, a stochastic target;
the whole ``guardrl judge`` command's wall clock and peak memory (a child process's maximum resident set), and
its estimates against the exact value.

    pip download obp==0.5.7 --no-deps --no-binary :all: --ignore-requires-python -d /tmp/obp
    .venv/bin/python bench/bandit.py --obp-sdist /tmp/obp/obp-0.5.7.tar.gz

Writes ``bench/results/bandit.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from guardrl._io import atomic_write_text
from guardrl.evaluate.metrics import format_interval, wilson_interval

GUARDRL = [str(Path(sys.executable).parent / "guardrl")]
ESTIMATORS = ("ips", "snips", "dr", "switch_dr", "dm")


def read_obd(sdist: Path, logger: str, campaign: str) -> pd.DataFrame:
    """One logger's rounds of one campaign, read from the sdist's CSV."""
    member = f"obp-0.5.7/obp/dataset/obd/{logger}/{campaign}/{campaign}.csv"
    with tarfile.open(sdist) as tar:
        f = tar.extractfile(member)
        if f is None:
            raise SystemExit(f"{sdist}: no {member}")
        return pd.read_csv(f, index_col=0)


def as_import_log(rounds: pd.DataFrame) -> pd.DataFrame:
    """The rounds in guardrl's import schema: one episode per round, the position observed, the item chosen."""
    n = len(rounds)
    return pd.DataFrame({
        "episode_id": np.arange(n), "step": 0, "obs_0": rounds["position"].to_numpy(dtype=float),
        "action": rounds["item_id"].to_numpy(), "reward": rounds["click"].to_numpy(dtype=float),
        "terminated": True, "truncated": False, "propensity": rounds["propensity_score"].to_numpy(),
    })  # fmt: skip


def run_cli(args: list[str]) -> tuple[float, float]:
    """Run one guardrl command in a child process: its wall clock (s) and the children's peak memory (GB) so far."""
    start = time.perf_counter()
    done = subprocess.run([*GUARDRL, *args, "--quiet"], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"guardrl {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6


def judge(work: Path, log: pd.DataFrame, table: pd.DataFrame, n_actions: int) -> tuple[dict[str, Any], float]:
    """Import ``log``, judge the policy ``table`` on it; ope.json's entry, gate decision, and the judge's seconds."""
    log.to_csv(work / "log.csv", index=False)
    table.to_csv(work / "target.csv", index=False)
    run_cli(["import", str(work / "log.csv"), "--n-actions", str(n_actions), "--out", str(work / "ds")])
    seconds, _ = run_cli(["judge", str(work / "ds"), "-p", str(work / "target.csv"), "--out", str(work / "j")])
    entry = json.loads((work / "j" / "ope.json").read_text())["policies"]["target"]
    entry["decision"] = json.loads((work / "j" / "gate.json").read_text())["decisions"]["target"]
    return entry, seconds


def obd_campaign(sdist: Path, campaign: str, work: Path) -> dict[str, Any]:
    bts, rnd = read_obd(sdist, "bts", campaign), read_obd(sdist, "random", campaign)
    n_items = int(max(bts["item_id"].max(), rnd["item_id"].max())) + 1
    table = pd.DataFrame({"obs_0": np.sort(bts["position"].unique()).astype(float)})
    table = table.assign(**{f"prob_{k}": 1.0 / n_items for k in range(n_items)})
    entry, seconds = judge(work, as_import_log(bts), table, n_items)
    clicks = rnd["click"].to_numpy(dtype=float)
    lo, hi = wilson_interval(float(clicks.mean()), len(clicks))
    truth = {"mean": float(clicks.mean()), "low": float(lo), "high": float(hi)}
    est = entry["estimates"]["return"]
    return {
        "campaign": campaign, "items": n_items, "rounds": len(bts), "judge_seconds": seconds,
        "truth_random_logs": truth, "bts_logged_click_rate": float(bts["click"].mean()),
        "estimates": {k: est[k] for k in ESTIMATORS},
        "overlaps_truth": {k: est[k]["low"] <= truth["high"] and truth["low"] <= est[k]["high"] for k in ESTIMATORS},
        "weights": entry["weights"], "unlogged_mass": entry["bandit"]["unlogged_mass"],
        "gate": entry["decision"]["decision"],
        "gate_reasons": [f"{r['decision']} {r['rule']}: {r['message']}" for r in entry["decision"]["reasons"]],
    }  # fmt: skip


def synthetic(work: Path, n_actions: int = 1000, rows: int = 10_000, contexts: int = 10) -> dict[str, Any]:
    rng = np.random.default_rng(2026)
    clicks = rng.uniform(0.0, 0.1, size=(contexts, n_actions))
    logits = rng.normal(0.0, 1.0, size=(contexts, n_actions))
    mu = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    target = np.exp(3 * logits + 20 * clicks)  # leans on the logger's favourites and on good items
    target /= target.sum(axis=1, keepdims=True)
    ctx = rng.integers(0, contexts, size=rows)
    act = (rng.random(rows)[:, None] > mu[ctx].cumsum(axis=1)).sum(axis=1).clip(max=n_actions - 1)
    log = pd.DataFrame({
        "episode_id": np.arange(rows), "step": 0, "obs_0": ctx.astype(float), "action": act,
        "reward": (rng.random(rows) < clicks[ctx, act]).astype(float), "terminated": True, "truncated": False,
        "propensity": mu[ctx, act],
    })  # fmt: skip
    table = pd.DataFrame(target, columns=[f"prob_{k}" for k in range(n_actions)])
    table.insert(0, "obs_0", np.arange(contexts, dtype=float))
    entry, seconds = judge(work, log, table, n_actions)
    truth = float((target * clicks).sum(axis=1).mean())
    est = entry["estimates"]["return"]
    return {
        "actions": n_actions, "rows": rows, "contexts": contexts, "judge_seconds": seconds,
        "peak_memory_gb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6, "truth": truth,
        "estimates": {k: est[k] for k in ESTIMATORS},
        "covers_truth": {k: est[k]["low"] <= truth <= est[k]["high"] for k in ESTIMATORS},
        "weights": entry["weights"], "unlogged_mass": entry["bandit"]["unlogged_mass"],
    }  # fmt: skip


def markdown(res: dict[str, Any]) -> str:
    lines = [
        "# One-step logs: the Open Bandit Dataset sample and a 1,000-action bandit", "",
        f"{res['date']}, {res['machine']}, {res['seconds']:.0f} s. Command: `{res['command']}`", "",
        "Uniform-random policy's click rate, estimated by `guardrl judge` from the Thompson-sampling logs, against "
        "the random logs' own mean (95 % Wilson interval). Estimates in percent.", "",
        "| campaign | items | truth (random logs) | IPS | SNIPS | DR | switch-DR | DM | ESS | max weight | "
        "gate | judge s |", "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for c in res["obd"]:
        e = c["estimates"]
        cells = [format_interval(e[k], pct=True, digits=2) + ("" if c["overlaps_truth"][k] else " **misses**")
                 for k in ("ips", "snips", "dr", "switch_dr", "dm")]  # fmt: skip
        lines.append(
            f"| {c['campaign']} | {c['items']} | {format_interval(c['truth_random_logs'], pct=True, digits=2)} | "
            + " | ".join(cells)
            + f" | {c['weights']['ess_episodes']:.0f} | {c['weights']['max_ratio']:.0f} | {c['gate']} | "
            f"{c['judge_seconds']:.1f} |"
        )
    s = res["synthetic"]
    lines += [
        "", f"Synthetic: {s['actions']} actions, {s['rows']:,} rows, {s['contexts']} contexts; `guardrl judge` "
        f"{s['judge_seconds']:.1f} s, peak memory of any child process so far {s['peak_memory_gb']:.2f} GB; "
        f"true value {100 * s['truth']:.3f} %, ESS {s['weights']['ess_episodes']:.0f}, unlogged mass "
        f"{s['unlogged_mass']:.1%}.", "",
        "| estimator | estimate % | covers the truth |", "|---|---|---|",
    ]  # fmt: skip
    for k in ESTIMATORS:
        lines.append(f"| {k} | {format_interval(s['estimates'][k], pct=True, digits=2)} | {s['covers_truth'][k]} |")
    for c in res["obd"]:
        lines += ["", f"Gate reasons, campaign {c['campaign']}:", ""] + [f"- {r}" for r in c["gate_reasons"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--obp-sdist", type=Path, required=True, help="obp-0.5.7.tar.gz (pip download, see above)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        obd = []
        for campaign in ("all", "men", "women"):
            work = Path(tmp) / campaign
            work.mkdir()
            obd.append(obd_campaign(args.obp_sdist, campaign, work))
            print(campaign, obd[-1]["overlaps_truth"], obd[-1]["gate"], flush=True)
        (Path(tmp) / "synthetic").mkdir()
        synth = synthetic(Path(tmp) / "synthetic")
    res = {
        "date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "command": "python bench/bandit.py --obp-sdist obp-0.5.7.tar.gz", "seconds": time.perf_counter() - start,
        "obd": obd, "synthetic": synth,
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "bandit.json", json.dumps(res, indent=2) + "\n")
    atomic_write_text(args.out / "bandit.md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
