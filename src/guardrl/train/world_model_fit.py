"""Fitting the world model (``guardrl.train.world_model``) to logged transitions, and its held-out accuracy.

Each member trains on its own bootstrap resample of the training episodes; a share of the episodes is held out
and the fitted model's accuracy on them goes into its ``meta["accuracy"]``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from guardrl._arrays import unique_1d, unique_rows
from guardrl._parallel import torch_threads
from guardrl.data import Dataset
from guardrl.train.config import WorldModelConfig
from guardrl.train.world_model import (
    FIT_THREADS,
    FORMAT_VERSION,
    WorldModel,
    WorldModelError,
    _networks,
    one_thread,
)


def _onehot_values(both: NDArray[np.float32], max_values: int = 32) -> list[list[float] | None]:
    """Per feature, its logged values when they are at most ``max_values`` integers, else None."""
    out: list[list[float] | None] = []
    for j in range(both.shape[1]):
        values = unique_1d(both[:, j])
        integer = bool(np.all(values == np.round(values)))
        out.append(values.tolist() if integer and 2 < len(values) <= max_values else None)
    return out


def _transition_kind(ds: Dataset, max_classes: int) -> tuple[str, NDArray[np.float32], NDArray[np.int64]]:
    """The next-observation target: its kind, its classes, and each transition's class (-1 for Gaussian)."""
    delta = (ds.next_observations - ds.observations).astype(np.float32)
    options = []
    for kind, values in (("delta", delta), ("next", ds.next_observations.astype(np.float32))):
        classes, label = unique_rows(values, return_inverse=True)
        if len(classes) <= max_classes:
            options.append((len(classes), kind, classes, label.reshape(-1)))
    if not options:
        return "gaussian", np.zeros((0, ds.obs_dim), dtype=np.float32), np.full(len(ds), -1, dtype=np.int64)
    _, kind, classes, label = min(options, key=lambda o: o[0])
    return kind, classes, label.astype(np.int64)


