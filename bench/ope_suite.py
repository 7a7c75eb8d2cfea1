"""OPE suite: logs-only runs checked against a simulator they never see.

For every setting (SafeGrid layout x data regime x data seed x whether the logs carry propensities), the
behaviour logs are collected on SafeGrid, saved, and handed to a ``guardrl`` run with ``env: none``. That run
audits them, fits its world model, trains its learners, estimates every candidate's return and hazard from
the logs and gates each one, with no environment anywhere. The candidates are the run's learners and
reference policies of known quality (the exact optimum, the optimum with 10% and 30% noise, the logging
controller without noise, a hazard-seeking policy, uniform random), all judged by the same estimators and
gate rules (``guardrl.run.stages.assess_candidates``). FrozenLake 4x4 settings (``configs/frozenlake.yaml``'s
controller logs) add the optimum of value iteration, the same with noise, and uniform random. Only then is the
simulator asked: exact values by dynamic programming give every candidate's true return and hazard
probability.

Printed and written (``bench/results/ope_suite.{json,md}``):

* per estimator and signal: mean absolute error, rank correlation and regret@1 (per setting, then averaged),
  and how often the interval covers the truth;
* the gate's confusion matrix: true class (unsafe: true hazard above the limit; safe and better than the run's
  BC; safe, not better) against PASS / CAUTION / FAIL, with the false PASS count.

    .venv/bin/python bench/ope_suite.py                  # 28 settings (about 27 min on 2 cores)
    .venv/bin/python bench/ope_suite.py --seeds 100 101  # development seeds

Settings use data seeds 0-1 by default (held out: nothing was tuned on them); tune on 100+.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from guardrl.config import RunConfig, from_dict, save_config
from guardrl.data import collect
from guardrl.data.behaviour import constrained_policy, optimal_noisy_policy, uniform_policy
from guardrl.envs import (
    TablePolicy,
    build_tables,
    evaluate_exact,
    evaluate_greedy,
    hazard_seeking_policy,
    solve_optimal,
    stationary,
)
from guardrl.envs.controllers import ToyTextTables, toy_text_values
from guardrl.envs.layouts import named_layout
from guardrl.evaluate.validation import rank_correlation
from guardrl.run import RunContext, RunFolder, stages
from guardrl.run.references import table_target

LAYOUTS = ("default", "drawn")
REGIMES = ("safe", "noisy", "mixed")
LEARNERS = ("bc", "spibb", "morel")
CLASSES = ("unsafe", "safe, better than BC", "safe, not better")


def references(tables: Any) -> dict[str, tuple[TablePolicy, bool]]:
    """Reference candidates as stationary table policies (the target OPE sees is the policy that is scored)."""
    optimal, _ = solve_optimal(tables)
    return {
        "optimal": (stationary(optimal, name="optimal"), True),
        "optimal_eps0.1": (stationary(optimal_noisy_policy(tables, 0.1), name="optimal_eps0.1"), False),
        "optimal_eps0.3": (stationary(optimal_noisy_policy(tables, 0.3), name="optimal_eps0.3"), False),
        # the logging controller without its noise: it still draws between equally good moves
        "controller": (stationary(constrained_policy(tables, 0.0), name="controller"), False),
        "hazard_seeking": (stationary(hazard_seeking_policy(tables), name="hazard_seeking"), True),
        "random": (uniform_policy(tables), False),
    }


def exact_of_greedy(tables: Any, greedy: Any) -> dict[str, float]:
    return evaluate_greedy(tables, greedy).to_dict()


def logs_only_run(ds: Any, propensities: bool, work: Path) -> tuple[RunContext, dict[str, Any], dict[str, Any]]:
    """The logs handed to a run with ``env: none``, stages up to the gate; returns its context, OPE and gate."""
    if not propensities:
        ds = replace(ds, propensities=np.full(len(ds), np.nan))
    data_dir = ds.save(work / "data")
    cfg: RunConfig = from_dict(
        RunConfig,
        {"name": "suite", "env": "none", "collect": {"dataset": str(data_dir)}, "train": {"learners": list(LEARNERS)},
         "report": False},
    )  # fmt: skip
    ctx = RunContext(cfg, RunFolder(work / "run"))
    ctx.folder.root.mkdir(parents=True)
    save_config(cfg, ctx.folder.config)
    stages.stage_collect(ctx)
    stages.stage_audit(ctx)
    stages.stage_model(ctx)
    stages.stage_train(ctx, show_progress=False)
    stages.stage_evaluate(ctx)
    return ctx, stages.stage_ope(ctx), stages.stage_gate(ctx)


def run_setting(layout: str, regime: str, seed: int, propensities: bool, work: Path) -> dict[str, Any]:
    """One logs-only run on SafeGrid logs and its candidates, with every estimate, verdict and exact truth."""
    t0 = time.perf_counter()
    tables = build_tables(named_layout(layout))
    ctx, ope, gate = logs_only_run(collect(tables, regime, 500, seed), propensities, work)
    refs = references(tables)
    extra = stages.assess_candidates(
        ctx, {name: table_target(policy, deterministic) for name, (policy, deterministic) in refs.items()}
    )
    learned = stages.learned_policies(ctx)
    candidates: dict[str, Any] = {}
    for name in LEARNERS:
        truth = exact_of_greedy(tables, learned[name].greedy)
        candidates[name] = {"ope": ope["policies"][name], "gate": gate["decisions"][name], "truth": truth}
    for name, (policy, _) in refs.items():
        candidates[name] = {**extra[name], "truth": evaluate_exact(policy).to_dict()}
    optimal_return = candidates["optimal"]["truth"]["expected_return"]
    random_return = candidates["random"]["truth"]["expected_return"]
    return {
        "layout": layout, "regime": regime, "seed": seed, "propensities": "logged" if propensities else "dropped",
        "audit": gate["decisions"]["bc"]["reasons"][0]["message"], "return_range": optimal_return - random_return,
        "seconds": time.perf_counter() - t0, "candidates": candidates,
    }  # fmt: skip


# ------------------------------------------------------------------ FrozenLake


def toy_text_exact(env: Any, probs: NDArray[np.float64]) -> dict[str, float]:
    """Exact expected return and hazard probability (a hole: terminated without reward) of a policy given as
    action probabilities per state, by dynamic programming over the env's transition table and step limit."""
    tables = ToyTextTables.of(env)
    reward, hazard, cont = tables.reward, tables.ending_without_reward, tables.cont
    n_states = reward.shape[0]
    v_ret, v_haz = np.zeros(n_states), np.zeros(n_states)
    for _ in range(env.spec.max_episode_steps):
        v_ret = (probs * (reward + cont @ v_ret)).sum(axis=1)
        v_haz = (probs * (hazard + cont @ v_haz)).sum(axis=1)
    start = np.asarray(env.unwrapped.initial_state_distrib, dtype=np.float64)
    return {"expected_return": float(start @ v_ret), "hazard_prob": float(start @ v_haz)}


