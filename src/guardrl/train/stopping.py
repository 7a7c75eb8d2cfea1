"""Training length that follows the data: behaviour cloning until its loss on held-out episodes stops improving.

A fixed step count fits some logs and not others: 1,000 steps of 256 transitions see 15% of 1.7 M logged
transitions once, and a large dataset then leaves BC unfinished. Holding out a share of the episodes and checking
the negative log-likelihood of their logged actions tells when more steps stop paying.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.nn import functional as F

from guardrl.train.config import BCConfig

if TYPE_CHECKING:
    from guardrl.train.trainer import TransitionArrays

MIN_EPISODES = 20
"""Fewer logged episodes than this: hold out transitions instead (a tenth of 10 episodes is one episode)."""
MAX_HELD_OUT = 20_000
"""Held-out transitions scored per check, drawn once (the loss of a larger sample moves by well under min_delta)."""


def holdout_split(arrays: TransitionArrays, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and the held-out transitions: whole episodes held out where the logs have at
    least ``MIN_EPISODES``, else single transitions (always at least one on each side)."""
    n = arrays.observations.shape[0]
    if n < 2:
        raise ValueError("bc.stop: held_out needs at least 2 logged transitions; use bc.stop: steps")
    episodes = arrays.episodes
    if episodes is not None and int(episodes.max()) + 1 >= MIN_EPISODES:
        n_episodes = int(episodes.max()) + 1
        chosen = rng.choice(n_episodes, size=max(1, round(fraction * n_episodes)), replace=False)
        held = np.isin(episodes, chosen)
    else:
        held = np.zeros(n, dtype=bool)
        held[rng.choice(n, size=min(n - 1, max(1, round(fraction * n))), replace=False)] = True
    return np.flatnonzero(~held), np.flatnonzero(held)


def held_out_nll(algo: Any, observations: torch.Tensor, actions: torch.Tensor) -> float:
    """Mean negative log-likelihood of the logged ``actions`` under a d3rlpy discrete BC policy."""
    imitator = algo.impl.modules.imitator
    was_training = imitator.training
    imitator.eval()
    with torch.no_grad():
        logits = imitator(algo.config.observation_scaler.transform(observations)).logits
        loss = float(F.cross_entropy(logits, actions))
    imitator.train(was_training)
    return loss


def train_until_stale(
    algo: Any,
    arrays: TransitionArrays,
    cfg: BCConfig,
    rng: np.random.Generator,
    log_every: int,
    after_step: Callable[[int], None] | None = None,
) -> tuple[dict[str, list[float]], int, str]:
    """Train ``algo`` (d3rlpy discrete BC) on all but the held-out episodes until ``cfg.patience`` held-out checks
    in a row gain less than ``cfg.min_delta`` (after at least ``cfg.n_steps``, at most ``cfg.max_steps`` steps),
    then restore the weights of the best check. Returns the learning curve (with ``held_out_nll`` beside the
    training loss), the steps taken and why training stopped."""
    from guardrl.train.trainer import run_updates

    train_idx, held_idx = holdout_split(arrays, cfg.holdout, rng)
    if held_idx.size > MAX_HELD_OUT:
        held_idx = np.sort(rng.choice(held_idx, size=MAX_HELD_OUT, replace=False))
    train = arrays.take(train_idx)
    device = next(algo.impl.modules.imitator.parameters()).device
    held_obs = torch.as_tensor(arrays.observations[held_idx], device=device)
    held_act = torch.as_tensor(arrays.actions[held_idx, 0].astype(np.int64), device=device)
    curve: dict[str, list[float]] = {}
    best, best_step, best_state, stale, step = float("inf"), 0, None, 0, 0
    while step < cfg.max_steps:
        n = min(cfg.eval_every, cfg.max_steps - step)
        part = run_updates(algo, train, n, cfg.batch_size, rng, log_every, _shifted(after_step, step))
        offset = step
        for key, values in part.items():
            curve.setdefault(key, []).extend([v + offset for v in values] if key == "step" else values)
        step += n
        loss = held_out_nll(algo, held_obs, held_act)
        curve.setdefault("held_out_step", []).append(step)
        curve.setdefault("held_out_nll", []).append(loss)
        if loss < best - cfg.min_delta:
            best, best_step, stale = loss, step, 0
            best_state = copy.deepcopy(algo.impl.modules.imitator.state_dict())
        else:
            stale += 1
        if step >= cfg.n_steps and stale >= cfg.patience:
            break
    if best_state is not None:
        algo.impl.modules.imitator.load_state_dict(best_state)
    why = (
        f"held-out loss stale for {cfg.patience} checks" if stale >= cfg.patience and step < cfg.max_steps
        else f"reached bc.max_steps {cfg.max_steps}"
    )  # fmt: skip
    return curve, step, f"{why}; kept the weights of step {best_step} (held-out NLL {best:.4f})"


def _shifted(after_step: Callable[[int], None] | None, offset: int) -> Callable[[int], None] | None:
    """``after_step`` told the step counted from the start of training, not of this stretch."""
    return None if after_step is None else (lambda s: after_step(offset + s))