def fit_world_model(ds: Dataset, cfg: WorldModelConfig, show_progress: bool = False) -> WorldModel:
    """Fit the ensemble on ``ds`` (see the module docstring); its held-out accuracy is in ``meta["accuracy"]``."""
    from guardrl.progress import make_progress

    if ds.n_episodes < 2:
        raise WorldModelError(f"{ds.n_episodes} logged episode(s): a world model needs 2+ to hold one out")
    rng = np.random.default_rng(cfg.seed)
    kind, classes, label = _transition_kind(ds, cfg.max_classes)
    obs, nxt = ds.observations.astype(np.float32), ds.next_observations.astype(np.float32)
    obs_mean = obs.mean(axis=0)
    obs_std = np.where(obs.std(axis=0) > 1e-6, obs.std(axis=0), 1.0).astype(np.float32)
    r_mean, r_std = float(ds.rewards.mean()), float(ds.rewards.std()) or 1.0
    values, reward_label = unique_1d(ds.rewards, return_inverse=True)
    reward_classes: list[float] | None = values.tolist()
    if len(values) > cfg.max_classes:
        reward_classes, reward_label = None, np.full(len(ds), -1)
    starts = ds.episode_starts
    lengths = np.diff(np.append(starts, len(ds)))
    held = rng.permutation(ds.n_episodes)[: max(1, int(round(cfg.holdout * ds.n_episodes)))]
    is_held = np.isin(ds.episode_ids, ds.episode_ids[starts][held])
    train_idx, test_idx = np.flatnonzero(~is_held), np.flatnonzero(is_held)
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(cfg).items()},
        "kind": kind,
        "classes": classes.tolist(),
        "n_members": cfg.n_members,
        "obs_dim": ds.obs_dim,
        "n_actions": ds.n_actions,
        "horizon": int(lengths.max()),
        "obs_mean": obs_mean.tolist(),
        "obs_std": obs_std.tolist(),
        "obs_low": np.minimum(obs.min(axis=0), nxt.min(axis=0)).tolist(),
        "obs_high": np.maximum(obs.max(axis=0), nxt.max(axis=0)).tolist(),
        "onehot_values": _onehot_values(np.concatenate([obs, nxt])),
        "reward_mean": r_mean,
        "reward_std": r_std,
        "reward_classes": reward_classes,
        "dataset_sha256": ds.content_hash(),
        "n_train_transitions": int(len(train_idx)),
        "n_heldout_transitions": int(len(test_idx)),
    }
    with torch_threads(min(FIT_THREADS, os.cpu_count() or 1)), torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**31)))
        model = WorldModel(meta, *_networks(meta))
        params = list(model.transition.parameters()) + list(model.outcome.parameters())
        optim = torch.optim.Adam(params, lr=cfg.learning_rate, fused=True)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optim, cfg.steps)
        # each member's bootstrap of the training transitions, then every step's batch positions in it (the same
        # draws, in the same order, as one bootstrap matrix and one draw per step)
        n_train = len(train_idx)
        boot = np.empty((cfg.n_members, n_train), dtype=np.int64 if n_train >= 2**31 else np.int32)
        for m in range(cfg.n_members):
            boot[m] = rng.integers(0, n_train, size=n_train)
        pos = rng.integers(0, n_train, size=(cfg.steps, cfg.n_members, cfg.batch_size))
        drawn = np.stack([train_idx[boot[m][pos[:, m, :]]] for m in range(cfg.n_members)], axis=1)
        del boot
        # the table holds the distinct transitions the fit draws, not every logged one: on ten million logged
        # steps the features of all of them took gigabytes, and a grid's logs repeat a few thousand transitions
        used = unique_1d(drawn)
        fields = np.concatenate(
            [obs[used], nxt[used], np.stack([ds.actions[used], ds.rewards[used], ds.costs[used] > 0,
             ds.terminations[used], label[used], reward_label.reshape(-1)[used]], axis=1)], axis=1,
        )  # fmt: skip
        _, first, kind_of = unique_rows(fields.astype(np.float64), return_index=True, return_inverse=True)
        rows = used[first]
        batches = kind_of.reshape(-1)[np.searchsorted(used, drawn)]  # (steps, members, batch) table rows
        o_t, n_t = torch.as_tensor(obs[rows]), torch.as_tensor(nxt[rows])
        x_trans = model._inputs(o_t, torch.tensor(ds.actions[rows]))  # features once; batches index them
        table = _Table(
            floats={
                "x_trans": x_trans, "x_out": torch.cat([x_trans, model._features(n_t)], dim=-1),
                "change": (n_t - o_t) / model._t("obs_std"),
                "reward": torch.as_tensor(((ds.rewards[rows] - r_mean) / r_std).astype(np.float32)),
                "cost": torch.as_tensor((ds.costs[rows] > 0).astype(np.float32)),
                "term": torch.as_tensor(ds.terminations[rows].astype(np.float32)),
            },
            ints={
                "label": torch.as_tensor(label[rows]),
                "reward_label": torch.as_tensor(reward_label.reshape(-1)[rows].astype(np.int64)),
            },
        )  # fmt: skip
        losses = []
        with make_progress(show_progress) as progress:
            task = progress.add_task("world model", total=cfg.steps)
            for step in range(cfg.steps):
                loss = _loss(model, table.rows(batches[step]))
                optim.zero_grad()
                loss.backward()
                optim.step()
                schedule.step()
                losses.append(float(loss.detach()))
                progress.advance(task)
    meta["final_loss"] = float(np.mean(losses[-50:]))
    meta["accuracy"] = heldout_accuracy(model, ds, test_idx, label)
    return model