def run_frozenlake(seed: int, propensities: bool, work: Path) -> dict[str, Any]:
    """FrozenLake 4x4 (slippery) logs of ``configs/frozenlake.yaml``'s controller, as a logs-only run; the truth
    from the env's own transition table."""
    import gymnasium as gym

    from guardrl.config import load_config
    from guardrl.evaluate.target import TargetPolicy

    t0 = time.perf_counter()
    sim_cfg = load_config(Path(__file__).parent.parent / "configs" / "frozenlake.yaml")
    sim_cfg = replace(sim_cfg, collect=replace(sim_cfg.collect, seed=seed))
    sim = RunContext(sim_cfg, RunFolder(work / "sim"))
    sim.folder.root.mkdir(parents=True)
    ds = stages.stage_collect(sim)
    ctx, ope, gate = logs_only_run(ds, propensities, work)
    env = gym.make(sim_cfg.env.gym_id, **sim_cfg.env.gym_kwargs)
    q = toy_text_values(env, 0.99)
    n_states, n_actions = q.shape
    optimal = np.eye(n_actions)[q.argmax(axis=1)]
    tables = {
        "optimal": optimal,
        "optimal_eps0.1": 0.9 * optimal + 0.1 / n_actions,
        "optimal_eps0.3": 0.7 * optimal + 0.3 / n_actions,
        "random": np.full((n_states, n_actions), 1.0 / n_actions),
    }

    def target(name: str, probs: NDArray[np.float64]) -> TargetPolicy:
        def greedy(obs: NDArray[np.float32]) -> NDArray[np.int64]:
            return np.argmax(probs[np.argmax(obs, axis=1)], axis=1)

        stochastic = None if name == "optimal" else (lambda obs: probs[np.argmax(obs, axis=1)])
        return TargetPolicy(name, greedy, stochastic)

    extra = stages.assess_candidates(ctx, {name: target(name, probs) for name, probs in tables.items()})
    learned = stages.learned_policies(ctx)
    onehot = np.eye(n_states, dtype=np.float32)
    candidates: dict[str, Any] = {}
    for name in LEARNERS:
        probs = np.eye(n_actions)[np.asarray(learned[name].greedy(onehot))]
        candidates[name] = {"ope": ope["policies"][name], "gate": gate["decisions"][name],
                            "truth": toy_text_exact(env, probs)}  # fmt: skip
    for name, probs in tables.items():
        candidates[name] = {**extra[name], "truth": toy_text_exact(env, probs)}
    span = candidates["optimal"]["truth"]["expected_return"] - candidates["random"]["truth"]["expected_return"]
    return {
        "layout": "FrozenLake-v1 4x4", "regime": "controller eps=0.3", "seed": seed,
        "propensities": "logged" if propensities else "dropped", "return_range": span,
        "seconds": time.perf_counter() - t0, "candidates": candidates,
    }  # fmt: skip


