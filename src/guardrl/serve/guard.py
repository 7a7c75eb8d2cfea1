"""Guardrails shared by the policy server and the rollout simulation: deferral and rollback, over arrays.

A policy *acts* only when the state is one it can be trusted in. It *defers* (to a person or to the
production controller) when any of these holds, each a named reason:

* ``out_of_support``: the state was logged fewer than ``min_state_count`` times (exact states, or the audit's
  quantile bins for continuous observations): too little data near it.
* ``close_call``: the top two action scores are too close: Q-values within ``min_q_gap`` (Q-learners, in the
  learner's scaled reward units) or probabilities within ``min_prob_gap`` (BC).
* ``unsupported_action``: the chosen action was logged fewer than ``audit.k`` times in that state.

The rollback monitor counts hazard events caused by the policy's decisions. When they exceed
``rollback_per_1000`` per 1,000 policy decisions, with at least ``rollback_min_decisions`` in the denominator
(so that a handful of early decisions cannot hide an event, nor one event trip a large threshold alone), the
deployment rolls back to the fallback and stays there (the audit log replays it on restart) until a person
resets it by starting the server with a new audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from guardrl.config import ServeConfig
from guardrl.data.audit import Support

REASONS = ("out_of_support", "close_call", "unsupported_action")
MODES = ("shadow", "canary", "full")


@dataclass(frozen=True)
class Decisions:
    """The guard's verdict on a batch of observations."""

    actions: NDArray[np.int64]
    """The policy's greedy action per observation."""
    defer: NDArray[np.bool_]
    reasons: NDArray[np.bool_]
    """(N, len(REASONS)): which reasons hold, in ``REASONS`` order."""
    gap: NDArray[np.float64]
    state_count: NDArray[np.int64]

    def reason_names(self, i: int) -> list[str]:
        return [name for name, hit in zip(REASONS, self.reasons[i], strict=True) if hit]


class Guard:
    """Decides act / defer for a scored policy against the logged support (see the module docstring)."""

    def __init__(self, scores: Any, kind: str, support: Support, cfg: ServeConfig):
        self.scores, self.kind, self.support, self.cfg = scores, kind, support, cfg
        self.state_totals = support.counts.sum(axis=1)

    def greedy(self, obs: NDArray[np.floating]) -> NDArray[np.int64]:
        """The policy's action, without the guard's checks (for a fallback policy)."""
        return np.argmax(self.scores(np.asarray(obs, dtype=np.float32)), axis=1).astype(np.int64)

    def decide(self, obs: NDArray[np.floating]) -> Decisions:
        obs = np.asarray(obs, dtype=np.float32)
        s = np.asarray(self.scores(obs), dtype=np.float64)
        actions = np.argmax(s, axis=1).astype(np.int64)
        if self.kind == "logprob":
            s = np.exp(s)
        top2 = -np.partition(-s, 1, axis=1)[:, :2] if s.shape[1] > 1 else np.c_[s, np.full(len(s), -np.inf)]
        gap = top2[:, 0] - top2[:, 1]
        states = self.support.index(obs)
        count = np.where(states >= 0, self.state_totals[np.maximum(states, 0)], 0)
        threshold = self.cfg.min_prob_gap if self.kind == "logprob" else self.cfg.min_q_gap
        reasons = np.stack(
            [
                count < self.cfg.min_state_count,
                gap < threshold,
                self.support.unsupported(obs, actions, states) & self.cfg.defer_unsupported,
            ],
            axis=1,
        )
        return Decisions(actions, np.asarray(reasons.any(axis=1)), reasons, gap, count.astype(np.int64))


@dataclass
class RollbackMonitor:
    """Policy decisions and the hazard events they caused; trips once the rate crosses the threshold."""

    per_1000: float
    min_decisions: int
    policy_decisions: int = 0
    hazard_events: int = 0
    rolled_back: bool = False
    reason: str | None = None

    @property
    def limit(self) -> float:
        """The number of events the current decision count tolerates."""
        return self.per_1000 * max(self.policy_decisions, self.min_decisions) / 1000.0

    @property
    def rate_per_1000(self) -> float:
        return 1000.0 * self.hazard_events / max(self.policy_decisions, 1)

    def record(self, decisions: int = 0, hazards: int = 0) -> bool:
        """Add decisions and events; True when this call trips the rollback."""
        self.policy_decisions += decisions
        self.hazard_events += hazards
        if not self.rolled_back and self.hazard_events > self.limit:
            self.rolled_back = True
            self.reason = (
                f"{self.hazard_events} hazard events in {self.policy_decisions} policy decisions exceed "
                f"{self.per_1000:g} per 1,000 (counting at least {self.min_decisions} decisions)"
            )
            return True
        return False

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy_decisions": self.policy_decisions,
            "hazard_events": self.hazard_events,
            "rate_per_1000": self.rate_per_1000,
            "threshold_per_1000": self.per_1000,
            "min_decisions": self.min_decisions,
            "rolled_back": self.rolled_back,
            "reason": self.reason,
        }
