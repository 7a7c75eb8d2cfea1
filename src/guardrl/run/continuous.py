"""A run with continuous actions on SafeNav-v0 or a MuJoCo task: collect -> audit -> train -> evaluate -> OPE ->
gate -> report.

The same run folder and the same gate as a discrete run (:mod:`guardrl.run.stages`), with the continuous
pieces in place of the discrete ones: SafeNav's logging regimes (:func:`guardrl.data.collect.collect_nav`) or
D4RL's levels made on a MuJoCo task (:func:`guardrl.data.mujoco.collect_mujoco`), or imported logs with the
env's observations and action box, :func:`~guardrl.data.audit.audit_continuous`, the
continuous learners (:mod:`guardrl.train.continuous`, exported as TorchScript and ONNX), rollouts of the
exported policies in the vectorized simulator with intervals, support as distance to the logged (observation,
action) pairs, and the continuous off-policy estimates (:mod:`guardrl.evaluate.continuous_ope`), which are
reported beside the rollouts but, as in every run with a simulator, do not decide.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from guardrl._io import atomic_write_json
from guardrl.data import Dataset
from guardrl.data.audit import audit_continuous
from guardrl.data.continuous_support import ContinuousSupport
from guardrl.envs.mujoco import D4RL_REFERENCE, TASKS, action_box, simulate_mujoco
from guardrl.envs.mujoco import OBS_DIMS as MUJOCO_OBS_DIMS
from guardrl.envs.safenav import ACTION_DIM, NavLayout, nav_reference, simulate_nav
from guardrl.errors import RunError
from guardrl.evaluate import MismatchThresholds, normalized_score
from guardrl.evaluate.gate import Evidence, OPEEvidence, gate
from guardrl.evaluate.metrics import Estimate, bootstrap, wilson_interval
from guardrl.run.context import RunContext

if TYPE_CHECKING:
    from guardrl.train.export import TorchScriptActor

IS_SMOOTHING = 0.2
"""The std of the squashed Gaussian that smooths a deterministic policy for importance sampling."""
BOX = ((-1.0,) * ACTION_DIM, (1.0,) * ACTION_DIM)


def fill_continuous(ctx: RunContext, timed: Callable[..., Any], show_progress: bool) -> dict[str, Any]:
    """Every stage of a continuous run into ``ctx.folder``; ``timed(name, stage, **kwargs)`` runs and times a stage
    (called with the context). Returns the evaluation metrics."""
    ds = timed("collect", collect_stage)
    support = ContinuousSupport(ds)  # the audit's threshold and the evaluation's support checks
    timed("audit", lambda c: audit_stage(c, ds, support))
    actors = timed("train", lambda c: train_stage(c, ds, show_progress))
    metrics = timed("evaluate", lambda c: evaluate_stage(c, ds, actors, support))
    timed("ope", lambda c: ope_stage(c, ds, actors, metrics))
    timed("gate", lambda c: gate_stage(c, metrics))
    return metrics


def collect_stage(ctx: RunContext) -> Dataset:
    """Log ``collect.n_episodes`` of SafeNav's ``collect.regime`` (or read ``collect.dataset``) into ``dataset/``."""
    from guardrl.data.collect import collect_nav
    from guardrl.data.dataset import load_dataset

    c, folder, task = ctx.cfg.collect, ctx.folder, ctx.cfg.env.mujoco
    obs_dim, box = (2, BOX) if task is None else (MUJOCO_OBS_DIMS[task], action_box(task))
    if c.dataset is not None:
        ds = load_dataset(Path(c.dataset))
        if ds.action_bounds != box or ds.obs_dim != obs_dim:
            raise RunError(
                f"{c.dataset}: a {_world(ctx)} run needs {obs_dim} observation features and actions in "
                f"[-1, 1]^{len(box[0])}, got {ds.obs_dim} features and actions {ds.action_bounds or 'discrete'}"
            )
    elif task is not None:
        from guardrl.data.mujoco import collect_mujoco

        ds = collect_mujoco(task, c.regime, c.n_steps, c.seed)
    else:
        ds = collect_nav(NavLayout(), c.regime, c.n_episodes, c.seed)
    ds.save(folder.dataset)
    ctx.plot("reward_histogram", ds.rewards, ds.episode_returns(), folder.plot("rewards"))
    return ds


def audit_stage(ctx: RunContext, ds: Dataset, support: ContinuousSupport) -> dict[str, Any]:
    result = audit_continuous(ds, ctx.cfg.audit, support)
    atomic_write_json(ctx.folder.audit, result)
    return result


