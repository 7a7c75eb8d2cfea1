"""Guarded deployment: deferral and rollback rules, the policy service and its HTTP server, rollout simulation."""

from guardrl.serve.guard import MODES, REASONS, Decisions, Guard, RollbackMonitor, ServeConfig

__all__ = ["MODES", "REASONS", "Decisions", "Guard", "RollbackMonitor", "ServeConfig"]
