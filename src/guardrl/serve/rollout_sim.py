"""Replay a staged rollout on SafeGrid (shadow -> canary -> full) and count hazard events with and without the
guardrails, so the value of deferral and rollback is measured rather than claimed.

The production controller is the logged controller without its exploration noise (the tutorial's constrained
controller). Three arms see the same episodes, seeds and random draws (common random numbers):

* **guarded**: the policy behind the server's guard: it defers uncertain states to production, and a rollback
  monitor (checked after every ``chunk`` episodes, in episode order) hands everything back to production once
  policy-caused hazard events exceed the threshold.
* **unguarded**: the policy acts on every decision routed to it; no deferral, no rollback.
* **production**: the production controller alone, for reference.

Phases: ``shadow`` (production acts; the policy's divergence and would-defer rate are measured), ``canary``
(each episode goes to the policy with probability ``serve.canary_fraction``), ``full`` (every episode).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from guardrl._io import atomic_write_json, atomic_write_text
from guardrl.config import to_dict
from guardrl.data.behaviour import greedy_safe_probs
from guardrl.envs import TablePolicy, Tables, build_tables, simulate
from guardrl.errors import RunError
from guardrl.progress import make_progress
from guardrl.run.folder import RunFolder
from guardrl.serve.guard import Guard, RollbackMonitor, ServeConfig
from guardrl.serve.served_run import ServedRun

ARMS = ("guarded", "unguarded", "production")
PHASES = ("shadow", "canary", "full")


@dataclass(frozen=True)
class RolloutSimConfig:
    """Episodes per phase and the rollback check interval."""

    shadow_episodes: int = 500
    canary_episodes: int = 1000
    full_episodes: int = 2000
    chunk: int = 50
    """Episodes run side by side between two rollback checks."""
    seed: int = 7_000
    """Seed of the simulated episodes (keep it apart from the collection and evaluation seeds)."""


class _Staged:
    """The per-step policy of one arm: routes, defers, and records who decided each step."""

    def __init__(self, guard: Guard, production: TablePolicy, routed: NDArray[np.bool_], defer: bool):
        self.guard, self.production, self.routed, self.defer = guard, production, routed, defer
        self.by_policy: list[NDArray[np.bool_]] = []
        self.deferred: list[NDArray[np.bool_]] = []
        self.diverged: list[NDArray[np.bool_]] = []

    def __call__(self, obs: NDArray[np.float32], steps: NDArray[np.int64], rng: np.random.Generator) -> NDArray:
        fallback = self.production(obs, steps, rng)
        d = self.guard.decide(obs)
        deferred = self.routed & d.defer if self.defer else np.zeros_like(self.routed)
        use = self.routed & ~deferred
        self.by_policy.append(use)
        self.deferred.append(deferred)
        self.diverged.append(d.actions != fallback)
        return np.where(use, d.actions, fallback)


def _empty() -> dict[str, Any]:
    return {"episodes": 0, "policy_steps": 0, "deferrals": 0, "hazard_events": 0, "policy_hazard_events": 0,
            "goals": 0, "return_sum": 0.0, "steps": 0, "diverged_steps": 0, "rolled_back_at_episode": None}  # fmt: skip


def simulate_rollout(
    tables: Tables, guard: Guard, serve: ServeConfig, cfg: RolloutSimConfig, show_progress: bool = False
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per arm and phase: episodes, policy steps, deferrals, hazard events (all and policy-caused), rollback."""
    production = TablePolicy(tables, greedy_safe_probs(tables)[None], name="production")
    out: dict[str, dict[str, dict[str, Any]]] = {}
    total = cfg.shadow_episodes + cfg.canary_episodes + cfg.full_episodes
    with make_progress(show_progress) as progress:
        task = progress.add_task("rollout-sim", total=len(ARMS) * total)
        for arm in ARMS:
            out[arm] = _simulate_arm(arm, tables, guard, production, serve, cfg, lambda n: progress.advance(task, n))
    return out


