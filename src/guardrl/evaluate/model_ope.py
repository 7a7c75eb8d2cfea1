"""Model-based OPE: the target policy rolled out in the world model learned from the logs.

Every ensemble member simulates ``model_episodes`` episodes from logged start observations with the target's
action (greedy, or drawn from a stochastic target's probabilities). The networks predict every step, unless
``ope.model_logged_prior`` is set: then, at a step whose (state, action) pair the logs contain ``n`` times, the
outcome is one of those logged transitions with probability ``n / (n + prior)`` (each member over its own
bootstrap resample of them). That is off by default: it let an unsafe policy PASS on held-out data (see
:class:`~guardrl.evaluate.ope_config.OPEConfig`). The point estimate is the mean over members; the interval
runs from the lowest member's lower bound to the highest member's upper bound, so it holds both the Monte Carlo
error and the members' disagreement (the model's uncertainty). Assumption: the true dynamics lie within the
ensemble's spread.

``model_pessimistic`` (cost only) drops that assumption where the logs are silent. With ``ope.model_pessimism:
outcomes`` (the default) an episode counts as a hazard event when it steps onto an observation the logs never
show, or show entered with a cost (a cell nobody reached may be a hazard, whatever the model predicts there), from
any (state, action) pair; and when it takes an action never logged in that state (the audit's state index) on
which the members disagree and one of them predicts such a step (:func:`untrusted_pairs`). It assumes the model
is right about the outcomes of the steps the logs show and of those its members agree on. With ``pairs`` an
unlogged pair counts whole, as MOReL halts on unknown pairs, unless the members agree on it and every outcome they
predict is a logged observation; that charged a policy for every unlogged action it drew, whether or not it led
anywhere the logs do not show. (Halting on every unlogged pair made the exact optimum fail on most logs of the OPE
suite: its route takes moves the logging controller never made, next to cells it visited all the time; counting
pairs logged fewer than ``audit.k`` times as well flagged 99.96% of a near-optimal policy's model episodes on the
default logs.)
"""

from __future__ import annotations

from collections.abc import Callable
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import NDArray

from guardrl._arrays import unique_rows
from guardrl.data import Dataset
from guardrl.data.audit import ExactRows
from guardrl.evaluate.metrics import Estimate, wilson_interval
from guardrl.evaluate.ope_config import OPEConfig
from guardrl.evaluate.target import TargetPolicy
from guardrl.train.world_model import LoggedTransitions, WorldModel

Pairs = Callable[[NDArray[np.float32], NDArray[np.int64]], NDArray[np.bool_]]
Seen = Callable[[NDArray[np.float32]], NDArray[np.bool_]]


def untrusted_pairs(
    model: WorldModel,
    ds: Dataset,
    unlogged: Pairs,
    max_disagreement: float | None,
    exact: bool,
    pessimism: str = "pairs",
) -> tuple[Pairs, Seen | None, str]:
    """Which (observation, action) pairs ``model_pessimistic`` counts as hazard events, and the rule in words.

    ``unlogged``: the pairs the logs never contain. Of those, a pair is trusted when the members' disagreement is
    at most ``max_disagreement`` and every outcome they predict (probability at least 0.001 in some member) is an
    observation the logs contain; ``exact``: observations are matched as exact rows (the audit's index is exact),
    without which, or with a Gaussian model or ``max_disagreement`` None, no unlogged pair is trusted.

    ``pessimism`` ``outcomes`` (``OPEConfig.model_pessimism``): every simulated step onto an observation the logs
    never show, or show entered with a cost, counts, logged pairs' steps included (the second function returned
    marks those observations); an unlogged pair counts whole only where the members disagree and one of them
    predicts such a step. A policy is then charged the probability of reaching what the logs cannot vouch for,
    not every unlogged action whole."""
    if max_disagreement is None or not exact or model.kind == "gaussian":
        return unlogged, None, "every (state, action) pair the logs never contain"
    seen = ExactRows(ds.observation_rows[0])
    hit = ds.next_observations[ds.costs > 0].astype(np.float32)
    hazards = ExactRows(unique_rows(hit)) if len(hit) else None

    def is_seen(obs: NDArray[np.float32]) -> NDArray[np.bool_]:
        return seen.find(obs) >= 0

    def harmful(obs: NDArray[np.float32]) -> NDArray[np.bool_]:
        """Never shown by the logs, or entered in them with a cost."""
        out = ~is_seen(obs)
        return out if hazards is None else out | (hazards.find(obs) >= 0)

    def untrusted(obs: NDArray[np.float32], actions: NDArray[np.int64]) -> NDArray[np.bool_]:
        out = np.asarray(unlogged(obs, actions), dtype=bool).copy()
        rows = np.flatnonzero(out)
        if len(rows) == 0:
            return out
        o, a = obs[rows], actions[rows]
        agree = model.disagreement(o, a) <= max_disagreement
        step = model.one_step(o, a)
        off_map = np.zeros(len(rows), dtype=bool)
        np.logical_or.at(off_map, step.row, ~is_seen(step.next_obs) if pessimism == "pairs" else harmful(step.next_obs))
        # outcomes: a pair the members disagree on counts only where one of them can take it somewhere harmful
        out[rows] = ~agree | off_map if pessimism == "pairs" else ~agree & off_map
        return out

    if pessimism == "outcomes":
        rule = (
            f"every (state, action) pair the logs never contain on which the model's members disagree (disagreement "
            f"> {max_disagreement}) and one of them predicts a step onto an observation the logs never show or "
            "show entered with a cost; and every simulated step onto such an observation"
        )
        return untrusted, harmful, rule
    rule = (
        f"every (state, action) pair the logs never contain, unless the model's members agree on it (disagreement "
        f"<= {max_disagreement}) and all its predicted outcomes are logged observations"
    )
    return untrusted, None, rule


