"""OPE suite: logs-only runs checked against a simulator they never see.

For every setting (SafeGrid layout x data regime x data seed x whether the logs carry propensities), the
behaviour logs are collected on SafeGrid, saved, and handed to a ``guardrl`` run with ``env: none``. That run
audits them, fits its world model, trains its learners, estimates every candidate's return and hazard from
the logs and gates each one, with no environment anywhere. The candidates are the run's learners and
reference policies of known quality (the exact optimum, the optimum with 10% and 30% noise, the logging
controller without noise, a hazard-seeking policy, uniform random), all judged by the same estimators and
gate rules (``guardrl.run.judging.assess_candidates``). FrozenLake 4x4 settings (``configs/frozenlake.yaml``'s
controller logs) add the optimum of value iteration, the same with noise, and uniform random. Only then is the
simulator asked: exact values by dynamic programming give every candidate's true return and hazard
probability.

Printed and written (``bench/results/ope_suite.{json,md}``):

* per estimator and signal: mean absolute error, rank correlation and regret@1 (per setting, then averaged),
  and how often the interval covers the truth;
* the gate's confusion matrix: true class (unsafe: true hazard above the limit; safe and better than the run's
  BC; safe, not better) against PASS / CAUTION / FAIL, with the false PASS count.

    .venv/bin/python bench/ope_suite.py                  # 22 settings (about 24 min on 2 cores)
    .venv/bin/python bench/ope_suite.py --seeds 100 101 --toy-seeds 100 101 --minigrid-seeds 100 101  # development

Settings use data seeds 0-1 by default (held out: nothing was tuned on them); tune on 100+ (written as
``ope_suite-dev*``, with any ``--ope`` settings in the name); other held-out seeds are written as
``ope_suite-seeds-*``.
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
import yaml
from numpy.typing import NDArray

from guardrl._io import atomic_write_text
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
from guardrl.envs.layouts import Layout, named_layout
from guardrl.evaluate.validation import rank_correlation
from guardrl.run import RunContext, RunFolder, evaluation, judging, stages
from guardrl.run.references import table_target

LAYOUTS = ("default", "drawn")
REGIMES = ("safe", "noisy", "mixed")
DEV_SEEDS_FROM = 100
"""Data seeds from here on are for development (tuning); those below are held out."""
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


def logs_only_run(
    ds: Any,
    propensities: bool,
    work: Path,
    step_limit: int,
    learners: tuple[str, ...] = LEARNERS,
    ope: dict[str, Any] | None = None,
) -> tuple[RunContext, dict[str, Any], dict[str, Any]]:
    """The logs handed to a run with ``env: none``, stages up to the gate; returns its context, OPE and gate.

    The run is told the episode step limit (``ope.horizon``), as an operator knows the deployment's: logs whose
    episodes all end before it cannot show it. ``ope``: further settings of the run's ``ope`` section."""
    if not propensities:
        ds = replace(ds, propensities=np.full(len(ds), np.nan))
    data_dir = ds.save(work / "data")
    cfg: RunConfig = from_dict(
        RunConfig,
        {"name": "suite", "env": "none", "collect": {"dataset": str(data_dir)}, "train": {"learners": list(learners)},
         "ope": {"horizon": step_limit, **(ope or {})}, "report": False},
    )  # fmt: skip
    ctx = RunContext(cfg, RunFolder(work / "run"))
    ctx.folder.root.mkdir(parents=True)
    save_config(cfg, ctx.folder.config)
    stages.stage_collect(ctx)
    stages.stage_audit(ctx)
    stages.stage_model(ctx)
    stages.stage_train(ctx, show_progress=False)
    evaluation.stage_evaluate(ctx)
    return ctx, judging.stage_ope(ctx), judging.stage_gate(ctx)


