"""Continuous-action learners (BC, TD3+BC, IQL, CQL) on SafeNav logs, and their training throughput against
d3rlpy's own ``fit()``.

Per regime (``safe``, ``noisy``) and data seed: 500 logged episodes (``guardrl.data.collect.collect_nav``), each
learner trained for ``--steps`` gradient steps (networks 64x64, one torch thread, the references' other
settings: ``guardrl.train.continuous``), then 1000 greedy episodes in the vectorized SafeNav. Scores are
normalized as D4RL's: 100 * (R - random) / (planner - random), the planner being the fine-grid value-iteration
solution (``guardrl.envs.safenav.nav_reference``: 5000 episodes each). Held-out data seeds 0-2 by default; the
step count and network width were chosen on development seed 100.

Throughput: each learner runs the same config for ``--throughput-steps`` steps through guardrl's loop and
through d3rlpy's ``fit()`` on the same data, alternately, after a warm-up; steps per second and their ratio.

Hopper (the ``mujoco`` extra): per D4RL-style level (``medium``, ``medium-replay``, ``medium-expert``) and data
seed, ``--hopper-data-steps`` transitions made here from the shipped actors (``guardrl.data.mujoco``), each
learner trained for ``--hopper-steps`` steps on 256x256 networks (``configs/hopper-medium.yaml``'s), then
``--hopper-episodes`` greedy episodes in Hopper-v5. Scores use D4RL's normalization constants; gymnasium v5 data
differ from D4RL's v2, so they are indicative. The hazard is a fall (the episode ends before its 1000 steps).

    .venv/bin/python bench/continuous.py                 # held-out seeds 0-2, SafeNav and hopper
    .venv/bin/python bench/continuous.py --seeds 100 --out /tmp/dev
    .venv/bin/python bench/continuous.py --regimes --hopper-levels medium-replay   # hopper alone, one level

Writes ``bench/results/continuous.{json,md}``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from matrix import across_seeds, result_header, save_results  # bench/ is on the path when a bench script runs

from guardrl._parallel import run_forked
from guardrl.data import load_dataset
from guardrl.data.collect import collect_nav
from guardrl.data.mujoco import collect_mujoco
from guardrl.envs.mujoco import D4RL_REFERENCE, normalized_score, simulate_mujoco  # MuJoCo loads on first env
from guardrl.envs.safenav import NavLayout, nav_reference, simulate_nav
from guardrl.evaluate.metrics import wilson_interval
from guardrl.train.continuous import CONTINUOUS_LEARNERS, ContinuousLearnerConfig, fit_with_d3rlpy, train_continuous

HIDDEN = (64, 64)
EPISODES = 500
EVAL_EPISODES = 1000
HOPPER_HIDDEN = (256, 256)


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson interval of a rate k/n."""
    low, high = wilson_interval(k / n, n)
    return float(low), float(high)


def cell(regime: str, seed: int, name: str, steps: int) -> dict[str, Any]:
    layout = NavLayout()
    ref = nav_reference(layout)
    ds = collect_nav(layout, regime, EPISODES, seed)
    result = train_continuous(ContinuousLearnerConfig(name, n_steps=steps, hidden_units=HIDDEN), ds, seed)
    eps, _ = simulate_nav(layout, lambda p, s, r: result.predict(p), EVAL_EPISODES, np.random.default_rng([seed, 7]))
    ret = float(eps.returns.mean())
    hazards = int(eps.hazard.sum())
    return {
        "return": ret,
        "score": 100 * (ret - ref["random_return"]) / (ref["optimal_return"] - ref["random_return"]),
        "hazard_rate": hazards / EVAL_EPISODES,
        "hazard_interval": wilson(hazards, EVAL_EPISODES),
        "goal_rate": float(eps.goal.mean()),
        "logged_hazard_rate": float((ds.costs > 0).sum() / ds.n_episodes),
        "train_seconds": result.seconds,
        "normalization": result.normalization["reward"],
    }


