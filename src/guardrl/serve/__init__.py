"""Guarded deployment: deferral and rollback rules, what serving loads from a run, the policy service with its
audit log and label queue, its HTTP server, and the staged-rollout replay."""

from guardrl.serve.guard import MODES, REASONS, Decisions, Guard, RollbackMonitor, ServeConfig

__all__ = ["MODES", "REASONS", "Decisions", "Guard", "RollbackMonitor", "ServeConfig"]