def train_stage(ctx: RunContext, ds: Dataset, show_progress: bool) -> dict[str, TorchScriptActor]:
    """Train ``train.learners`` with ``train.continuous``; export each (TorchScript, ONNX) with a model card, and
    return the exported policies, which are what the later stages judge."""
    import guardrl
    from guardrl.train.continuous import ContinuousLearnerConfig, train_continuous
    from guardrl.train.export import TorchScriptActor, export_policy

    cfg, folder = ctx.cfg, ctx.folder
    shared = cfg.train.continuous
    seeds = np.random.SeedSequence(cfg.train.seed).generate_state(len(cfg.train.chosen))
    training: dict[str, Any] = {}
    actors: dict[str, TorchScriptActor] = {}
    ds_hash = ds.content_hash()
    for name, seed in zip(cfg.train.chosen, seeds, strict=True):
        # a SafeNav run config admits only the continuous learners' names (RunConfig checks them at load)
        kind: Any = name
        learner = ContinuousLearnerConfig(
            kind, n_steps=shared.n_steps, batch_size=shared.batch_size, hidden_units=shared.hidden_units,
            conservative_weight=shared.conservative_weight,
        )  # fmt: skip
        res = train_continuous(learner, ds, int(seed), device=cfg.train.device, threads=cfg.train.torch_threads,
                               log_every=cfg.train.log_every * 10, show_progress=show_progress)  # fmt: skip
        files = export_policy(res.algo, folder.policies, name)
        card = {
            "name": name, "guardrl_version": guardrl.__version__, "learner": learner.__dict__ | {"seed": int(seed)},
            "dataset": {"hash": ds_hash, "transitions": len(ds), "episodes": ds.n_episodes},
            "normalization": res.normalization, "action_bounds": [list(b) for b in ds.action_bounds or BOX],
            "files": {k: p.name for k, p in files.items()}, "dataset_sha256": ds_hash,
            "scores": {"file": files["torchscript"].name, "kind": "continuous"},
            "input": f"observation (N, {ds.obs_dim}) float32", "output": f"action (N, {ds.action_dim}) in the box",
        }  # fmt: skip
        atomic_write_json(folder.card(name), card)
        training[name] = {"seconds": res.seconds, "n_steps": res.n_steps, "steps_per_second": res.steps_per_second,
                          "curve": res.curve, "monitor": {}}  # fmt: skip
        actors[name] = TorchScriptActor(files["torchscript"], ds.action_bounds or BOX)
    atomic_write_json(folder.training, training)
    ctx.plot("learning_curves", {n: t["curve"] for n, t in training.items()}, {n: {} for n in training},
             folder.plot("learning_curves"))  # fmt: skip
    return actors


def evaluate_stage(
    ctx: RunContext, ds: Dataset, actors: dict[str, TorchScriptActor], support: ContinuousSupport
) -> dict[str, Any]:
    """Roll every exported policy out in the env: ``evaluate.n_episodes`` split over ``evaluate.seeds`` (the same
    draws for every policy), return and normalized score with bootstrap intervals, hazard and goal rates with
    Wilson intervals, and the share of the policy's own steps (and of its actions on the logged observations)
    outside the logged support. The score's ends: SafeNav's planner and uniform actions (``nav_reference``), a
    MuJoCo task's D4RL constants."""
    cfg, folder = ctx.cfg, ctx.folder
    e = cfg.evaluate
    layout = NavLayout()
    task = cfg.env.mujoco
    ref = nav_reference(layout) if task is None else _mujoco_reference(task)
    light = MismatchThresholds(cfg.gate.unsupported_ok, cfg.gate.unsupported_red)
    per_seed = np.diff(np.linspace(0, e.n_episodes, len(e.seeds) + 1).round().astype(int))
    policies: dict[str, Any] = {}
    for i, (name, actor) in enumerate(actors.items()):
        returns, hazard, goal, unsupported, steps = [], [], [], 0, 0
        for seed, count in zip(e.seeds, per_seed, strict=True):
            rng = np.random.default_rng(seed)
            if task is None:
                eps, _ = simulate_nav(layout, actor, int(count), rng)
            else:
                eps, _ = simulate_mujoco(task, _deterministic(actor), int(count), rng)
            returns.append(eps.returns)
            hazard.append(eps.hazard)
            goal.append(eps.success.any(axis=0))
            valid = eps.valid
            acted = eps.actions[valid].astype(np.float64)  # continuous episodes hold (T, N, k) float actions
            unsupported += int((~support.supported(eps.obs[valid], acted)).sum())
            steps += int(valid.sum())
        ret = np.concatenate(returns)
        haz = np.concatenate(hazard).astype(np.float64)
        reached = np.concatenate(goal).astype(np.float64)
        rng = np.random.default_rng([e.bootstrap_seed, i])
        r = bootstrap({"return": ret}, e.n_bootstrap, e.confidence, rng)["return"]
        logged_rate = float((~support.supported(ds.observations, actor.act(ds.observations))).mean())
        rollout_rate = unsupported / max(steps, 1)
        policies[name] = {
            "return": r.to_dict(),
            "normalized_score": Estimate(
                *(normalized_score(v, ref["random_return"], ref["optimal_return"]) for v in (r.mean, r.low, r.high))
            ).to_dict(),  # fmt: skip
            "hazard_rate": _wilson(haz, e.confidence),
            "goal_rate": _wilson(reached, e.confidence),
            "episodes": len(ret),
            "unsupported": {
                "logs_rate": logged_rate,
                "logs_flag": light.flag(logged_rate),
                "rollout_rate": rollout_rate,
                "rollout_flag": light.flag(rollout_rate),
            },  # fmt: skip
        }
    returns_logged = ds.episode_returns()
    metrics = {
        "environment": _world(ctx), "policies": policies, "reference": ref,
        "return_range": float(returns_logged.max() - returns_logged.min()),
        "unsupported_k": support.cfg.k, "support_threshold": support.threshold,
    }  # fmt: skip
    atomic_write_json(folder.metrics, metrics)
    return metrics


