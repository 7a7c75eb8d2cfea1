"""A run: its folder, its shared context, its reference policies and its stages (see :mod:`.stages`)."""

from guardrl.run.context import RunContext
from guardrl.run.folder import RunFolder
from guardrl.run.stages import (
    STAGES,
    read_metrics,
    run,
    stage_audit,
    stage_collect,
    stage_evaluate,
    stage_gate,
    stage_model,
    stage_ope,
    stage_report,
    stage_train,
)

__all__ = [
    "STAGES",
    "RunContext",
    "RunFolder",
    "read_metrics",
    "run",
    "stage_audit",
    "stage_collect",
    "stage_evaluate",
    "stage_gate",
    "stage_model",
    "stage_ope",
    "stage_report",
    "stage_train",
]
