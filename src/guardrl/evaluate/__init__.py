"""Evaluation: controlled rollouts with safety metrics and bootstrap CIs, normalized scores, mismatch."""

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