def run_setting(
    layout: str | Layout,
    regime: str,
    seed: int,
    propensities: bool,
    work: Path,
    ope: dict[str, Any] | None = None,
    label: str | None = None,
    more: Any = None,
) -> dict[str, Any]:
    """One logs-only run on SafeGrid logs and its candidates, with every estimate, verdict and exact truth
    (``layout``: a shipped layout's name, or a Layout with its ``label``; ``more(tables)``: further reference
    candidates, as ``references`` gives them)."""
    t0 = time.perf_counter()
    tables = build_tables(named_layout(layout) if isinstance(layout, str) else layout)
    ctx, ope, gate = logs_only_run(
        collect(tables, regime, 500, seed), propensities, work, tables.layout.max_steps, ope=ope
    )
    refs = {**references(tables), **(more(tables) if more is not None else {})}
    extra = judging.assess_candidates(
        ctx, {name: table_target(policy, deterministic) for name, (policy, deterministic) in refs.items()}
    )
    learned = evaluation.learned_policies(ctx)
    candidates: dict[str, Any] = {}
    for name in LEARNERS:
        truth = exact_of_greedy(tables, learned[name].greedy)
        candidates[name] = {"ope": ope["policies"][name], "gate": gate["decisions"][name], "truth": truth}
    for name, (policy, _) in refs.items():
        candidates[name] = {**extra[name], "truth": evaluate_exact(policy).to_dict()}
    optimal_return = candidates["optimal"]["truth"]["expected_return"]
    random_return = candidates["random"]["truth"]["expected_return"]
    return {
        "layout": label or layout, "regime": regime, "seed": seed,
        "propensities": "logged" if propensities else "dropped",
        "audit": gate["decisions"]["bc"]["reasons"][0]["message"], "return_range": optimal_return - random_return,
        "seconds": time.perf_counter() - t0, "candidates": candidates,
    }  # fmt: skip


# ------------------------------------------------------------------ toy-text envs: FrozenLake, CliffWalking


def toy_text_exact(env: Any, probs: NDArray[np.float64], hazard: NDArray[np.float64], steps: int) -> dict[str, float]:
    """Exact expected return and expected hazard events of a policy given as action probabilities per state, by
    dynamic programming over the env's transition table for ``steps`` steps; ``hazard`` (S, A) is the expected
    hazard events of one step (for FrozenLake the chance of a hole, so the total is a probability)."""
    tables = ToyTextTables.of(env)
    reward, cont = tables.reward, tables.cont
    n_states = reward.shape[0]
    v_ret, v_haz = np.zeros(n_states), np.zeros(n_states)
    for _ in range(steps):
        v_ret = (probs * (reward + cont @ v_ret)).sum(axis=1)
        v_haz = (probs * (hazard + cont @ v_haz)).sum(axis=1)
    start = np.asarray(env.unwrapped.initial_state_distrib, dtype=np.float64)
    return {"expected_return": float(start @ v_ret), "hazard_prob": float(start @ v_haz)}


def cliff_events(env: Any) -> NDArray[np.float64]:
    """(S, A) expected cliff falls of one step (reward -100, the config's cost rule)."""
    table = env.unwrapped.P
    out = np.zeros((len(table), len(table[0])))
    for s, row in table.items():
        for a, outcomes in row.items():
            out[s, a] = sum(p for p, _, r, _ in outcomes if r <= -100)
    return out


TOY_TEXT = {
    # name: (config, how the setting is labelled, regime label, hazard table of one step)
    "FrozenLake": ("frozenlake.yaml", "FrozenLake-v1 4x4", "controller eps=0.3",
                   lambda env: ToyTextTables.of(env).ending_without_reward),
    "CliffWalking": ("cliffwalking.yaml", "CliffWalking-v0 4x12", "controller eps=0.2", cliff_events),
}  # fmt: skip