def member_interval(values: NDArray[np.float64], confidence: float, binary: bool = False) -> Estimate:
    """Mean over members of each member's mean, and the widest of their per-member intervals.

    ``binary``: the values are 0/1 (an event per episode); each member's interval is Wilson's score interval,
    which stays above 0 when no event was simulated (a normal interval would collapse to a point)."""
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    n = values.shape[1]
    means = values.mean(axis=1)
    if binary:
        low, high = wilson_interval(means, n, z)
    else:
        se = values.std(axis=1, ddof=1) / np.sqrt(n) if n > 1 else np.zeros_like(means)
        low, high = means - z * se, means + z * se
    return Estimate(float(means.mean()), float(low.min()), float(high.max()))


def model_estimates(
    model: WorldModel,
    ds: Dataset,
    target: TargetPolicy,
    cfg: OPEConfig,
    unlogged: Pairs | None = None,
    horizon: int | None = None,
    logged: LoggedTransitions | None = None,
    unseen: Seen | None = None,
) -> dict[str, Any]:
    """``{"return": {"model": ...}, "cost": {"model": ..., "model_pessimistic": ...}, "model": details}``;
    episodes run for ``horizon`` steps (unset: the model's, the longest logged episode); ``logged``: the logs'
    transitions, drawn from at steps whose pair they contain (:class:`LoggedTransitions`); ``unseen``: marks
    observations the pessimistic bound counts a step onto as a hazard (:func:`untrusted_pairs`)."""
    rng = np.random.default_rng([cfg.seed, 2])
    starts = ds.observations[ds.episode_starts]
    picks = starts[rng.integers(0, len(starts), size=cfg.model_episodes)]
    act_rng = np.random.default_rng([cfg.seed, 4])  # a stochastic target's own draws

    def act(obs: NDArray[np.float32]) -> NDArray[np.int64]:
        return target.act(obs, act_rng, ds.n_actions)

    roll = model.rollout(act, picks, rng, unknown=unlogged, horizon=horizon, logged=logged, unseen=unseen)
    binary = bool(np.isin(roll.costs, (0.0, 1.0)).all())
    cost = member_interval(roll.costs, cfg.confidence, binary)
    out: dict[str, Any] = {
        "return": {"model": member_interval(roll.returns, cfg.confidence)},
        "cost": {"model": cost},
        "model": {
            "episodes_per_member": cfg.model_episodes,
            "member_return_means": roll.returns.mean(axis=1).tolist(),
            "member_cost_means": roll.costs.mean(axis=1).tolist(),
            "mean_length": float(roll.lengths.mean()),
            "dynamics": "the networks at every step"
            if logged is None
            else f"a logged transition of the step's (state, action) pair with probability n / (n + {logged.prior:g}) "
            "(n: the pair's logged count, each member over its own bootstrap resample), else the networks",
        },
    }
    if unlogged is not None:
        pessimistic = np.maximum(roll.costs, roll.hit_unknown.astype(np.float64))
        out["cost"]["model_pessimistic"] = member_interval(pessimistic, cfg.confidence, binary)
        out["model"]["unlogged_episode_share"] = float(roll.hit_unknown.mean())
    return out
