"""A world model learned from the logs: an ensemble of small networks, saved without pickle.

Two networks per member, both fed standardized observations and one-hot actions:

* **transition**: the next observation. When the logs hold at most ``max_classes`` distinct changes
  ``next_obs - obs`` (grid moves, slips), it is a classifier over those changes; else, when they hold at most
  that many distinct next observations (one-hot states), a classifier over them; else a Gaussian over the
  standardized change. A classifier can put a small probability on a rare outcome (a 1-in-80 slip) and, since
  the network shares weights across states, a slip seen in one place informs the others.
* **outcome**: from (observation, action, next observation), the reward (regression), and the cost and the
  termination (classifiers), so that a sampled transition gets the reward, cost and ending that go with it.

Every member trains on its own bootstrap resample (:mod:`guardrl.train.world_model_fit` fits them); their
disagreement is the model's uncertainty. A share of the episodes is held out and the model's accuracy on them is
stored with it. This module holds the fitted model: its networks, one-step predictions, batched rollouts and the
logged transitions a rollout may draw instead. Parameters are saved as ``weights.npz`` (plain arrays, read with
``allow_pickle=False``) beside ``model.json``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from guardrl._io import atomic_write, atomic_write_text
from guardrl._parallel import torch_threads
from guardrl.data import Dataset
from guardrl.data.audit import StateIndex
from guardrl.envs import sample_actions
from guardrl.errors import GuardrlError

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.npz"
META_FILE = "model.json"


class WorldModelError(GuardrlError, ValueError):
    """Logs a world model cannot be fitted to, or a saved model that cannot be read."""


def one_thread() -> contextlib.AbstractContextManager[None]:
    """torch on one thread: a one-step query's small matrices run fastest so, and two threads fight any other
    busy core."""
    return torch_threads(1)


FIT_THREADS = 2
"""Threads for fitting: a batch is one matrix per member, each product done whole by one thread, so two threads
give the same weights as one (checked bit for bit on the default data) in about two thirds of the time."""


def rollout_threads() -> contextlib.AbstractContextManager[None]:
    """torch on up to ``FIT_THREADS`` threads for a rollout, never more than the process already has (a forked
    worker keeps its one). As in fitting, each member's product is done whole by one thread, so the rollouts are
    the same bit for bit; a step of 4,000 episodes per member took 15.4 ms on one thread and 9.4 ms on two (2-wide
    observations), 58 and 33 ms (147-wide)."""
    return torch_threads(max(1, min(FIT_THREADS, torch.get_num_threads())))


class _Ensemble(torch.nn.Module):
    """``n`` MLPs evaluated at once: weights (n, in, out), inputs (n, batch, in)."""

    def __init__(self, n: int, sizes: list[int]):
        super().__init__()
        self.weights = torch.nn.ParameterList()
        self.biases = torch.nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            bound = 1.0 / np.sqrt(fan_in)
            self.weights.append(torch.nn.Parameter(torch.empty(n, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(torch.nn.Parameter(torch.zeros(n, 1, fan_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = torch.nn.functional.silu(x)
        return x


@dataclass
class WorldModel:
    """A fitted ensemble world model (see the module docstring)."""

    meta: dict[str, Any]
    transition: _Ensemble
    outcome: _Ensemble
    _tensors: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------ shapes and features

    @property
    def kind(self) -> str:
        """``delta`` (class of change), ``next`` (class of next observation) or ``gaussian``."""
        return str(self.meta["kind"])

    @property
    def n_members(self) -> int:
        return int(self.meta["n_members"])

    @property
    def n_actions(self) -> int:
        return int(self.meta["n_actions"])

    @property
    def obs_dim(self) -> int:
        return int(self.meta["obs_dim"])

    @property
    def horizon(self) -> int:
        """The longest logged episode: model rollouts are truncated there, as the logs were."""
        return int(self.meta["horizon"])

    def _features(self, obs: torch.Tensor) -> torch.Tensor:
        """Network features of observations: each feature standardized, and a feature with few integer values
        also one-hot over them (so a network can single out one grid cell without a steep function)."""
        parts = [(obs - self._t("obs_mean")) / self._t("obs_std")]
        for j, values in enumerate(self.meta["onehot_values"]):
            if values is not None:
                parts.append((obs[..., j : j + 1] == self._t("onehot_values", j)).to(obs.dtype))
        return torch.cat(parts, dim=-1)

    def clip(self, obs: torch.Tensor) -> torch.Tensor:
        """Observations kept inside the logged range of each feature (a model never walks off the data's map)."""
        return torch.minimum(torch.maximum(obs, self._t("obs_low")), self._t("obs_high"))

    def _t(self, key: str, j: int | None = None) -> torch.Tensor:
        """``meta[key]`` (or its item ``j``) as a float32 tensor, converted on first use: rollouts ask for it on
        every step."""
        name = key if j is None else f"{key}[{j}]"
        if name not in self._tensors:
            value = self.meta[key] if j is None else self.meta[key][j]
            self._tensors[name] = torch.as_tensor(np.asarray(value, dtype=np.float32))
        return self._tensors[name]

    def _inputs(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        onehot = torch.nn.functional.one_hot(actions, self.n_actions).to(obs.dtype)
        return torch.cat([self._features(obs), onehot], dim=-1)

    def _outcome_inputs(self, obs: torch.Tensor, actions: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._inputs(obs, actions), self._features(nxt)], dim=-1)

    # ------------------------------------------------------------ predictions

    @torch.no_grad()
    def predict(self, obs: NDArray[np.floating], actions: NDArray[np.integer]) -> dict[str, NDArray[np.float64]]:
        """Per member (first axis) for each (observation, action): class probabilities of the next observation
        (``probs``, class kinds) or its mean (``mean``, Gaussian kind)."""
        x = self._inputs(*self._batch(obs, actions))
        out = self.transition(x)
        if self.kind == "gaussian":
            d = self.obs_dim
            mean = self._t("obs_std") * out[..., :d]
            return {"mean": mean.numpy().astype(np.float64), "log_std": out[..., d:].numpy().astype(np.float64)}
        return {"probs": torch.softmax(out, dim=-1).numpy().astype(np.float64)}

    @torch.no_grad()
    def predict_outcome(
        self, obs: NDArray[np.floating], actions: NDArray[np.integer], next_obs: NDArray[np.floating]
    ) -> dict[str, NDArray[np.float64]]:
        """Per member: reward, cost probability and termination probability of the given transitions."""
        o, a = self._batch(obs, actions)
        n = torch.tensor(np.asarray(next_obs, dtype=np.float32)).expand(self.n_members, -1, -1)
        out = self.outcome(self._outcome_inputs(o, a, n))
        return {
            "reward": self._expected_reward(out).numpy().astype(np.float64),
            "cost": torch.sigmoid(out[..., 0]).numpy().astype(np.float64),
            "termination": torch.sigmoid(out[..., 1]).numpy().astype(np.float64),
        }

    def _expected_reward(self, out: torch.Tensor) -> torch.Tensor:
        values = self.meta["reward_classes"]
        if values is None:
            return out[..., 2] * self.meta["reward_std"] + self.meta["reward_mean"]
        return (torch.softmax(out[..., 2:], dim=-1) * torch.as_tensor(values, dtype=out.dtype)).sum(dim=-1)

    def disagreement(self, obs: NDArray[np.floating], actions: NDArray[np.integer]) -> NDArray[np.float64]:
        """Uncertainty per (observation, action): the largest total-variation distance between a member's
        next-observation distribution and the ensemble mean (class kinds), or the members' spread of the mean
        change in standardized units (Gaussian kind)."""
        pred = self.predict(obs, actions)
        if "probs" in pred:
            p = pred["probs"]
            return (0.5 * np.abs(p - p.mean(axis=0, keepdims=True)).sum(axis=-1)).max(axis=0)
        mean = pred["mean"] / np.asarray(self.meta["obs_std"])
        return mean.std(axis=0).max(axis=-1)

    @torch.no_grad()
    def one_step(self, obs: NDArray[np.floating], actions: NDArray[np.integer], min_prob: float = 1e-3) -> OneStep:
        """Every member's distribution of the next observation for each (observation, action), with the
        expected reward, the cost probability and the termination probability of each outcome.

        Class kinds only (a Gaussian next observation has no list of outcomes). Outcomes below ``min_prob`` in
        every member are dropped and each row's remaining mass is renormalized (with at most 64 classes, a row
        keeps at least its likeliest one)."""
        if self.kind == "gaussian":
            raise WorldModelError("one_step: the world model predicts a Gaussian change, not a list of outcomes")
        with one_thread():
            o, a = self._batch(obs, actions)
            probs = torch.softmax(self.transition(self._inputs(o, a)), dim=-1).numpy().astype(np.float64)
            row, cls = np.nonzero((probs >= min_prob).any(axis=0))
            d = self.obs_dim
            base = torch.as_tensor(np.asarray(obs, dtype=np.float32)[row])
            classes = self._t("classes").reshape(-1, d)[torch.as_tensor(cls)]
            nxt = self.clip(base + classes) if self.kind == "delta" else classes
            p = probs[:, row, cls]
            total = np.zeros((len(obs), self.n_members))
            np.add.at(total, row, p.T)
            total = total.T
            p = p / total[:, row]
            out = self.predict_outcome(np.asarray(base.numpy()), np.asarray(actions)[row], nxt.numpy())
        return OneStep(
            row=row.astype(np.int64), next_obs=nxt.numpy(), prob=p, reward=out["reward"], cost=out["cost"],
            termination=out["termination"],
        )  # fmt: skip

    def _batch(self, obs: NDArray[np.floating], actions: NDArray[np.integer]) -> tuple[torch.Tensor, torch.Tensor]:
        o = torch.tensor(np.asarray(obs, dtype=np.float32)).expand(self.n_members, -1, -1)
        a = torch.tensor(np.asarray(actions, dtype=np.int64)).expand(self.n_members, -1)
        return o, a

    # ------------------------------------------------------------ rollouts

    def rollout(
        self,
        policy: Callable[[NDArray[np.float32]], NDArray[np.int64]],
        starts: NDArray[np.floating],
        rng: np.random.Generator,
        unknown: Callable[[NDArray[np.float32], NDArray[np.int64]], NDArray[np.bool_]] | None = None,
        horizon: int | None = None,
        logged: LoggedTransitions | None = None,
        unseen: Callable[[NDArray[np.float32]], NDArray[np.bool_]] | None = None,
    ) -> ModelRollouts:
        """Roll ``policy`` out from each start observation in every member's model, for ``horizon`` steps (unset:
        the longest logged episode).

        Each member simulates every start with its own dynamics; all members and episodes step at once.
        ``unknown(obs, actions)`` marks pairs the logs do not support; an episode that takes one is flagged, as is
        one that steps onto an observation ``unseen(next_obs)`` marks (one the logs never show).
        ``logged``: where a step's (observation, action) pair is in the logs, its outcome is drawn from the logged
        transitions of that pair with probability ``n / (n + prior)`` (``n`` its count in the member's bootstrap
        resample of them), else from the member's networks (see :class:`LoggedTransitions`)."""
        with rollout_threads(), torch.no_grad():
            steps = self.horizon if horizon is None else horizon
            return self._rollout(policy, starts, rng, unknown, steps, logged, unseen)

    def _rollout(
        self,
        policy: Callable[[NDArray[np.float32]], NDArray[np.int64]],
        starts: NDArray[np.floating],
        rng: np.random.Generator,
        unknown: Callable[[NDArray[np.float32], NDArray[np.int64]], NDArray[np.bool_]] | None,
        horizon: int,
        logged: LoggedTransitions | None,
        unseen: Callable[[NDArray[np.float32]], NDArray[np.bool_]] | None = None,
    ) -> ModelRollouts:
        m, n, d = self.n_members, len(starts), self.obs_dim
        resample = logged.resample(m, rng) if logged is not None else None
        obs = torch.tensor(np.asarray(starts, dtype=np.float32)).expand(m, n, d).clone()
        alive = np.ones((m, n), dtype=bool)
        returns, costs = np.zeros((m, n)), np.zeros((m, n))
        lengths = np.zeros((m, n), dtype=np.int64)
        hit_unknown = np.zeros((m, n), dtype=bool)
        classes = self._t("classes").reshape(-1, d) if self.kind != "gaussian" else None
        for _ in range(horizon):
            if not alive.any():
                break
            flat = obs.reshape(m * n, d).numpy()
            actions = np.asarray(policy(flat), dtype=np.int64).reshape(m, n)
            if unknown is not None:
                hit_unknown |= alive & unknown(flat, actions.ravel()).reshape(m, n)
            a = torch.as_tensor(actions)
            out = self.transition(self._inputs(obs, a))
            if classes is not None:
                k = torch.as_tensor(_draw(out, rng))
                nxt = self.clip(obs + classes[k]) if self.kind == "delta" else classes[k]
            else:
                noise = torch.as_tensor(rng.standard_normal(size=(m, n, d)).astype(np.float32))
                change = out[..., :d] + torch.exp(out[..., d:].clamp(-10.0, 2.0)) * noise
                nxt = self.clip(obs + self._t("obs_std") * change)
            res = self.outcome(self._outcome_inputs(obs, a, nxt))
            reward = self._sample_reward(res, rng)
            res = res.numpy().astype(np.float64)
            # one uniform for both: a cost and an ending as likely as each other come together (entering a hazard
            # ends the episode), where independent draws let a hazard's cost recur in an episode that went on
            u = rng.uniform(size=(m, n))
            cost = (u < 1.0 / (1.0 + np.exp(-res[..., 0]))).astype(np.float64)
            done = u < 1.0 / (1.0 + np.exp(-res[..., 1]))
            if logged is not None and resample is not None:
                take, pick = logged.draw(flat, actions.ravel(), np.repeat(np.arange(m), n), resample, rng)
                take = take.reshape(m, n)
                if take.any():
                    t = pick[take.ravel()]
                    nxt = nxt.clone()
                    nxt[torch.as_tensor(take)] = torch.as_tensor(logged.next_obs[t])
                    reward[take], cost[take], done[take] = logged.reward[t], logged.cost[t], logged.terminal[t]
            if unseen is not None:
                hit_unknown |= alive & unseen(nxt.reshape(m * n, d).numpy()).reshape(m, n)
            returns += np.where(alive, reward, 0.0)
            costs += np.where(alive, cost, 0.0)
            lengths += alive
            alive &= ~done
            obs = torch.where(torch.as_tensor(alive)[..., None], nxt, obs)
        return ModelRollouts(returns=returns, costs=costs, lengths=lengths, hit_unknown=hit_unknown)

    def _sample_reward(self, out: torch.Tensor, rng: np.random.Generator) -> NDArray[np.float64]:
        values = self.meta["reward_classes"]
        if values is None:  # a regressed reward is its own expectation
            return self._expected_reward(out).numpy().astype(np.float64)
        return np.asarray(values, dtype=np.float64)[_draw(out[..., 2:], rng)]

    # ------------------------------------------------------------ persistence

    def save(self, folder: Path) -> None:
        """``weights.npz`` and ``model.json`` into ``folder`` (each written to a temporary file, then renamed)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {f"{name}.{k}": v.detach().numpy() for name in ("transition", "outcome")
                  for k, v in getattr(self, name).state_dict().items()}  # fmt: skip

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)

        atomic_write(folder / WEIGHTS_FILE, write)
        atomic_write_text(folder / META_FILE, json.dumps(self.meta, indent=1, allow_nan=False))

    @classmethod
    def load(cls, folder: Path) -> WorldModel:
        """A model saved by :meth:`save` (plain arrays only; nothing is unpickled)."""
        folder = Path(folder)
        try:
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
            with np.load(folder / WEIGHTS_FILE, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except FileNotFoundError as exc:
            raise WorldModelError(f"{folder}: no saved world model ({exc.filename} missing)") from None
        except (ValueError, OSError, json.JSONDecodeError) as exc:
            raise WorldModelError(f"{folder}: unreadable world model ({exc})") from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise WorldModelError(
                f"{folder / META_FILE}: format_version {meta.get('format_version')!r} is not {FORMAT_VERSION}"
            )
        model = cls(meta, *_networks(meta))
        for name in ("transition", "outcome"):
            net = getattr(model, name)
            state = {k.split(".", 1)[1]: torch.as_tensor(v) for k, v in arrays.items() if k.startswith(f"{name}.")}
            try:
                net.load_state_dict(state)
            except RuntimeError as exc:
                raise WorldModelError(
                    f"{folder / WEIGHTS_FILE}: {name} weights do not fit model.json ({exc})"
                ) from None
        return model


def _draw(logits: torch.Tensor, rng: np.random.Generator) -> NDArray[np.int64]:
    """One class per row of ``logits`` (..., K), drawn by guardrl's one categorical sampler."""
    probs = torch.softmax(logits, dim=-1).numpy().astype(np.float64)
    return sample_actions(probs.reshape(-1, probs.shape[-1]), rng).reshape(probs.shape[:-1])


@dataclass(frozen=True)
class OneStep:
    """One-step outcomes of (observation, action) rows: entry ``e`` is a possible next observation of row
    ``row[e]``; the per-member arrays have the members on their first axis."""

    row: NDArray[np.int64]
    next_obs: NDArray[np.float32]
    prob: NDArray[np.float64]
    """(members, entries): each member's probability of the outcome (a row's entries sum to 1)."""
    reward: NDArray[np.float64]
    cost: NDArray[np.float64]
    termination: NDArray[np.float64]


@dataclass(frozen=True)
class LoggedTransitions:
    """The logs' own transitions, grouped by (observation, action) pair, for model rollouts to draw from.

    A pair logged ``n`` times gets its outcome (next observation, reward, cost, ending) from its logged transitions
    with probability ``n / (n + prior)``, else from the networks: the network's prediction counts as ``prior``
    transitions of evidence. Where the logs are dense, the rollout follows them, as the tabular FQE does; where they
    are thin or silent, the networks, which share what they learned across states, speak. Each member draws from
    its own bootstrap resample of the transitions (Poisson weights), so the members' spread carries the logs'
    sampling error there. The networks alone smooth a hazard slip over neighbouring cells (on one of the OPE
    suite's development logs they put SPIBB's hazard at 2.99% where the truth is 0.21%); but that smoothing also
    sees risk on pairs whose logged transitions happen to show none, which these draws cannot (the model
    estimator uses them only when ``ope.model_logged_prior`` is set).

    Observations are matched as exact rows; logs whose observations never repeat leave every step to the networks."""

    index: StateIndex
    n_actions: int
    start: NDArray[np.int64]
    """(states * actions + 1,): pair ``p``'s transitions are rows ``start[p]:start[p + 1]`` of the arrays below."""
    next_obs: NDArray[np.float32]
    reward: NDArray[np.float64]
    cost: NDArray[np.float64]
    terminal: NDArray[np.bool_]
    prior: float

    @classmethod
    def from_dataset(cls, ds: Dataset, prior: float) -> LoggedTransitions:
        """Every logged transition, keyed by its (observation row, action) pair; ``prior`` >= 0."""
        if prior < 0:
            raise WorldModelError(f"the network's weight against logged transitions must be >= 0, got {prior}")
        index = StateIndex(exact=ds.distinct_observations, edges=None)
        pair = ds.over_observations(index) * ds.n_actions + ds.actions
        order = np.argsort(pair, kind="stable")
        counts = np.bincount(pair, minlength=index.n_states * ds.n_actions)
        return cls(
            index=index, n_actions=ds.n_actions, start=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            next_obs=np.asarray(ds.next_observations, dtype=np.float32)[order],
            reward=np.asarray(ds.rewards, dtype=np.float64)[order], cost=np.asarray(ds.costs, dtype=np.float64)[order],
            terminal=np.asarray(ds.terminations, dtype=np.bool_)[order], prior=float(prior),
        )  # fmt: skip

    def resample(self, members: int, rng: np.random.Generator) -> NDArray[np.float64]:
        """Each member's cumulative Poisson(1) bootstrap weights over the transitions, (members, transitions + 1)."""
        weights = rng.poisson(1.0, size=(members, len(self.reward))).astype(np.float64)
        return np.concatenate([np.zeros((members, 1)), np.cumsum(weights, axis=1)], axis=1)

    def draw(
        self,
        obs: NDArray[np.float32],
        actions: NDArray[np.int64],
        member: NDArray[np.int64],
        cumulative: NDArray[np.float64],
        rng: np.random.Generator,
    ) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
        """For each row: whether its outcome comes from the logs, and which logged transition (where it does)."""
        state = self.index(obs)
        known = state >= 0
        pair = np.where(known, state * self.n_actions + actions, 0)
        low = cumulative[member, self.start[pair]]
        n = np.where(known, cumulative[member, self.start[pair + 1]] - low, 0.0)
        take = rng.uniform(size=len(n)) * (n + self.prior) < n
        target = low + rng.uniform(size=len(n)) * n
        pick = np.full(len(n), -1, dtype=np.int64)
        for j in np.unique(member[take]):
            rows = np.flatnonzero(take & (member == j))
            # the transition whose weight interval holds the target (zero-weight ones have an empty interval);
            # the clip only guards against rounding at a pair's ends
            found = np.searchsorted(cumulative[j], target[rows], side="right") - 1
            pick[rows] = np.clip(found, self.start[pair[rows]], self.start[pair[rows] + 1] - 1)
        return take, pick


@dataclass(frozen=True)
class ModelRollouts:
    """Episodes simulated in a world model, per member (first axis) and start (second axis)."""

    returns: NDArray[np.float64]
    costs: NDArray[np.float64]
    lengths: NDArray[np.int64]
    hit_unknown: NDArray[np.bool_]
    """The episode took an (observation, action) pair the logs do not support."""


def _networks(meta: dict[str, Any]) -> tuple[_Ensemble, _Ensemble]:
    d, a, hidden = int(meta["obs_dim"]), int(meta["n_actions"]), list(meta["config"]["hidden_units"])
    f = d + sum(len(v) for v in meta["onehot_values"] if v is not None)  # features of one observation
    out = len(meta["classes"]) if meta["kind"] != "gaussian" else 2 * d
    rewards = len(meta["reward_classes"]) if meta["reward_classes"] is not None else 1
    m = int(meta["n_members"])
    return _Ensemble(m, [f + a, *hidden, out]), _Ensemble(m, [2 * f + a, *hidden, 2 + rewards])