def _simulate_arm(
    arm: str,
    tables: Tables,
    guard: Guard,
    production: TablePolicy,
    serve: ServeConfig,
    cfg: RolloutSimConfig,
    advance: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    monitor = RollbackMonitor(serve.rollback_per_1000, serve.rollback_min_decisions)
    episode = chunk_index = 0
    for phase, n_phase in zip(PHASES, (cfg.shadow_episodes, cfg.canary_episodes, cfg.full_episodes), strict=True):
        stats = _empty()
        done = 0
        while done < n_phase:
            n = min(cfg.chunk, n_phase - done)
            # one stream per chunk, the same in every arm: arms differ only in who decides
            rng = np.random.default_rng([cfg.seed, chunk_index])
            chunk_index += 1
            route_draw = rng.random(n)
            if arm == "production" or phase == "shadow":
                routed = np.zeros(n, dtype=bool)
            elif phase == "canary":
                routed = route_draw < serve.canary_fraction
            else:
                routed = np.ones(n, dtype=bool)
            if arm == "guarded" and monitor.rolled_back:
                routed[:] = False
            staged = _Staged(guard, production, routed, defer=arm == "guarded")
            eps = simulate(tables, staged, n, rng)
            valid = eps.valid
            by_policy = np.stack(staged.by_policy) & valid
            hazard_steps = (eps.costs > 0) & valid
            policy_hazards = int((hazard_steps & by_policy).sum())
            stats["episodes"] += n
            stats["policy_steps"] += int(by_policy.sum())
            stats["deferrals"] += int((np.stack(staged.deferred) & valid).sum())
            stats["hazard_events"] += int(hazard_steps.sum())
            stats["policy_hazard_events"] += policy_hazards
            stats["goals"] += int(eps.goal.sum())
            stats["return_sum"] += float(eps.returns.sum())
            stats["steps"] += int(valid.sum())
            stats["diverged_steps"] += int((np.stack(staged.diverged) & valid).sum())
            episode += n
            done += n
            advance(n)
            if arm == "guarded" and monitor.record(int(by_policy.sum()), policy_hazards):
                stats["rolled_back_at_episode"] = episode
        stats["mean_return"] = stats.pop("return_sum") / max(stats["episodes"], 1)
        stats["hazard_per_1000_episodes"] = 1000.0 * stats["hazard_events"] / max(stats["episodes"], 1)
        stats["divergence_rate"] = stats["diverged_steps"] / max(stats["steps"], 1)
        out[phase] = stats
    out["rollback"] = monitor.to_dict() if arm == "guarded" else None
    return out


def markdown(result: dict[str, Any], policy: str) -> str:
    """The comparison table: one row per phase, guarded vs unguarded vs production alone."""
    sim = result["arms"]
    lines = [
        f"Staged rollout of `{policy}` on SafeGrid (guarded = deferral + rollback; production = the logged "
        "controller without noise).",
        "",
        "| phase | episodes | guarded: policy steps / deferrals | guarded: hazards (policy-caused) | "
        "unguarded: hazards (policy-caused) | production alone: hazards | guarded rollback at episode |",
        "|---|---|---|---|---|---|---|",
    ]
    for phase in PHASES:
        g, u, p = sim["guarded"][phase], sim["unguarded"][phase], sim["production"][phase]
        rb = g["rolled_back_at_episode"] if g["rolled_back_at_episode"] is not None else "–"
        lines.append(
            f"| {phase} | {g['episodes']} | {g['policy_steps']} / {g['deferrals']} | "
            f"{g['hazard_events']} ({g['policy_hazard_events']}) | "
            f"{u['hazard_events']} ({u['policy_hazard_events']}) | {p['hazard_events']} | {rb} |"
        )
    tot = {arm: sum(sim[arm][ph]["hazard_events"] for ph in PHASES) for arm in ARMS}
    shadow = sim["guarded"]["shadow"]
    lines += [
        f"| **all** | {sum(sim['guarded'][ph]['episodes'] for ph in PHASES)} | | **{tot['guarded']}** | "
        f"**{tot['unguarded']}** | **{tot['production']}** | |",
        "",
        f"Shadow phase: the policy's action differs from production's on {shadow['divergence_rate']:.1%} of steps.",
    ]
    return "\n".join(lines) + "\n"


def run_rollout_sim(run_dir: Path, policy: str, cfg: RolloutSimConfig, show_progress: bool = False) -> dict[str, Any]:
    """Load the run's exported policy and its guard, simulate, and write ``rollout_sim/<policy>.json|.md``."""
    run_dir = Path(run_dir)
    run = ServedRun.open(run_dir)
    run_cfg = run.cfg
    if run_cfg.env.is_gym or run_cfg.env.continuous:
        used = "continuous actions" if run_cfg.env.continuous else "a gymnasium env"
        raise RunError(f"rollout-sim replays the rollout on SafeGrid; this run uses {used}")
    guard = run.load_policy(policy).guard
    assert isinstance(guard, Guard)
    arms = simulate_rollout(build_tables(run_cfg.env.build()), guard, run_cfg.serve, cfg, show_progress)
    result = {"policy": policy, "config": to_dict(cfg), "serve": to_dict(run_cfg.serve), "arms": arms}
    folder = RunFolder(run_dir)
    atomic_write_json(folder.rollout_sim(policy, ".json"), result)
    atomic_write_text(folder.rollout_sim(policy, ".md"), markdown(result, policy))
    return result
