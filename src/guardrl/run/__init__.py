"""A run: its folder, its shared context, its reference policies and its stages (:mod:`.stages`,
:mod:`.evaluation`, :mod:`.judging`), sweeps, and the imitation commands that export into a run."""

from guardrl.run.context import RunContext
from guardrl.run.evaluation import read_metrics, stage_evaluate
from guardrl.run.folder import RunFolder
from guardrl.run.judging import stage_gate, stage_ope, stage_recommend
from guardrl.run.stages import STAGES, run, stage_audit, stage_collect, stage_model, stage_report, stage_train

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
    "stage_recommend",
    "stage_report",
    "stage_train",
]