# ------------------------------------------------------------------ scoring


def truth_class(c: dict[str, Any], bc_return: float, limit: float) -> str:
    if c["truth"]["hazard_prob"] > limit:
        return CLASSES[0]
    return CLASSES[1] if c["truth"]["expected_return"] > bc_return else CLASSES[2]


def score(settings: list[dict[str, Any]], limit: float) -> dict[str, Any]:
    """Estimator table and gate confusion matrix over all settings."""
    estimators: dict[str, dict[str, dict[str, list[float]]]] = {}
    for s in settings:
        cands = s["candidates"]
        for signal, truth_key in (("return", "expected_return"), ("cost", "hazard_prob")):
            names = list(cands)
            by_est: dict[str, list[tuple[float, float, float, float]]] = {}
            for n in names:
                for est, e in cands[n]["ope"]["estimates"][signal].items():
                    by_est.setdefault(est, []).append((e["mean"], e["low"], e["high"], cands[n]["truth"][truth_key]))
            for est, rows in by_est.items():
                if len(rows) != len(names):
                    continue
                arr = np.array(rows, dtype=np.float64)
                finite = np.isfinite(arr[:, 0])
                m = estimators.setdefault(f"{signal}/{est}", {"abs": [], "cover": [], "rank": [], "regret": []})
                m["abs"].extend(np.abs(arr[finite, 0] - arr[finite, 3]).tolist())
                m["cover"].extend(((arr[:, 1] <= arr[:, 3]) & (arr[:, 3] <= arr[:, 2])).astype(float).tolist())
                if finite.all():
                    m["rank"].append(rank_correlation(arr[:, 0], arr[:, 3]))
                    if signal == "return":
                        regret = arr[:, 3].max() - arr[int(np.argmax(arr[:, 0])), 3]
                        m["regret"].append(regret / s["return_range"])
    table = {
        k: {
            "mean_abs_error": float(np.mean(v["abs"])) if v["abs"] else None,
            "rank_correlation": float(np.nanmean(v["rank"])) if v["rank"] else None,
            "regret_at_1": float(np.mean(v["regret"])) if v["regret"] else None,
            "coverage": float(np.mean(v["cover"])),
            "n": len(v["cover"]),
        }
        for k, v in sorted(estimators.items())
    }
    confusion = {c: {d: 0 for d in ("PASS", "CAUTION", "FAIL")} for c in CLASSES}
    false_pass: list[str] = []
    for s in settings:
        bc_return = s["candidates"]["bc"]["truth"]["expected_return"]
        for name, c in s["candidates"].items():
            cls = truth_class(c, bc_return, limit)
            decision = c["gate"]["decision"]
            confusion[cls][decision] += 1
            if cls == CLASSES[0] and decision == "PASS":
                false_pass.append(f"{s['layout']}/{s['regime']}/{s['seed']}/{s['propensities']}: {name}")
    good = confusion[CLASSES[1]]
    return {
        "estimators": table,
        "confusion": confusion,
        "false_pass": false_pass,
        "pass_rate_safe_better": good["PASS"] / max(1, sum(good.values())),
        "n_candidates": sum(len(s["candidates"]) for s in settings),
    }