class _Table:
    """Per-transition training columns packed into one float and one integer matrix, so that a batch is two
    row gathers instead of one per column (the gathers were a tenth of a fitting step)."""

    def __init__(self, floats: dict[str, torch.Tensor], ints: dict[str, torch.Tensor]):
        self._floats = torch.cat([v.reshape(len(v), -1) for v in floats.values()], dim=1).contiguous()
        self._ints = torch.stack(list(ints.values()), dim=1).contiguous()
        self._slices: dict[str, tuple[bool, int, int, bool]] = {}
        start = 0
        for name, v in floats.items():
            width = int(np.prod(v.shape[1:]))
            self._slices[name] = (True, start, start + width, v.ndim == 1)
            start += width
        for j, name in enumerate(ints):
            self._slices[name] = (False, j, j + 1, True)

    def rows(self, idx: NDArray[np.integer]) -> dict[str, torch.Tensor]:
        """Every column at rows ``idx`` (any shape), each shaped ``idx.shape + column shape``."""
        flat = torch.as_tensor(idx.reshape(-1))
        f, i = self._floats.index_select(0, flat), self._ints.index_select(0, flat)
        out = {}
        for name, (is_float, lo, hi, squeeze) in self._slices.items():
            part = (f if is_float else i)[:, lo:hi]
            out[name] = part.reshape(*idx.shape) if squeeze else part.reshape(*idx.shape, hi - lo)
        return out


def _loss(model: WorldModel, b: dict[str, torch.Tensor]) -> torch.Tensor:
    f = torch.nn.functional
    out = model.transition(b["x_trans"])
    if model.kind == "gaussian":
        d = model.obs_dim
        target = b["change"]
        log_std = out[..., d:].clamp(-10.0, 2.0)
        trans = (0.5 * ((target - out[..., :d]) / torch.exp(log_std)) ** 2 + log_std).mean()
    else:
        trans = f.cross_entropy(out.reshape(-1, out.shape[-1]), b["label"].reshape(-1))
    res = model.outcome(b["x_out"])
    if model.meta["reward_classes"] is None:
        reward = f.mse_loss(res[..., 2], b["reward"])
    else:
        reward = f.cross_entropy(res[..., 2:].reshape(-1, res.shape[-1] - 2), b["reward_label"].reshape(-1))
    return (
        trans
        + reward
        + f.binary_cross_entropy_with_logits(res[..., 0], b["cost"])
        + f.binary_cross_entropy_with_logits(res[..., 1], b["term"])
    )


def heldout_accuracy(
    model: WorldModel, ds: Dataset, idx: NDArray[np.int64], label: NDArray[np.int64]
) -> dict[str, Any]:
    """The ensemble's accuracy on held-out transitions ``idx`` (ensemble-mean predictions)."""
    obs, act, nxt = ds.observations[idx], ds.actions[idx], ds.next_observations[idx]
    # predicted once per distinct (observation, action, next observation), then read per transition
    _, first, back = unique_rows(
        np.concatenate([obs, nxt, act[:, None]], axis=1).astype(np.float64), return_index=True, return_inverse=True
    )
    back = back.reshape(-1)
    o, a, n = obs[first], act[first], nxt[first]
    with one_thread():
        pred = {k: v[:, back] for k, v in model.predict(o, a).items()}
        res = {k: v[:, back] for k, v in model.predict_outcome(o, a, n).items()}
        disagreement = float(np.asarray(model.disagreement(o, a))[back].mean())
    out: dict[str, Any] = {"n_transitions": int(len(idx))}
    if "probs" in pred:
        p = pred["probs"].mean(axis=0)
        known = label[idx] >= 0
        p_true = p[np.arange(len(idx)), np.maximum(label[idx], 0)]
        out["next_obs_accuracy"] = float((p.argmax(axis=1) == label[idx]).mean())
        out["next_obs_log_likelihood"] = float(np.log(np.maximum(p_true[known], 1e-12)).mean())
    else:
        mean = obs + pred["mean"].mean(axis=0)
        out["next_obs_rmse"] = float(np.sqrt(((mean - nxt) ** 2).mean()))
    cost_p, term_p = res["cost"].mean(axis=0), res["termination"].mean(axis=0)
    cost = ds.costs[idx] > 0
    out["reward_mae"] = float(np.abs(res["reward"].mean(axis=0) - ds.rewards[idx]).mean())
    out["cost_rate"] = {"observed": float(cost.mean()), "predicted": float(cost_p.mean())}
    out["cost_brier"] = float(((cost_p - cost) ** 2).mean())
    out["cost_recall"] = float((cost_p[cost] > 0.5).mean()) if cost.any() else None
    out["termination_accuracy"] = float(((term_p > 0.5) == ds.terminations[idx]).mean())
    out["disagreement_mean"] = disagreement
    return out