def run_toy_text(
    name: str, seed: int, propensities: bool, work: Path, ope: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Logs of a toy-text env's config controller (FrozenLake 4x4 slippery, CliffWalking), as a logs-only run;
    the truth from the env's own transition table. CliffWalking's cliff does not end an episode (the agent goes
    back to the start), so its "hazard" truth is the expected number of falls per episode, which is what the
    cost estimators estimate."""
    import gymnasium as gym

    from guardrl.config import load_config
    from guardrl.evaluate.target import TargetPolicy

    config, label, regime, hazard_of = TOY_TEXT[name]
    t0 = time.perf_counter()
    sim_cfg = load_config(Path(__file__).parent.parent / "configs" / config)
    sim_cfg = replace(sim_cfg, collect=replace(sim_cfg.collect, seed=seed))
    sim = RunContext(sim_cfg, RunFolder(work / "sim"))
    sim.folder.root.mkdir(parents=True)
    ds = stages.stage_collect(sim)
    env = gym.make(sim_cfg.env.gym_id, **sim_cfg.env.gym_kwargs)
    steps = sim_cfg.env.max_episode_steps or (env.spec.max_episode_steps if env.spec else None)
    assert steps is not None
    ctx, ope, gate = logs_only_run(ds, propensities, work, steps, ope=ope)
    hazard = hazard_of(env)
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

    extra = judging.assess_candidates(ctx, {name: target(name, probs) for name, probs in tables.items()})
    learned = evaluation.learned_policies(ctx)
    onehot = np.eye(n_states, dtype=np.float32)
    candidates: dict[str, Any] = {}
    for name in LEARNERS:
        probs = np.eye(n_actions)[np.asarray(learned[name].greedy(onehot))]
        candidates[name] = {"ope": ope["policies"][name], "gate": gate["decisions"][name],
                            "truth": toy_text_exact(env, probs, hazard, steps)}  # fmt: skip
    for name, probs in tables.items():
        candidates[name] = {**extra[name], "truth": toy_text_exact(env, probs, hazard, steps)}
    span = candidates["optimal"]["truth"]["expected_return"] - candidates["random"]["truth"]["expected_return"]
    return {
        "layout": label, "regime": regime, "seed": seed,
        "propensities": "logged" if propensities else "dropped", "return_range": span,
        "seconds": time.perf_counter() - t0, "candidates": candidates,
    }  # fmt: skip


# ------------------------------------------------------------------ MiniGrid lava


MINIGRID_TRUTH_EPISODES = 2000
MINIGRID_LEARNERS = ("bc", "spibb", "cql")
"""The world model of the egocentric views is Gaussian (too many distinct next views for classes), so MOReL,
which plans over discrete outcomes, gives way to CQL."""


def run_minigrid(seed: int, propensities: bool, work: Path, ope: dict[str, Any] | None = None) -> dict[str, Any]:
    """Logs of ``configs/minigrid-lavagap.yaml``'s controller (it plans on the full grid; the logs hold the 7x7x3
    egocentric view), as a logs-only run with BC, SPIBB and CQL. MiniGrid has no transition table over views, so
    the truth is Monte Carlo: ``MINIGRID_TRUTH_EPISODES`` simulated episodes per candidate (the standard error of a
    1% hazard rate is then 0.22 points). References: uniform random, and always-forward (into the lava or a wall)."""
    from guardrl.config import load_config
    from guardrl.envs.gym_env import GymSimulator
    from guardrl.evaluate.target import TargetPolicy

    t0 = time.perf_counter()
    sim_cfg = load_config(Path(__file__).parent.parent / "configs" / "minigrid-lavagap.yaml")
    sim_cfg = replace(sim_cfg, collect=replace(sim_cfg.collect, seed=seed))
    sim = RunContext(sim_cfg, RunFolder(work / "sim"))
    sim.folder.root.mkdir(parents=True)
    ds = stages.stage_collect(sim)
    assert sim_cfg.env.max_episode_steps is not None
    ctx, ope, gate = logs_only_run(ds, propensities, work, sim_cfg.env.max_episode_steps, MINIGRID_LEARNERS, ope)
    simulator = GymSimulator(sim_cfg.env.gym_spec())
    n_actions = simulator.n_actions
    forward = 2  # MiniGrid's "move forward"

    def uniform(obs: NDArray[np.float32]) -> NDArray[np.float64]:
        return np.full((len(obs), n_actions), 1.0 / n_actions)

    refs = {
        "random": TargetPolicy("random", lambda obs: np.zeros(len(obs), np.int64), uniform),
        "forward": TargetPolicy("forward", lambda obs: np.full(len(obs), forward, np.int64)),
    }
    extra = judging.assess_candidates(ctx, refs)
    learned = evaluation.learned_policies(ctx)

    def truth(act: Any, stream: int) -> dict[str, float]:
        rng = np.random.default_rng([seed, 7, stream])
        episodes = simulator.simulate(lambda obs, steps, r: act(obs, r), MINIGRID_TRUTH_EPISODES, rng)
        return {"expected_return": float(episodes.returns.mean()), "hazard_prob": float(episodes.hazard.mean()),
                "episodes": MINIGRID_TRUTH_EPISODES}  # fmt: skip

    candidates: dict[str, Any] = {}
    for i, name in enumerate(MINIGRID_LEARNERS):
        policy = learned[name]
        candidates[name] = {"ope": ope["policies"][name], "gate": gate["decisions"][name],
                            "truth": truth(lambda obs, r, p=policy: p.greedy(obs), i)}  # fmt: skip
    candidates["random"] = {**extra["random"],
                            "truth": truth(lambda obs, r: r.integers(0, n_actions, len(obs)), 10)}  # fmt: skip
    candidates["forward"] = {**extra["forward"], "truth": truth(lambda obs, r: np.full(len(obs), forward), 11)}
    span = max(c["truth"]["expected_return"] for c in candidates.values()) - min(
        c["truth"]["expected_return"] for c in candidates.values()
    )
    return {
        "layout": "MiniGrid-LavaGapS7-v0", "regime": "controller eps=0.3", "seed": seed,
        "propensities": "logged" if propensities else "dropped", "return_range": span,
        "seconds": time.perf_counter() - t0, "candidates": candidates,
    }  # fmt: skip


# ------------------------------------------------------------------ scoring


def truth_class(c: dict[str, Any], bc_return: float, limit: float) -> str:
    if c["truth"]["hazard_prob"] > limit:
        return CLASSES[0]
    return CLASSES[1] if c["truth"]["expected_return"] > bc_return else CLASSES[2]


def is_safegrid(setting: dict[str, Any]) -> bool:
    return setting["layout"] in LAYOUTS


def score(settings: list[dict[str, Any]], limit: float) -> dict[str, Any]:
    """Estimator tables (all settings, and SafeGrid's alone) and the gate's confusion matrix over all settings."""
    return {
        "estimators": estimator_table(settings),
        "estimators_safegrid": estimator_table([s for s in settings if is_safegrid(s)]),
        **gate_table(settings, limit),
    }


def estimator_table(settings: list[dict[str, Any]]) -> dict[str, Any]:
    """Per estimator and signal: mean absolute error, rank correlation, regret@1 and interval coverage."""
    estimators: dict[str, dict[str, list[float]]] = {}
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
    return table


def gate_table(settings: list[dict[str, Any]], limit: float) -> dict[str, Any]:
    """The gate's decisions against each candidate's true class."""
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
    by_candidate: dict[str, list[int]] = {}
    for s in settings:
        bc_return = s["candidates"]["bc"]["truth"]["expected_return"]
        for name, c in s["candidates"].items():
            if truth_class(c, bc_return, limit) == CLASSES[1]:
                row = by_candidate.setdefault(name, [0, 0])
                row[0] += c["gate"]["decision"] == "PASS"
                row[1] += 1
    return {
        "confusion": confusion,
        "safe_better_pass_by_candidate": by_candidate,
        "false_pass": false_pass,
        "pass_rate_safe_better": good["PASS"] / max(1, sum(good.values())),
        "n_candidates": sum(len(s["candidates"]) for s in settings),
    }


def settings_text(res: dict[str, Any]) -> str:
    parts = []
    if res["seeds"]:
        props = (
            "x propensities logged/dropped"
            if res.get("both_propensities")
            else "(propensities logged on even seeds, dropped on odd)"
        )
        parts.append(f"SafeGrid layouts {', '.join(res['layouts'])} x regimes {', '.join(res['regimes'])} x data seeds "
                     f"{', '.join(map(str, res['seeds']))} {props}")  # fmt: skip
    if res.get("toy_seeds") and res.get("toy_envs"):
        parts.append(f"{' and '.join(res['toy_envs'])} x data seeds {', '.join(map(str, res['toy_seeds']))} x "
                     "propensities logged/dropped")  # fmt: skip
    if res.get("minigrid_seeds"):
        parts.append(f"MiniGrid LavaGapS7 x data seeds {', '.join(map(str, res['minigrid_seeds']))} (truth by "
                     f"{MINIGRID_TRUTH_EPISODES} simulated episodes per candidate)")  # fmt: skip
    return "; ".join(parts)


TABLE_HEAD = "| estimate | mean abs error | rank corr. | regret@1 (share of return range) | interval covers truth | n |"


def markdown(res: dict[str, Any]) -> str:
    sc = res["score"]
    lines = [
        f"# OPE suite ({res['date']}, {res['machine']})",
        "",
        f"{len(res['settings'])} logs-only settings ({settings_text(res)}), {sc['n_candidates']} candidate policies, "
        f"truth by dynamic programming (MiniGrid: Monte Carlo); {res['seconds']:.0f} s in all."
        + (f" OPE settings changed: {', '.join(f'{k}={v}' for k, v in res['ope'].items())}." if res.get("ope") else ""),
    ]

    def f(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    for title, key in (("All settings", "estimators"), ("SafeGrid settings only", "estimators_safegrid")):
        if not sc.get(key):
            continue
        lines += ["", f"{title}:", "", TABLE_HEAD, "|---|---|---|---|---|---|"]
        for k, v in sc[key].items():
            mae = v["mean_abs_error"]
            err = f(mae * 100, ".2f") + " pp" if k.startswith("cost") and mae is not None else f(mae, ".2f")
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
        + f". Safe and better than BC that PASS: {sc['pass_rate_safe_better']:.0%} ("
        + ", ".join(f"{n} {p} of {t}" for n, (p, t) in sc["safe_better_pass_by_candidate"].items())
        + ").",
        "",
    ]
    return "\n".join(lines)


def result_suffix(seeds: list[int], ope: dict[str, Any] | None, parser: Any, args: Any) -> str:
    """``""`` for the default held-out run; ``-seeds-2-3`` for other held-out seeds (below 100) or a subset of the
    settings; ``-dev`` when any seed is a development one (100+) or ``--ope`` changed a setting, followed by those
    settings."""
    keys = ("seeds", "toy_seeds", "minigrid_seeds", "layouts", "regimes", "toy_envs", "both_propensities")
    defaults = all(getattr(args, k) == parser.get_default(k) for k in keys)
    if ope or any(seed >= DEV_SEEDS_FROM for seed in seeds):
        return "-dev" + "".join(f"-{k}{v}" for k, v in (ope or {}).items())
    return "" if defaults else "-seeds-" + "-".join(map(str, sorted(set(seeds))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1], help="SafeGrid data seeds")
    parser.add_argument("--layouts", nargs="+", default=list(LAYOUTS))
    parser.add_argument("--regimes", nargs="+", default=list(REGIMES))
    parser.add_argument("--both-propensities", action="store_true",
                        help="run every SafeGrid setting with propensities logged and dropped (default: logged on "
                             "even data seeds, dropped on odd ones)")  # fmt: skip
    parser.add_argument("--toy-seeds", type=int, nargs="*", default=[0, 1],
                        help="data seeds of the toy-text settings (none: SafeGrid only)")  # fmt: skip
    parser.add_argument("--minigrid-seeds", type=int, nargs="*", default=[0, 1],
                        help="MiniGrid LavaGap data seeds (propensities logged on even, dropped on odd)")  # fmt: skip
    parser.add_argument("--toy-envs", nargs="*", default=list(TOY_TEXT), choices=list(TOY_TEXT))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--ope", nargs="*", default=[], metavar="KEY=VALUE",
                        help="ope settings of every run, e.g. model_logged_prior=1 (values read as YAML); for "
                             "tuning on development seeds")  # fmt: skip
    args = parser.parse_args()
    ope = {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.ope)}
    t0 = time.perf_counter()
    settings = []
    if args.both_propensities:
        combos: list[tuple[str, str, int, bool]] = list(
            itertools.product(args.layouts, args.regimes, args.seeds, (True, False))
        )
    else:  # logged on even seeds, dropped on odd ones: both kinds of logs, half the SafeGrid runs
        combos = [
            (lay, reg, seed, seed % 2 == 0)
            for lay, reg, seed in itertools.product(args.layouts, args.regimes, args.seeds)
        ]
    combos += [(env, "", seed, props) for env in args.toy_envs for seed in args.toy_seeds for props in (True, False)]
    combos += [("MiniGrid", "", seed, seed % 2 == 0) for seed in args.minigrid_seeds]
    for i, (layout, regime, seed, props) in enumerate(combos):
        with tempfile.TemporaryDirectory() as tmp:
            if layout in TOY_TEXT:
                s = run_toy_text(layout, seed, props, Path(tmp), ope)
            elif layout == "MiniGrid":
                s = run_minigrid(seed, props, Path(tmp), ope)
            else:
                s = run_setting(layout, regime, seed, props, Path(tmp), ope)
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
        "both_propensities": args.both_propensities,
        "toy_envs": args.toy_envs,
        "toy_seeds": args.toy_seeds,
        "minigrid_seeds": args.minigrid_seeds,
        "ope": ope,
        "limit": limit,
        "seconds": time.perf_counter() - t0,
        "settings": settings,
    }
    res["score"] = score(settings, limit)
    stem = "ope_suite" + result_suffix(args.seeds + args.toy_seeds + args.minigrid_seeds, ope, parser, args)
    write_results(args.out, stem, res, markdown(res))


def write_results(out: Path, stem: str, res: dict[str, Any], text: str) -> None:
    """``<out>/<stem>.json`` (every setting) and ``.md`` (``text``), each written atomically; prints ``text``."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / f"{stem}.json", json.dumps(res, indent=1, default=float))
    atomic_write_text(out / f"{stem}.md", text)
    print(text)


if __name__ == "__main__":
    main()
