"""Evaluation: rollouts with safety metrics and bootstrap CIs, normalized scores and mismatch; the off-policy
estimators (importance sampling, tabular and network FQE, doubly robust, world-model rollouts, continuous IS and
FQE) and their validation; and the deployment gate."""

from guardrl.evaluate.metrics import (
    Estimate,
    MismatchThresholds,
    bootstrap,
    mismatch_rate,
    normalized_score,
)
from guardrl.evaluate.rollout import EvalConfig, RolloutResult, rollout

__all__ = [
    "EvalConfig",
    "Estimate",
    "MismatchThresholds",
    "RolloutResult",
    "bootstrap",
    "mismatch_rate",
    "normalized_score",
    "rollout",
]
