"""Judge benchmark: reference policies brought as files, judged by ``guardrl judge`` on SafeGrid's default logs.

Per data seed: the default world's ``safe`` logs (500 episodes, as the default run logs them, seeded by the data
seed), then ``guardrl judge`` (logs only, the built-in defaults) on the exact optimum, its epsilon-soft versions
(0.05, 0.1, 0.3: stochastic, judged by their probabilities), uniform random and the hazard-seeking policy, each
as a policy table; the optimum and the 0.05-optimum also as TorchScript and ONNX (scores and probabilities). Then
exact values by dynamic programming: each policy's verdict against the truth (a false PASS has exact hazard above
the gate's limit) and each estimator's error, and the largest difference between the formats' estimates.

    .venv/bin/python bench/judge.py                  # held-out data seeds 0-4 (about 4 min on 2 cores)
    .venv/bin/python bench/judge.py --seeds 100 101  # development seeds

Writes ``bench/results/judge.{json,md}`` (held-out) or ``judge-dev.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from guardrl._io import atomic_write_text
from guardrl.data import collect
from guardrl.envs import (
    TablePolicy,
    build_tables,
    default_layout,
    evaluate_exact,
    hazard_seeking_policy,
    solve_optimal,
    states_to_obs,
    stationary,
)
from guardrl.run.judge import judge

DEV_SEEDS_FROM = 100
EPSILONS = (0.05, 0.1, 0.3)


class Lookup(torch.nn.Module):
    """A per-cell table as a network (the way a user's model would hold it): row ``y * size + x``."""

    def __init__(self, rows: np.ndarray, size: int):
        super().__init__()
        self.rows = torch.nn.Parameter(torch.as_tensor(rows, dtype=torch.float64), requires_grad=False)
        self.size = size

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        cell = (obs[:, 1] * self.size + obs[:, 0]).round().long()
        return self.rows[cell]


def write_policies(tables: Any, folder: Path) -> tuple[list[str], dict[str, dict[str, float]], dict[str, str]]:
    """The reference policies as files; their exact values; which files hold the same policy (name -> twin)."""
    lay = tables.layout
    cells = states_to_obs(lay, np.arange(lay.n_states))
    frame = pd.DataFrame({"obs_0": cells[:, 0], "obs_1": cells[:, 1]})
    optimal = stationary(solve_optimal(tables)[0]).probs[0]
    probs = {
        "optimal": optimal,
        **{f"eps-{e}": (1 - e) * optimal + e / 4 for e in EPSILONS},
        "random": np.full_like(optimal, 0.25),
        "hazard-seeking": hazard_seeking_policy(tables).probs[0],
    }
    specs, exact, twins = [], {}, {}
    for name, p in probs.items():
        path = folder / f"{name}.csv"
        if name in ("optimal", "hazard-seeking"):
            frame.assign(action=p.argmax(axis=1)).to_csv(path, index=False)
        else:
            frame.assign(**{f"prob_{k}": p[:, k] for k in range(4)}).to_csv(path, index=False, float_format="%.17g")
        specs.append(str(path))
        exact[name] = evaluate_exact(TablePolicy(tables, p[None], name)).to_dict()
    for name, rows in (("optimal", 5.0 * optimal), ("eps-0.05", probs["eps-0.05"])):
        module = torch.jit.script(Lookup(rows, lay.size))
        for suffix in ("pt", "onnx"):
            twin = f"{name}-{suffix}"
            path = folder / f"{twin}.{suffix}"
            if suffix == "pt":
                module.save(str(path))
            else:
                torch.onnx.export(module, (torch.zeros(1, 2),), str(path), dynamo=False, opset_version=17,
                                  input_names=["observation"], output_names=["out"],
                                  dynamic_axes={"observation": {0: "batch"}, "out": {0: "batch"}})  # fmt: skip
            specs.append(str(path))
            exact[twin] = exact[name]
            twins[twin] = name
    return specs, exact, twins


def run_seed(seed: int, work: Path, config: Path | None = None) -> dict[str, Any]:
    tables = build_tables(default_layout())
    ds = collect(tables, "safe", 500, seed)
    ds.save(work / "logs")
    specs, exact, twins = write_policies(tables, work)
    t0 = time.perf_counter()
    out = judge(work / "logs", specs, work / "judged", config=config)
    seconds = time.perf_counter() - t0
    ope = json.loads((out / "ope.json").read_text())["policies"]
    gate = json.loads((out / "gate.json").read_text())
    limit = gate["config"]["hazard_limit"]
    rec = json.loads((out / "recommendation.json").read_text())["policy"]
    policies = {}
    for name, entry in ope.items():
        d = gate["decisions"][name]
        errors = {sig: {est: v["mean"] - exact[name]["expected_return" if sig == "return" else "hazard_prob"]
                        for est, v in entry["estimates"][sig].items()} for sig in ("return", "cost")}  # fmt: skip
        policies[name] = {
            "decision": d["decision"], "failing": sorted({r["rule"] for r in d["reasons"] if r["decision"] != "PASS"}),
            "exact_return": exact[name]["expected_return"], "exact_hazard": exact[name]["hazard_prob"],
            "errors": errors,
        }  # fmt: skip
    gaps = [
        abs(e["mean"] - ope[twin]["estimates"][sig][est]["mean"])
        for twin, name in twins.items() for sig in ("return", "cost")
        for est, e in ope[name]["estimates"][sig].items()
    ]  # fmt: skip
    false_pass = [n for n, p in policies.items() if p["decision"] == "PASS" and p["exact_hazard"] > limit]
    return {
        "seed": seed, "seconds": seconds, "limit": limit, "recommended": rec, "policies": policies,
        "false_pass": false_pass, "max_format_gap": max(gaps),
    }  # fmt: skip


def markdown(res: dict[str, Any]) -> str:
    names = list(res["settings"][0]["policies"])
    lines = [
        f"# Judge benchmark ({res['split']} data seeds {res['seeds']})", "",
        f"{res['date']}, {res['machine']}, {res['seconds']:.0f} s. Command: `{res['command']}`", "",
        "`guardrl judge` (logs only, built-in defaults) on the default world's `safe` logs; verdict per seed, exact "
        "values by dynamic programming.", "",
        "| policy | exact return | exact hazard | " + " | ".join(f"seed {s['seed']}" for s in res["settings"]) + " |",
        "|---|---|---|" + "---|" * len(res["settings"]),
    ]  # fmt: skip
    for n in names:
        p0 = res["settings"][0]["policies"][n]
        verdicts = " | ".join(s["policies"][n]["decision"] for s in res["settings"])
        lines.append(f"| {n} | {p0['exact_return']:.2f} | {p0['exact_hazard']:.2%} | {verdicts} |")
    lines += ["", "Mean absolute error against the exact values over seeds and the table policies:", "",
              "| estimator | return | hazard (points) |", "|---|---|---|"]  # fmt: skip
    ests = sorted({e for s in res["settings"] for p in s["policies"].values() for e in p["errors"]["return"]})
    for est in ests:
        r = [abs(p["errors"]["return"][est]) for s in res["settings"] for n, p in s["policies"].items()
             if est in p["errors"]["return"] and "-pt" not in n and "-onnx" not in n]  # fmt: skip
        c = [abs(p["errors"]["cost"][est]) for s in res["settings"] for n, p in s["policies"].items()
             if est in p["errors"]["cost"] and "-pt" not in n and "-onnx" not in n]  # fmt: skip
        lines.append(f"| {est} | {np.mean(r):.3f} | {100 * np.mean(c):.2f} |")
    gap = max(s["max_format_gap"] for s in res["settings"])
    fp = sum(len(s["false_pass"]) for s in res["settings"])
    lines += ["", f"False PASS: {fp}. Largest difference between a table's estimates and the same policy's through "
              f"TorchScript or ONNX: {gap:.3g}. Recommended: "
              + ", ".join(f"seed {s['seed']} {s['recommended']}" for s in res["settings"]) + "."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="data seeds")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--config", type=Path, help="a run config for the judgement (default: logs only, built in)")
    parser.add_argument("--tag", default="", help="suffix of the result files' names")
    args = parser.parse_args()
    dev = any(seed >= DEV_SEEDS_FROM for seed in args.seeds)
    if dev and any(seed < DEV_SEEDS_FROM for seed in args.seeds):
        parser.error(f"mix no held-out seed (< {DEV_SEEDS_FROM}) with development seeds")
    t0 = time.perf_counter()
    settings = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            s = run_seed(seed, Path(tmp), args.config)
        settings.append(s)
        verdicts = ", ".join(f"{n} {p['decision']}" for n, p in s["policies"].items())
        print(f"seed {seed}: {verdicts}; false PASS {s['false_pass']}; format gap {s['max_format_gap']:.2g}; "
              f"{s['seconds']:.0f} s", flush=True)  # fmt: skip
    res = {
        "date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "command": ".venv/bin/python bench/judge.py --seeds " + " ".join(map(str, args.seeds))
        + (f" --config {args.config}" if args.config else "") + (f" --tag {args.tag}" if args.tag else ""),
        "seeds": args.seeds, "split": "development" if dev else "held out", "seconds": time.perf_counter() - t0,
        "settings": settings,
    }  # fmt: skip
    stem = ("judge-dev" if dev else "judge") + (f"-{args.tag}" if args.tag else "")
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / f"{stem}.json", json.dumps(res, indent=2) + "\n")
    atomic_write_text(args.out / f"{stem}.md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
