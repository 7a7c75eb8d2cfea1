"""Sepsis benchmark: on logs of the sepsis simulator's physicians, what do guardrl's learners achieve, how well do
its estimators judge them, and does the gate under "no worse than the physicians" say PASS only when it is true?

Settings: data seeds x regimes (``physician``: propensities logged; ``physician-hidden``: none) x logged patients
(1,000 as in Oberst & Sontag, 10,000). Each setting is ``guardrl run -c configs/sepsis.yaml`` with only the seed,
the regime and the size changed. Nothing in the run reads an exact value; afterwards dynamic programming on the
full-state model gives each candidate's exact mortality and return, and the physicians'.

Reported per setting and summed: each learner's exact mortality and return against the physicians'; each
estimator's mean absolute error on the return, its rank correlation (Spearman) with the exact returns over the
candidates and its regret@1 (exact return of the best candidate minus that of the estimator's top pick; Tang &
Wiens, MLHC 2021, found FQE ranks best); and the gate: a false PASS is a PASS whose exact mortality exceeds the
physicians', a true PASS one whose exact mortality is below it.

    .venv/bin/python bench/sepsis.py                       # held-out data seeds 0-2 (about 25 min on 2 cores)
    .venv/bin/python bench/sepsis.py --seeds 100 101       # development seeds

Writes ``bench/results/sepsis.{json,md}`` (held-out) or ``sepsis-dev.{json,md}`` (any seed >= 100).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import itertools
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from guardrl._io import atomic_write_text
from guardrl.config import RunConfig, from_dict
from guardrl.evaluate.gate import gate as gate_fn
from guardrl.run import RunContext, RunFolder, stages
from guardrl.run.judging import behaviour_hazard, behaviour_return, gate_evidence

REGIMES = ("physician", "physician-hidden")
SIZES = (1000, 10000)
ESTIMATORS = ("pdis", "wis", "dr", "fqe", "model")
DEV_SEEDS_FROM = 100
CONFIG = Path(__file__).resolve().parent.parent / "configs" / "sepsis.yaml"


def spearman(a: list[float], b: list[float]) -> float | None:
    """Rank correlation (average ranks for ties); None with fewer than 3 values or a constant side."""
    if len(a) < 3:
        return None

    def ranks(x: list[float]) -> np.ndarray:
        arr = np.asarray(x, dtype=float)
        order = arr.argsort(kind="stable")
        r = np.empty(len(arr))
        r[order] = np.arange(len(arr))
        for v in np.unique(arr):
            r[arr == v] = r[arr == v].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def run_setting(seed: int, regime: str, n: int, work: Path) -> dict[str, Any]:
    raw = yaml.safe_load(CONFIG.read_text())
    raw["collect"] = {**raw["collect"], "seed": seed, "regime": regime, "n_episodes": n}
    cfg = from_dict(RunConfig, raw)
    t0 = time.perf_counter()
    run_dir, metrics = stages.run(cfg, work, show_progress=False)
    seconds = time.perf_counter() - t0
    ope = json.loads((run_dir / "ope.json").read_text())
    gate = json.loads((run_dir / "gate.json").read_text())
    rec = json.loads((run_dir / "recommendation.json").read_text())
    phys = metrics["behaviour_exact"]
    candidates = {}
    for name, entry in ope["policies"].items():
        truth = {k: entry["truth"][k]["mean"] for k in ("return", "cost")}
        decision = gate["decisions"][name]
        candidates[name] = {
            "decision": decision["decision"],
            "failing": sorted({r["rule"] for r in decision["reasons"] if r["decision"] != "PASS"}),
            "exact_return": truth["return"],
            "exact_mortality": truth["cost"],
            "better_than_physicians": truth["cost"] < phys["hazard_prob"],
            "estimates": {
                sig: {k: v["mean"] for k, v in entry["estimates"][sig].items()} for sig in ("return", "cost")
            },
            "ess_episodes": entry.get("weights", {}).get("ess_episodes"),
        }
    names = list(candidates)
    exact_returns = [candidates[n]["exact_return"] for n in names]
    best = max(exact_returns)
    estimators = {}
    for est in ESTIMATORS:
        values = [candidates[n]["estimates"]["return"].get(est) for n in names]
        if any(v is None for v in values):
            continue
        top = names[int(np.argmax(values))]
        estimators[est] = {
            "return_mae": float(np.mean(np.abs(np.subtract(values, exact_returns)))),
            "spearman": spearman(values, exact_returns),  # type: ignore[arg-type]
            "regret_at_1": best - candidates[top]["exact_return"],
            "top": top,
        }
    passed = [c for c in candidates.values() if c["decision"] == "PASS"]
    # the same evidence judged as if the logs were not confounded (FQE and the world model trusted): what the
    # gate would have said without gate.confounded
    ctx = RunContext.open(RunFolder(run_dir))
    plain = gate_fn(*gate_evidence(ctx), dataclasses.replace(ctx.cfg.gate, confounded=False),
                    behaviour=behaviour_return(ctx), behaviour_hazard=behaviour_hazard(ctx))["decisions"]  # fmt: skip
    for name, c in candidates.items():
        c["decision_unconfounded"] = plain[name]["decision"]
    plain_pass = [c for c in candidates.values() if c["decision_unconfounded"] == "PASS"]
    return {
        "seed": seed, "regime": regime, "patients": n, "seconds": seconds,
        "physicians": {"exact_mortality": phys["hazard_prob"], "exact_return": phys["expected_return"],
                       "estimated_mortality": gate.get("behaviour_hazard")},
        "false_pass": sum(not c["better_than_physicians"] for c in passed),
        "true_pass": sum(c["better_than_physicians"] for c in passed),
        "n_better": sum(c["better_than_physicians"] for c in candidates.values()),
        "recommended": rec["policy"],
        "unconfounded_gate": {"false_pass": sum(not c["better_than_physicians"] for c in plain_pass),
                              "true_pass": sum(c["better_than_physicians"] for c in plain_pass)},
        "estimators": estimators,
        "candidates": candidates,
    }  # fmt: skip


def markdown(res: dict[str, Any]) -> str:
    lines = [
        f"# Sepsis benchmark ({res['split']} seeds {res['seeds']})", "",
        f"{res['date']}, {res['machine']}, {res['seconds']:.0f} s. Command: `{res['command']}`", "",
        "Gate: `hazard_vs_behaviour: 0`, `confounded: true` (configs/sepsis.yaml). False PASS: exact mortality above "
        "the physicians'.", "",
        "| seed | regime | patients | physicians' mortality (exact / est.) | candidates better | PASS (true / false) "
        "| without `confounded`: PASS (true / false) | recommended | s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for s in res["settings"]:
        p = s["physicians"]
        est = p["estimated_mortality"]["mean"] if p["estimated_mortality"] else float("nan")
        lines.append(
            f"| {s['seed']} | {s['regime']} | {s['patients']} | {p['exact_mortality']:.2%} / {est:.2%} | "
            f"{s['n_better']} of {len(s['candidates'])} | {s['true_pass']} / {s['false_pass']} | "
            f"{s['unconfounded_gate']['true_pass']} / {s['unconfounded_gate']['false_pass']} | "
            f"{s['recommended'] or 'none'} | {s['seconds']:.0f} |"
        )
    lines += ["", "Learners, exact (mean over settings): mortality and return; and how often the gate PASSed them.", "",
              "| learner | mortality | return | PASS |", "|---|---|---|---|"]  # fmt: skip
    names = sorted({n for s in res["settings"] for n in s["candidates"]})
    for n in names:
        cs = [s["candidates"][n] for s in res["settings"] if n in s["candidates"]]
        lines.append(f"| {n} | {np.mean([c['exact_mortality'] for c in cs]):.2%} | "
                     f"{np.mean([c['exact_return'] for c in cs]):.3f} | "
                     f"{sum(c['decision'] == 'PASS' for c in cs)} of {len(cs)} |")  # fmt: skip
    phys = [s["physicians"] for s in res["settings"]]
    lines.append(f"| physicians | {np.mean([p['exact_mortality'] for p in phys]):.2%} | "
                 f"{np.mean([p['exact_return'] for p in phys]):.3f} | |")  # fmt: skip
    lines += ["", "Estimators of the return (mean over settings, per regime): absolute error, rank correlation with "
              "the exact returns over the candidates, regret@1 (exact return lost by taking the estimator's top "
              "candidate).", "", "| regime | estimator | MAE | Spearman | regret@1 |",
              "|---|---|---|---|---|"]  # fmt: skip
    for regime in REGIMES:
        for est in ESTIMATORS:
            rows = [s["estimators"][est] for s in res["settings"] if est in s["estimators"] and s["regime"] == regime]
            if not rows:
                continue
            rho = [r["spearman"] for r in rows if r["spearman"] is not None]
            lines.append(f"| {regime} | {est} | {np.mean([r['return_mae'] for r in rows]):.3g} | "
                         f"{np.mean(rho) if rho else float('nan'):.2f} | "
                         f"{np.mean([r['regret_at_1'] for r in rows]):.3f} |")  # fmt: skip
    total_false = sum(s["false_pass"] for s in res["settings"])
    total_true = sum(s["true_pass"] for s in res["settings"])
    plain_false = sum(s["unconfounded_gate"]["false_pass"] for s in res["settings"])
    plain_true = sum(s["unconfounded_gate"]["true_pass"] for s in res["settings"])
    lines += [
        "",
        f"False PASS in all: {total_false}; true PASS: {total_true}. The same evidence judged without "
        f"`gate.confounded` (FQE and the world model trusted): {plain_false} false PASS, {plain_true} true.",
    ]
    return "\n".join(lines) + "\n"


def rerender(stem: str, out: Path) -> None:
    """Write ``<stem>.md`` again from ``<stem>.json`` (after a change to the tables)."""
    res = json.loads((out / f"{stem}.json").read_text())
    atomic_write_text(out / f"{stem}.md", markdown(res))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="data seeds")
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=list(REGIMES))
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="logged patients")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    dev = any(seed >= DEV_SEEDS_FROM for seed in args.seeds)
    if dev and any(seed < DEV_SEEDS_FROM for seed in args.seeds):
        parser.error(f"mix no held-out seed (< {DEV_SEEDS_FROM}) with development seeds")
    t0 = time.perf_counter()
    settings = []
    combos = list(itertools.product(args.seeds, args.regimes, args.sizes))
    for i, (seed, regime, n) in enumerate(combos):
        with tempfile.TemporaryDirectory() as tmp:
            s = run_setting(seed, regime, n, Path(tmp))
        settings.append(s)
        print(f"[{i + 1}/{len(combos)}] seed {seed} {regime} {n}: physicians {s['physicians']['exact_mortality']:.2%}, "
              f"{s['n_better']} better, PASS {s['true_pass']} true / {s['false_pass']} false, recommended "
              f"{s['recommended']}, {s['seconds']:.0f} s", flush=True)  # fmt: skip
    res: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "command": ".venv/bin/python bench/sepsis.py " + " ".join(
            ["--seeds", *map(str, args.seeds), "--regimes", *args.regimes, "--sizes", *map(str, args.sizes)]),
        "seeds": args.seeds,
        "split": "development" if dev else "held out",
        "seconds": time.perf_counter() - t0,
        "settings": settings,
    }  # fmt: skip
    stem = "sepsis-dev" if dev else "sepsis"
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / f"{stem}.json", json.dumps(res, indent=2) + "\n")
    atomic_write_text(args.out / f"{stem}.md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