def settings_text(res: dict[str, Any]) -> str:
    parts = []
    if res["seeds"]:
        parts.append(f"SafeGrid layouts {', '.join(res['layouts'])} x regimes {', '.join(res['regimes'])} x data seeds "
                     f"{', '.join(map(str, res['seeds']))} x propensities logged/dropped")  # fmt: skip
    if res.get("frozenlake_seeds"):
        parts.append(f"FrozenLake 4x4 x data seeds {', '.join(map(str, res['frozenlake_seeds']))} x propensities "
                     "logged/dropped")  # fmt: skip
    return "; ".join(parts)


def markdown(res: dict[str, Any]) -> str:
    sc = res["score"]
    lines = [
        f"# OPE suite ({res['date']}, {res['machine']})",
        "",
        f"{len(res['settings'])} logs-only settings ({settings_text(res)}), {sc['n_candidates']} candidate policies, "
        f"truth by dynamic programming; {res['seconds']:.0f} s in all.",
        "",
        "| estimate | mean abs error | rank corr. | regret@1 (share of return range) | interval covers truth | n |",
        "|---|---|---|---|---|---|",
    ]

    def f(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    for k, v in sc["estimators"].items():
        err = f(v["mean_abs_error"] * 100, ".2f") + " pp" if k.startswith("cost") and v["mean_abs_error"] is not None \
            else f(v["mean_abs_error"], ".2f")  # fmt: skip
        lines.append(
            f"| {k} | {err} | {f(v['rank_correlation'], '.2f')} | {f(v['regret_at_1'], '.1%')} | "
            f"{v['coverage']:.0%} | {v['n']} |"
        )
    lines += ["", f"Gate (hazard limit {res['limit']:.0%}): true class against decision", "",
              "| true class | PASS | CAUTION | FAIL |", "|---|---|---|---|"]  # fmt: skip
    for cls, row in sc["confusion"].items():
        lines.append(f"| {cls} | {row['PASS']} | {row['CAUTION']} | {row['FAIL']} |")
    lines += [
        "",
        f"**False PASS: {len(sc['false_pass'])}**"
        + (": " + "; ".join(sc["false_pass"]) if sc["false_pass"] else "")
        + f". Safe and better than BC that PASS: {sc['pass_rate_safe_better']:.0%}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1], help="SafeGrid data seeds")
    parser.add_argument("--layouts", nargs="+", default=list(LAYOUTS))
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES))
    parser.add_argument("--frozenlake-seeds", type=int, nargs="*", default=[0, 1],
                        help="FrozenLake settings (none: SafeGrid only)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    t0 = time.perf_counter()
    settings = []
    combos: list[tuple[str, str, int, bool]] = list(
        itertools.product(args.layouts, args.regimes, args.seeds, (True, False))
    )
    combos += [("FrozenLake", "", seed, props) for seed in args.frozenlake_seeds for props in (True, False)]
    for i, (layout, regime, seed, props) in enumerate(combos):
        with tempfile.TemporaryDirectory() as tmp:
            if layout == "FrozenLake":
                s = run_frozenlake(seed, props, Path(tmp))
            else:
                s = run_setting(layout, regime, seed, props, Path(tmp))
        settings.append(s)
        verdicts = ", ".join(f"{n} {c['gate']['decision']}" for n, c in s["candidates"].items())
        print(f"[{i + 1}/{len(combos)}] {layout}/{regime}/{seed}/{s['propensities']} {s['seconds']:.0f} s: {verdicts}",
              flush=True)  # fmt: skip
    limit = RunConfig().gate.hazard_limit
    res = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
        "seeds": args.seeds,
        "layouts": args.layouts,
        "regimes": args.regimes,
        "frozenlake_seeds": args.frozenlake_seeds,
        "limit": limit,
        "seconds": time.perf_counter() - t0,
        "settings": settings,
    }
    res["score"] = score(settings, limit)
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.seeds == [0, 1] and args.frozenlake_seeds in ([0, 1], []) else "-dev"
    (args.out / f"ope_suite{suffix}.json").write_text(json.dumps(res, indent=1, default=float))
    text = markdown(res)
    (args.out / f"ope_suite{suffix}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
