"""Training: d3rlpy's BC, CQL, DQN and BCQ through a fast batch loop; the tabular planners SPIBB, MOPO and MOReL;
the ensemble world model; the continuous learners (BC, TD3+BC, IQL, CQL); GAIL; and policy export.

Importing the package is cheap: each public name loads its module (and with it d3rlpy and torch) on first use,
so reading a run config or starting the command line does not pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from guardrl._d3rlpy import import_d3rlpy

_EXPORTS = {
    "config": (
        "BCConfig",
        "BCQConfig",
        "CQLConfig",
        "DQNConfig",
        "LearnerConfig",
        "LearnerConfigError",
        "QLearnerConfig",
        "TrainConfig",
    ),
    "export": ("OnnxPolicy", "ScoresModel", "TorchScriptPolicy", "export_policy", "export_scores"),
    "imitation": ("fit_bc", "label_arrays"),
    "learners": ("ObsBounds", "build_algo"),
    "mdp": ("to_mdp_dataset",),
    "trainer": ("TrainResult", "TransitionArrays", "learner_configs", "train_all", "train_learner"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "BCConfig", "BCQConfig", "CQLConfig", "DQNConfig", "LearnerConfig", "LearnerConfigError", "ObsBounds",
    "OnnxPolicy", "QLearnerConfig", "ScoresModel", "TorchScriptPolicy", "TrainConfig", "TrainResult",
    "TransitionArrays", "build_algo", "export_policy", "export_scores", "fit_bc", "label_arrays", "learner_configs",
    "to_mdp_dataset",
    "train_all", "train_learner",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'guardrl.train' has no attribute {name!r}")
    if module != "config":
        import_d3rlpy()  # quietly, without scikit-learn (see guardrl._d3rlpy)
    value = getattr(importlib.import_module(f"guardrl.train.{module}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from guardrl.train.config import (
        BCConfig,
        BCQConfig,
        CQLConfig,
        DQNConfig,
        LearnerConfig,
        LearnerConfigError,
        QLearnerConfig,
        TrainConfig,
    )
    from guardrl.train.export import OnnxPolicy, ScoresModel, TorchScriptPolicy, export_policy, export_scores
    from guardrl.train.imitation import fit_bc, label_arrays
    from guardrl.train.learners import ObsBounds, build_algo
    from guardrl.train.mdp import to_mdp_dataset
    from guardrl.train.trainer import TrainResult, TransitionArrays, learner_configs, train_all, train_learner
