"""GAIL in a run folder (``guardrl gail``): imitate demonstrations in SafeGrid's simulator, no reward read.

The demonstrations are the run's own logs (the policy then imitates the logger) or another dataset folder, e.g.
an expert's (``collect.regime: expert``). The policy is exported like the run's learners (TorchScript, ONNX,
action scores, model card) and scored by exact dynamic programming, beside the demonstrations' mean logged
return (the demonstrator's return as far as its episodes show it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from guardrl._io import atomic_write_json
from guardrl.config import to_dict
from guardrl.data.dataset import Dataset, load_dataset
from guardrl.envs import simulate
from guardrl.errors import RunError
from guardrl.run.context import RunContext
from guardrl.run.dagger import ExactScorer
from guardrl.train.config import LEARNERS, learner_kind


def load_demonstrations(ctx: RunContext, path: Path | None) -> Dataset:
    """The run's dataset, or the dataset folder at ``path`` checked against the run's observations and actions."""
    if path is None:
        return ctx.dataset
    ds = load_dataset(path)
    run = ctx.dataset
    if ds.obs_dim != run.obs_dim or ds.n_actions != run.n_actions:
        raise RunError(f"{path}: demonstrations have {ds.obs_dim}-wide observations and {ds.n_actions} actions; "
                       f"this run has {run.obs_dim} and {run.n_actions}")  # fmt: skip
    if len(ds) == 0:
        raise RunError(f"{path}: no transitions to imitate")
    return ds


def gail_in_run(
    ctx: RunContext, cfg: Any, demos: Path | None = None, name: str = "gail", show_progress: bool = False
) -> dict[str, Any]:
    """Train GAIL (``cfg``: a :class:`~guardrl.train.gail.GAILConfig`) on SafeGrid from the demonstrations and
    export it into the run as ``name``; returns the record written to ``gail/<name>.json``."""
    from guardrl.run.stages import model_card
    from guardrl.train import export_policy, export_scores
    from guardrl.train.gail import Demonstrations, GridCells, train_gail

    if not ctx.is_safegrid:
        raise RunError(f"guardrl gail needs SafeGrid's simulator to roll the policy out; this run uses {ctx.env_name}")
    if learner_kind(name) in LEARNERS:
        raise RunError(f"--name {name!r} is a learner's name; choose another name for the GAIL policy")
    ds = load_demonstrations(ctx, demos)
    tables = ctx.tables
    scorer = ExactScorer(tables)
    policy = train_gail(
        lambda pol, n, rng: simulate(tables, pol, n, rng),
        GridCells(tables.layout.size),
        Demonstrations.from_arrays(ds.observations, ds.actions, ds.next_observations, ds.terminations),
        ds.n_actions,
        cfg,
        show_progress=show_progress,
    )
    exact = scorer(policy.predict)
    _, episode = np.unique(ds.episode_ids, return_inverse=True)
    logged = float(np.bincount(episode, weights=ds.rewards).mean())
    record: dict[str, Any] = {
        "demonstrations": str(demos) if demos is not None else "the run's dataset",
        "demonstration_episodes": int(episode.max() + 1),
        "demonstration_mean_return": logged,
        "return_ratio": exact["expected_return"] / logged if logged > 0 else None,
        "demonstration_sha256": ds.content_hash(),
        "config": to_dict(cfg),
        "exact": exact,
        "history": policy.history,
    }
    folder = ctx.folder
    files = export_policy(policy, folder.policies, name)
    files["scores"], kind = export_scores(policy, folder.policies, name)
    card = model_card("bc", ctx, files)
    card.update(policy=name, learner_config=to_dict(cfg), scores={"file": files["scores"].name, "kind": kind},
                imitation={"method": "gail", "demonstrations": record["demonstrations"],
                           "demonstration_sha256": ds.content_hash(), "exact": exact})  # fmt: skip
    # dataset_sha256 stays the run's: the server's guard judges support on the run's logs and checks this hash
    atomic_write_json(folder.card(name), card)
    atomic_write_json(folder.gail(name), record)
    return record