def hopper_data(level: str, seed: int, n_steps: int, folder: Path) -> dict[str, Any]:
    """Make one level's logs (saved under ``folder``, shared by the learners' cells) and describe them."""
    ds = collect_mujoco("hopper", level, n_steps, seed)
    ds.save(folder / f"{level}-{seed}")
    falls = float(ds.terminations.sum() / ds.n_episodes)
    return {"score": float(normalized_score("hopper", ds.episode_returns()).mean()), "fall_rate": falls,
            "episodes": int(ds.n_episodes), "transitions": len(ds)}  # fmt: skip


def hopper_cell(level: str, seed: int, name: str, steps: int, episodes: int, folder: Path) -> dict[str, Any]:
    """One learner on one level's logs: D4RL-normalized score of ``episodes`` greedy episodes and their falls."""
    ds = load_dataset(folder / f"{level}-{seed}")
    result = train_continuous(ContinuousLearnerConfig(name, n_steps=steps, hidden_units=HOPPER_HIDDEN), ds, seed)

    def act(obs: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return result.predict(obs).astype(np.float32), np.zeros(len(obs))

    eps, _ = simulate_mujoco("hopper", act, episodes, np.random.default_rng([seed, 7]))
    scores = normalized_score("hopper", eps.returns)
    return {
        "return": float(eps.returns.mean()),
        "score": float(scores.mean()),
        "episode_scores": scores.tolist(),
        "hazard_rate": float(eps.hazard.mean()),
        "train_seconds": result.seconds,
    }


def throughput(name: str, steps: int, threads: int = 1) -> dict[str, float]:
    import torch._dynamo  # noqa: F401  (the first optimizer step imports it: not a cost of either loop)

    ds = collect_nav(NavLayout(), "safe", EPISODES, 100)
    cfg = ContinuousLearnerConfig(name, n_steps=steps, hidden_units=HIDDEN)
    train_continuous(ContinuousLearnerConfig(name, n_steps=20, hidden_units=HIDDEN), ds, 0, threads=threads)
    ours, theirs = [], []
    for _ in range(2):  # alternate, so that a slow minute of the machine falls on both
        ours.append(steps / train_continuous(cfg, ds, 0, threads=threads).seconds)
        theirs.append(steps / fit_with_d3rlpy(cfg, ds, 0, threads=threads))
    return {"guardrl": float(np.mean(ours)), "d3rlpy_fit": float(np.mean(theirs)),
            "ratio": float(np.mean(ours) / np.mean(theirs))}  # fmt: skip


def markdown(res: dict[str, Any]) -> str:
    ref = res["reference"]
    lines = [
        f"# Continuous learners on SafeNav and hopper ({res['date']}, {res['machine']})",
        "",
        f"Command: `{res['command']}`. Data seeds {res['seeds']}; {res['total_seconds']:.0f} s in all.",
    ]
    if res["summary"]:
        lines += [
            "",
            f"## SafeNav ({res['steps']} steps per learner, {res['safenav_seconds']:.0f} s)",
            "",
            f"Score 0 = uniform random actions ({ref['random_return']:.2f}), 100 = the fine-grid planner "
            f"({ref['optimal_return']:.2f}, hazard {100 * ref['optimal_hazard_rate']:.2f}%). Mean over seeds with a "
            f"95% t interval; hazard: share of {EVAL_EPISODES} greedy episodes per seed, pooled over seeds with a 95% "
            "Wilson interval.",
            "",
            "| logs | learner | normalized score | hazard % | logs' hazard % |",
            "|---|---|---|---|---|",
        ]
        for regime, by_learner in res["summary"].items():
            for name, s in by_learner.items():
                lines.append(f"| {regime} | {name} | {_score(s)} | {_hazard(s)} | {100 * s['logged_hazard']:.2f} |")
        lines += _per_seed(res["cells"], "hazard", 1)
    hop = res["hopper"]
    low, high = D4RL_REFERENCE["hopper"]
    if hop["summary"]:
        lines += [
            "",
            f"## Hopper-v5 ({hop['steps']} steps per learner, networks {hop['hidden_units']}, {hop['seconds']:.0f} s)",
            "",
            f"Logs: {hop['data_steps']} transitions per level and seed, made here from the shipped actors. Score: "
            f"D4RL-normalized (hopper {low:.2f} / {high:.1f}; v5 data differ from D4RL's v2, so scores are "
            "indicative), mean "
            f"over seeds of {hop['episodes']} greedy episodes each, with a 95% t interval over seeds; falls: share "
            "of episodes ending in a fall, pooled over seeds with a 95% Wilson interval.",
            "",
            "| logs | learner | normalized score | falls % |",
            "|---|---|---|---|",
        ]
        for level, by_learner in hop["summary"].items():
            logs = hop["logs"][level].values()
            data = np.mean([c["score"] for c in logs])
            falls = np.mean([c["fall_rate"] for c in logs])
            lines.append(f"| {level} | (the logs) | {data:.1f} | {100 * falls:.1f} |")
            for name, s in by_learner.items():
                lines.append(f"| {level} | {name} | {_score(s)} | {_hazard(s, 1)} |")
        lines += _per_seed(hop["cells"], "falls", 0)
    if not res["throughput"]:
        return "\n".join(lines) + "\n"
    n_threads = res.get("throughput_threads", 1)
    threads = "one thread" if n_threads == 1 else f"{n_threads} threads each"
    lines += [
        "",
        f"Throughput on SafeNav ({res['throughput_steps']} steps, same config, {threads}, after a warm-up):",
        "",
        "| learner | guardrl steps/s | d3rlpy fit() steps/s | ratio |",
        "|---|---|---|---|",
    ]
    for name, t in res["throughput"].items():
        lines.append(f"| {name} | {t['guardrl']:.0f} | {t['d3rlpy_fit']:.0f} | {t['ratio']:.2f} |")
    return "\n".join(lines) + "\n"


def _per_seed(cells: dict[str, dict[str, dict[str, Any]]], hazard: str, digits: int) -> list[str]:
    """The per-seed list under a table: each logs and learner's score / hazard % on every seed."""
    lines = ["", f"Per seed (score / {hazard} %):", ""]
    for logs, by_learner in cells.items():
        for name, seeds in by_learner.items():
            text = "; ".join(f"{c['score']:.1f} / {100 * c['hazard_rate']:.{digits}f}" for c in seeds.values())
            lines.append(f"- {logs} {name}: {text}")
    return lines


def _score(s: dict[str, Any]) -> str:
    sc = s["score"]
    return f"{sc['mean']:.1f} [{sc['low']:.1f}, {sc['high']:.1f}]"


def _hazard(s: dict[str, Any], digits: int = 2) -> str:
    hz = s["hazard"]
    return f"{100 * hz['rate']:.{digits}f} [{100 * hz['low']:.{digits}f}, {100 * hz['high']:.{digits}f}]"


def summarize(cells: dict[str, dict[str, dict[str, Any]]], episodes: int) -> dict[str, dict[str, Any]]:
    """Per logs and learner: the score's mean over seeds with a t interval, and the pooled hazard rate."""
    summary: dict[str, dict[str, Any]] = {}
    for logs, by_learner in cells.items():
        for name, seeds in by_learner.items():
            k = sum(round(c["hazard_rate"] * episodes) for c in seeds.values())
            n = episodes * len(seeds)
            low, high = wilson(k, n)
            summary.setdefault(logs, {})[name] = {
                "score": across_seeds([c["score"] for c in seeds.values()]),
                "hazard": {"rate": k / n, "low": low, "high": high},
                **({"logged_hazard": float(np.mean([c["logged_hazard_rate"] for c in seeds.values()]))}
                   if all("logged_hazard_rate" in c for c in seeds.values()) else {}),
            }  # fmt: skip
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--regimes", nargs="*", default=["safe", "noisy"], help="SafeNav logs (none: skip SafeNav)")
    parser.add_argument("--learners", nargs="+", default=list(CONTINUOUS_LEARNERS))
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--hopper-levels", nargs="*", default=["medium", "medium-replay", "medium-expert"],
                        help="D4RL-style hopper levels (none: skip hopper)")  # fmt: skip
    parser.add_argument("--hopper-steps", type=int, default=10_000)
    parser.add_argument("--hopper-data-steps", type=int, default=100_000)
    parser.add_argument("--hopper-episodes", type=int, default=10)
    parser.add_argument("--throughput-steps", type=int, default=1000, help="0: no throughput comparison")
    parser.add_argument("--throughput-threads", type=int, default=1, help="torch threads of both loops")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    t0 = time.perf_counter()
    reference = nav_reference(NavLayout())
    keys = [(r, s, n) for r in args.regimes for s in args.seeds for n in args.learners]
    jobs = [lambda k=k: cell(*k, args.steps) for k in keys]
    results = run_forked(jobs, args.workers)
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    for (regime, seed, name), value in zip(keys, results, strict=True):
        cells.setdefault(regime, {}).setdefault(name, {})[str(seed)] = value
        print(f"{regime} seed {seed} {name}: score {value['score']:.1f} hazard {100 * value['hazard_rate']:.2f}%",
              flush=True)  # fmt: skip
    nav_seconds = time.perf_counter() - t0
    hopper_cells: dict[str, dict[str, dict[str, Any]]] = {}
    hopper_logs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data_keys = [(level, seed) for level in args.hopper_levels for seed in args.seeds]
        made = run_forked([lambda k=k: hopper_data(*k, args.hopper_data_steps, folder) for k in data_keys],
                          args.workers)  # fmt: skip
        for (level, seed), value in zip(data_keys, made, strict=True):
            hopper_logs.setdefault(level, {})[str(seed)] = value
            print(f"hopper-{level} seed {seed} logs: score {value['score']:.1f} falls {value['fall_rate']:.1%}",
                  flush=True)  # fmt: skip
        keys = [(level, s, n) for level in args.hopper_levels for s in args.seeds for n in args.learners]
        jobs = [lambda k=k: hopper_cell(*k, args.hopper_steps, args.hopper_episodes, folder) for k in keys]
        for (level, seed, name), value in zip(keys, run_forked(jobs, args.workers), strict=True):
            hopper_cells.setdefault(level, {}).setdefault(name, {})[str(seed)] = value
            print(f"hopper-{level} seed {seed} {name}: score {value['score']:.1f} falls {value['hazard_rate']:.0%}",
                  flush=True)  # fmt: skip
    hopper_seconds = time.perf_counter() - t0 - nav_seconds
    speed = (
        run_forked(
            [lambda n=n: throughput(n, args.throughput_steps, args.throughput_threads) for n in args.learners], 1
        )
        if args.throughput_steps > 0
        else []
    )
    default = all(getattr(args, k) == parser.get_default(k) for k in ("seeds", "regimes", "hopper_levels"))
    res = {
        **result_header(".venv/bin/python bench/continuous.py", default),
        "seeds": args.seeds,
        "steps": args.steps,
        "hopper": {
            "levels": args.hopper_levels,
            "steps": args.hopper_steps,
            "data_steps": args.hopper_data_steps,
            "episodes": args.hopper_episodes,
            "hidden_units": list(HOPPER_HIDDEN),
            "seconds": hopper_seconds,
            "logs": hopper_logs,
            "cells": hopper_cells,
            "summary": summarize(hopper_cells, args.hopper_episodes),
        },  # fmt: skip
        "throughput_steps": args.throughput_steps,
        "throughput_threads": args.throughput_threads,
        "reference": reference,
        "safenav_seconds": nav_seconds,
        "total_seconds": time.perf_counter() - t0,
        "cells": cells,
        "summary": summarize(cells, EVAL_EPISODES),
        "throughput": dict(zip(args.learners, speed, strict=False)),
    }
    save_results(args.out, "continuous", default, res, markdown(res))


if __name__ == "__main__":
    main()
