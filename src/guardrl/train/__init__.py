"""Training through d3rlpy: BC, CQL, DQN and BCQ from explicit configs, a fast batch loop, and policy export."""

import contextlib
import io

# d3rlpy 2.8.1 imports the legacy ``gym`` package, whose import prints an "unmaintained" banner to stderr;
# guardrl only uses gymnasium, so that banner is noise on every command.
with contextlib.redirect_stderr(io.StringIO()):
    import d3rlpy  # noqa: F401

from guardrl.train.config import BCConfig, BCQConfig, CQLConfig, DQNConfig, LearnerConfig, QLearnerConfig, TrainConfig
from guardrl.train.export import OnnxPolicy, ScoresModel, TorchScriptPolicy, export_policy, export_scores
from guardrl.train.learners import LearnerConfigError, ObsBounds, build_algo
from guardrl.train.mdp import to_mdp_dataset
from guardrl.train.trainer import TrainResult, TransitionArrays, learner_configs, train_all, train_learner

__all__ = [
    "BCConfig",
    "BCQConfig",
    "CQLConfig",
    "DQNConfig",
    "LearnerConfig",
    "QLearnerConfig",
    "LearnerConfigError",
    "ObsBounds",
    "OnnxPolicy",
    "ScoresModel",
    "TorchScriptPolicy",
    "TrainConfig",
    "TrainResult",
    "TransitionArrays",
    "build_algo",
    "export_policy",
    "export_scores",
    "learner_configs",
    "to_mdp_dataset",
    "train_all",
    "train_learner",
]
