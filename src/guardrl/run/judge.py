"""``guardrl judge``: policies a user brings, judged on logs with a run's evidence, training nothing.

audit -> world model -> evaluation (how far each policy strays from the logs; rollouts when the config names a
simulator) -> off-policy estimates -> gate -> recommendation -> report, into one folder with a run's layout and
schemas. The folder is built in a temporary sibling and moved into place at the end: a bad policy or a failed
stage leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from guardrl._io import atomic_write_dir, atomic_write_json
from guardrl._parallel import BackgroundWorker
from guardrl.config import RunConfig, load_config, save_config
from guardrl.data.dataset import load_dataset
from guardrl.errors import RunError
from guardrl.evaluate.bandit import is_one_step
from guardrl.evaluate.policy_files import JudgedPolicy, load_policy
from guardrl.run.context import RunContext, discrete_only
from guardrl.run.folder import RunFolder


def judge_config(dataset: Path, config: Path | None, name: str) -> RunConfig:
    """The run config of a judgement: the file ``config`` (without one: logs only, ``env: none``, with the
    built-in defaults) reading ``dataset``. Its ``env`` decides whether a simulator rolls the policies out."""
    overrides: dict[str, Any] = {"name": name, "collect": {"dataset": str(dataset), "behaviour": None}}
    if config is None:
        overrides["env"] = "none"
    cfg = load_config(config, overrides)
    if cfg.env.continuous or cfg.env.sepsis:
        raise RunError(f"{config}: guardrl judge takes env: none, SafeGrid or a discrete gymnasium env")
    return cfg


def load_policies(specs: list[str], obs_dim: int, allow_code: bool) -> dict[str, JudgedPolicy]:
    """Each spec loaded, named by its file's stem (``-2``, ``-3``... when two share one)."""
    if not specs:
        raise RunError("guardrl judge: give at least one --policy")
    out: dict[str, JudgedPolicy] = {}
    for spec in specs:
        policy = load_policy(spec, obs_dim, allow_code)
        name, k = policy.name, 2
        while name in out:
            name, k = f"{policy.name}-{k}", k + 1
        policy.name = name
        out[name] = policy
    return out


def judge(
    dataset: Path,
    specs: list[str],
    out: Path,
    config: Path | None = None,
    allow_code: bool = False,
    overwrite: bool = False,
    show_progress: bool = False,
) -> Path:
    """Judge the policies in ``specs`` on the logs in ``dataset`` (with the run config file ``config``, or logs only
    on the built-in defaults); write the judgement into ``out``."""
    from guardrl.run.evaluation import stage_evaluate
    from guardrl.run.judging import stage_gate, stage_ope, stage_recommend
    from guardrl.run.stages import stage_audit, stage_collect, stage_model, stage_report

    out = Path(out)
    if out.exists() and not overwrite:
        raise RunError(f"{out} already exists; pass --overwrite or choose another --out")
    ds = discrete_only(load_dataset(Path(dataset)), dataset)
    policies = load_policies(specs, ds.obs_dim, allow_code)
    for policy in policies.values():  # every bad output is found before anything is written
        policy.check(ds.observations, ds.n_actions)
        policy.check(ds.next_observations, ds.n_actions)
    cfg = judge_config(Path(dataset), config, out.name)

    def fill(tmp: Path) -> None:
        with BackgroundWorker(preload="guardrl.report.plots") as plotter:
            ctx = RunContext(cfg, RunFolder(tmp), final_root=out, plotter=plotter)
            save_config(cfg, ctx.folder.config)
            stage_collect(ctx)
            stage_audit(ctx)
            # the model estimator, or the tabular FQE's fill of unlogged pairs; one-step logs need neither
            if cfg.needs_world_model and not is_one_step(ds.episode_starts, len(ds)):
                stage_model(ctx, show_progress=show_progress)
            atomic_write_json(ctx.folder.portfolio, _portfolio(policies))
            ctx.memo("learned", lambda: dict(policies))
            stage_evaluate(ctx, show_progress=show_progress)
            stage_ope(ctx, show_progress=show_progress)
            stage_gate(ctx)
            stage_recommend(ctx)
            plotter.join()
            stage_report(ctx)

    atomic_write_dir(out, fill, overwrite=overwrite)
    return out


def _portfolio(policies: dict[str, JudgedPolicy]) -> dict[str, Any]:
    return {
        "learners": "judged",
        "judged": True,
        "candidates": list(policies),
        "sources": {n: {"file": p.source, "format": p.kind, "output": p.output} for n, p in policies.items()},
        "skipped": {},
    }