def _world(ctx: RunContext) -> str:
    task = ctx.cfg.env.mujoco
    return "SafeNav-v0" if task is None else TASKS[task]


def _mujoco_reference(task: str) -> dict[str, Any]:
    low, high = D4RL_REFERENCE[task]
    return {
        "random_return": low, "optimal_return": high,
        "source": "D4RL's published random and expert returns (v2 envs); these logs and rollouts are v5, so the "
        "normalized scores are indicative",
    }  # fmt: skip


def _deterministic(actor: TorchScriptActor) -> Any:
    """An exported actor as a MuJoCo rollout policy (its action, and a log-density nobody reads)."""

    def act(obs: NDArray[np.float64], rng: np.random.Generator) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
        return actor.act(np.asarray(obs, dtype=np.float32)), np.zeros(len(obs))

    return act


def _wilson(events: NDArray[np.float64], confidence: float) -> dict[str, float]:
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    low, high = wilson_interval(float(events.mean()), len(events), z)
    return {"mean": float(events.mean()), "low": float(low), "high": float(high)}


def ope_stage(
    ctx: RunContext, ds: Dataset, actors: dict[str, TorchScriptActor], metrics: dict[str, Any]
) -> dict[str, Any]:
    """The continuous estimators (``ope.estimators``) per policy, from the logs alone, beside the rollouts'
    return and hazard rate (a hazard ends a SafeNav episode, so it is the cost per episode) as the truth they
    are compared with; written to ``ope.json``."""
    from guardrl.evaluate.continuous_ope import continuous_fqe, continuous_is

    cfg = ctx.cfg.ope
    out: dict[str, Any] = {
        "continuous": True, "propensities": "logged behaviour densities", "policies": {},
        "note": f"Deterministic continuous targets are smoothed by a squashed Gaussian (std {IS_SMOOTHING}) around "
        "their action for importance sampling; FQE evaluates them as they are.",
    }  # fmt: skip
    for name, actor in actors.items():
        rolled = metrics["policies"][name]
        entry: dict[str, Any] = {
            "estimates": {"return": {}, "cost": {}}, "truth_source": "rollouts",
            "truth": {"return": rolled["return"], "cost": rolled["hazard_rate"]},
        }  # fmt: skip
        if {"pdis", "wis"} & set(cfg.chosen):
            est = continuous_is(ds, actor.act, cfg, std=IS_SMOOTHING, name=name)
            entry["smoothing"], entry["weights"] = est["smoothing"], est["weights"]
            for key, by in est["estimates"].items():
                entry["estimates"][key].update({k: v for k, v in by.items() if k in cfg.chosen})
        if "fqe" in cfg.chosen:
            est = continuous_fqe(ds, actor.act, cfg, name=name)
            entry["fqe"] = est["fqe"]
            for key, by in est["estimates"].items():
                entry["estimates"][key].update(by)
        out["policies"][name] = entry
    atomic_write_json(ctx.folder.ope, out)
    return out


def gate_stage(ctx: RunContext, metrics: dict[str, Any]) -> dict[str, Any]:
    """PASS / CAUTION / FAIL from the rollouts (hazard bound, return against BC, support) and the audit; the
    off-policy estimates' agreement is reported beside them."""
    audit_result = ctx.folder.read_optional(ctx.folder.audit)
    ope = (ctx.folder.read_optional(ctx.folder.ope) or {}).get("policies", {})
    candidates = [
        Evidence(
            name,
            hazard=Estimate.from_dict(p["hazard_rate"]),
            ret=Estimate.from_dict(p["return"]),
            ope=OPEEvidence.from_dict(ope[name]) if name in ope else None,
            unsupported_rate=p["unsupported"]["rollout_rate"],
            unsupported_source="rollouts",
            is_bc=name == "bc",
        )
        for name, p in metrics["policies"].items()
    ]
    verdict = audit_result["verdict"]["verdict"] if audit_result else None
    from guardrl.run.judging import behaviour_hazard, behaviour_return

    out = gate(candidates, verdict, float(metrics["return_range"]), ctx.cfg.gate, behaviour=behaviour_return(ctx),
               behaviour_hazard=behaviour_hazard(ctx))  # fmt: skip
    atomic_write_json(ctx.folder.gate, out)
    return out
