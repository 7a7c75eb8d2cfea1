"""Learner configs: small frozen dataclasses translated into d3rlpy 2.8.1 configs without filtering.

Every field maps to a named d3rlpy argument; ``d3rlpy_kwargs`` passes any further d3rlpy option through
unchanged, so a misspelt or nonexistent option (say ``conservative_weight``, which ``DiscreteCQLConfig`` does
not have: its weight is ``alpha``) fails loudly instead of being dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

import numpy as np

from guardrl.errors import GuardrlError


class LearnerConfigError(GuardrlError, ValueError):
    """A learner option that d3rlpy does not accept."""


LRSchedule = Literal["constant", "cosine"]
TDLoss = Literal["mse", "huber"]
Encoder = Literal["auto", "grid", "index", "mlp"]
DiscreteLearner = Literal["bc", "cql", "dqn", "bcq", "spibb", "mopo", "morel"]
ContinuousLearner = Literal["bc", "td3bc", "iql", "cql"]
"""The learners of a run with continuous actions (``guardrl.train.continuous``); ``td3bc`` and ``iql`` are
continuous-only, ``bc`` and ``cql`` name the continuous versions there."""
Learner = Literal[DiscreteLearner, ContinuousLearner]
TABULAR_LEARNERS: tuple[str, ...] = ("spibb", "mopo", "morel")
"""Learners that plan over a table of states instead of training networks through d3rlpy."""
MODEL_LEARNERS: tuple[str, ...] = ("mopo", "morel")
"""Learners that plan in the run's world model (so a run with them fits one)."""
DEFAULT_LEARNERS: tuple[Learner, ...] = ("bc", "cql")
"""What a bare :class:`TrainConfig` trains (a run config resolves its own default: ``auto``)."""
PORTFOLIO_SETTINGS: dict[str, str] = {"cql": "alpha", "spibb": "n_wedge", "mopo": "penalty", "morel": "min_count"}
"""The key setting a candidate's name may fix after a dash: ``mopo-0.05`` is MOPO with ``penalty`` 0.05."""
AUTO_PORTFOLIO: tuple[str, ...] = (
    "bc", "cql-1.5", "spibb-10", "spibb-20", "mopo-0.05", "mopo-0.1", "morel-5", "morel-10",
)  # fmt: skip
"""``train.learners: auto``, the default of discrete runs: BC and each learner at two values of its key setting,
the best two of the development seeds' measurements (``bench/tabular_dev.py``: SPIBB's N∧ 20 and 10, MOPO's
penalty 0.05 and 0.1; MOReL's minimum count at the audit's k and twice it; CQL's alpha 1.5). The trainer keeps
what applies to the logs: the tabular planners where the audit indexes the states (then CQL, about a hundred times
their training time, is left out), MOPO and MOReL where the world model lists outcomes, and CQL otherwise."""
CONTINUOUS_DEFAULT_LEARNERS: tuple[Learner, ...] = ("bc", "td3bc", "cql")
"""The default of a continuous run (IQL fails on SafeNav: README, Continuous actions)."""
LR_SCHEDULES: tuple[str, ...] = get_args(LRSchedule)
TD_LOSSES: tuple[str, ...] = get_args(TDLoss)
ENCODERS: tuple[str, ...] = get_args(Encoder)
LEARNERS: tuple[str, ...] = get_args(Learner)
DISCRETE_LEARNERS: tuple[str, ...] = get_args(DiscreteLearner)
CONTINUOUS_LEARNERS: tuple[ContinuousLearner, ...] = get_args(ContinuousLearner)


@dataclass(frozen=True)
class BCConfig:
    """Discrete behaviour cloning (d3rlpy ``DiscreteBCConfig``)."""

    n_steps: int = 1000
    """Gradient steps: all of them with ``stop: steps``, the fewest otherwise."""
    stop: Literal["epochs", "held_out", "steps"] = "epochs"
    """How long BC trains. ``epochs``: ``n_epochs`` passes over the logged transitions, at least ``n_steps`` and
    at most ``max_steps`` gradient steps, so the length follows the data (16,878 transitions: 1,000 steps;
    170,000: 1,993; 1.7 M: 19,811). ``held_out``: until the negative log-likelihood of the logged actions on
    held-out episodes stops improving (checked every ``eval_every`` steps, ``patience`` checks in a row without
    a gain of ``min_delta``), between ``n_steps`` and ``max_steps`` steps, keeping the weights of the best check.
    ``steps``: exactly ``n_steps``."""
    n_epochs: float = 3.0
    """Passes over the logged transitions with ``stop: epochs``."""
    max_steps: int = 20_000
    """The most gradient steps with ``stop: epochs`` or ``held_out``."""
    holdout: float = 0.1
    """Share of the logged episodes held out to judge when to stop (``stop: held_out``); transitions are held
    out instead when the logs have fewer than 20 episodes."""
    eval_every: int = 250
    """Gradient steps between held-out checks."""
    patience: int = 4
    """Held-out checks in a row without improvement that stop training."""
    min_delta: float = 1e-3
    """The least fall of the held-out loss that counts as an improvement."""
    batch_size: int = 256
    """Transitions per gradient step."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    hidden_units: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the MLP encoder."""
    beta: float = 0.5
    """d3rlpy's logit regularization factor."""
    lr_schedule: LRSchedule = "cosine"
    """``cosine`` anneals the learning rate to 0 over the planned steps (those of ``stop: epochs`` or ``steps``;
    ``max_steps`` with ``held_out``); ``constant`` keeps it fixed."""
    d3rlpy_kwargs: dict[str, Any] = field(default_factory=dict)
    """Further DiscreteBCConfig arguments, passed through unfiltered."""

    def __post_init__(self) -> None:
        if self.stop not in ("epochs", "held_out", "steps"):
            raise ValueError(f"bc.stop must be epochs, held_out or steps, got {self.stop!r}")
        if self.stop != "steps" and self.max_steps < self.n_steps:
            raise ValueError(f"bc.max_steps ({self.max_steps}) is below bc.n_steps ({self.n_steps})")
        if self.stop == "epochs" and self.n_epochs <= 0:
            raise ValueError(f"bc.n_epochs must be positive, got {self.n_epochs}")
        if self.stop == "held_out":
            if not 0.0 < self.holdout < 1.0:
                raise ValueError(f"bc.holdout must lie in (0, 1), got {self.holdout}")
            if self.eval_every < 1 or self.patience < 1:
                raise ValueError("bc.eval_every and bc.patience must be at least 1")

    def planned_steps(self, n_transitions: int) -> int:
        """The gradient steps BC plans on ``n_transitions`` logged transitions: the most it may take, which the
        learning-rate schedule spans (``held_out`` may stop before)."""
        if self.stop == "steps":
            return self.n_steps
        if self.stop == "held_out":
            return self.max_steps
        by_epochs = int(np.ceil(self.n_epochs * n_transitions / self.batch_size))
        return int(np.clip(by_epochs, self.n_steps, self.max_steps))


@dataclass(frozen=True)
class QLearnerConfig:
    """Fields shared by the Q-learning learners (DQN, CQL, BCQ): Double-DQN style targets, discrete actions."""

    n_steps: int = 3000
    """Gradient steps."""
    batch_size: int = 256
    """Transitions per gradient step."""
    learning_rate: float = 1e-3
    """Adam learning rate."""
    hidden_units: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the MLP encoder."""
    gamma: float = 0.99
    """Discount factor used in training (evaluation is undiscounted)."""
    target_update_interval: int = 200
    """Gradient steps between target-network synchronizations."""
    n_critics: int = 2
    """Q-function ensemble size; targets take the minimum over the ensemble."""
    reward_scale: float = 0.1
    """Rewards are multiplied by this in training (d3rlpy ``MultiplyRewardScaler``); keeps Q targets O(1-10)."""
    td_loss: TDLoss = "mse"
    """``mse``: squared TD error, whose minimizer is the *mean* target, so a rare catastrophe (a 1-in-80 slip
    into a hazard) lowers the value of the move that risks it. ``huber``: d3rlpy's default (threshold 1 in scaled
    reward units); a hazard's TD error lies far beyond the threshold, its gradient is clipped to 1, and the
    estimate drifts towards the median outcome, which ignores rare events."""
    lr_schedule: LRSchedule = "cosine"
    """``cosine`` anneals the learning rate to 0 over ``n_steps``, so the greedy policy settles instead of
    flipping with each target sync; ``constant`` keeps it fixed."""
    d3rlpy_kwargs: dict[str, Any] = field(default_factory=dict)
    """Further arguments of the d3rlpy config, passed through unfiltered."""


@dataclass(frozen=True)
class CQLConfig(QLearnerConfig):
    """Discrete conservative Q-learning (d3rlpy ``DiscreteCQLConfig``, Double-DQN based)."""

    alpha: float = 1.5
    """Conservative weight (d3rlpy's ``alpha``; there is no ``conservative_weight`` in the discrete config).
    1.5 was chosen on development dataset seeds 100-115 with the squared TD loss: 1.5 and 1.75 passed 14 of 16
    (normalized score >= 99 and hazard <= 0.5%), 1.25 and 2 passed 12, 3 passed 11; d3rlpy's default 1.0 with its
    Huber loss passed 4 of 8."""


@dataclass(frozen=True)
class DQNConfig(QLearnerConfig):
    """Plain offline DQN (d3rlpy ``DQNConfig``): the unconservative baseline CQL and BCQ are meant to fix."""

    n_critics: int = 1
    """One Q-network, as in DQN."""


@dataclass(frozen=True)
class BCQConfig(QLearnerConfig):
    """Discrete batch-constrained Q-learning (d3rlpy ``DiscreteBCQConfig``)."""

    action_flexibility: float = 0.3
    """Actions whose imitator probability is below this fraction of the most likely action's are never chosen."""
    beta: float = 0.01
    """Logit regularization of the imitator (d3rlpy's default 0.5 flattens it until every action passes the
    flexibility mask on SafeGrid, and BCQ degrades into DQN)."""
    share_encoder: bool = False
    """Share the Q encoder with the imitator (d3rlpy's default, meant for pixels); separate nets learn faster
    on small vector observations."""


@dataclass(frozen=True)
class PlannerConfig:
    """Fields shared by the tabular learners (SPIBB, MOPO, MOReL), which plan by dynamic programming over the
    logged states (distinct observation rows, or the audit's bins) instead of training networks."""

    gamma: float = 0.99
    """Discount of the planning backups (the evaluation is undiscounted)."""
    horizon: int | None = None
    """Backups per plan; ``None``: the longest logged episode."""
    hazard_budget: bool = True
    """Maximize return subject to expected hazard per episode <= the gate's ``hazard_limit`` (one config value
    for both), with a Lagrange multiplier on the cost found by bisection; ``False``: maximize return only."""
    max_states: int = 5000
    """Largest table planned over; more states is refused with a clear error."""

    def __post_init__(self) -> None:
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must lie in (0, 1], got {self.gamma}")
        if self.horizon is not None and self.horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {self.horizon}")


@dataclass(frozen=True)
class SPIBBConfig(PlannerConfig):
    """Π_b-SPIBB (Laroche, Trichelair & Tachet des Combes, ICML 2019) on the maximum-likelihood model of the
    logs: a (state, action) pair logged fewer than ``n_wedge`` times keeps the behaviour policy's probability;
    the rest of the state's probability goes to the best well-logged action. Deployed greedily (the action the
    SPIBB policy gives the most probability), like every guardrl policy."""

    n_wedge: int = 20
    """N∧: pairs logged fewer times than this are bootstrapped (keep the behaviour's probability). On development
    seeds 100-107 (bench/tabular_dev.py) 20 met the bar on 22 of 24 runs, 10 on 21, 30 on 12."""
    max_iterations: int = 50
    """Policy-iteration rounds; it stops earlier when the policy no longer changes."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_wedge < 1 or self.max_iterations < 1:
            raise ValueError("n_wedge and max_iterations must be >= 1")


@dataclass(frozen=True)
class MOPOConfig(PlannerConfig):
    """MOPO-style planning (Yu et al., 2020) in the run's world model: the reward is lowered by ``penalty`` times
    the logged reward range times the members' disagreement about the next state, and a cost is taken at its
    upper bound over the members; a step to a state the logs never hold is valued as the worst logged reward
    and counted as a hazard."""

    penalty: float = 0.05
    """λ: reward minus λ · (logged reward range) · disagreement (total variation, in [0, 1]). On development
    seeds 100-107 (bench/tabular_dev.py) 0.05 met the bar on 21 of 24 runs, 0.1 on 18, 0.3 on 15."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.penalty < 0:
            raise ValueError(f"penalty must be >= 0, got {self.penalty}")


@dataclass(frozen=True)
class MOReLConfig(PlannerConfig):
    """MOReL-style planning (Kidambi et al., 2020) in the run's world model: a (state, action) pair the logs
    hold fewer than ``min_count`` times, or on which the members disagree by more than ``max_disagreement``, is
    unknown and leads to an absorbing halt with reward ``-halt_penalty`` (counted as a hazard); costs are taken
    at their upper bound over the members."""

    halt_penalty: float | None = None
    """κ; ``None``: the logged reward range (max - min reward)."""
    min_count: int | None = None
    """``None``: the audit's ``k``, so the planner never takes an action the gate calls unsupported."""
    max_disagreement: float = 0.5
    """Largest member disagreement (total variation of next-state distributions) still called known."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.halt_penalty is not None and self.halt_penalty < 0:
            raise ValueError(f"halt_penalty must be >= 0, got {self.halt_penalty}")
        if self.min_count is not None and self.min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {self.min_count}")


@dataclass(frozen=True)
class ContinuousTrainConfig:
    """The continuous learners' shared settings (``train.continuous``); the rest are the references' own
    (``guardrl.train.continuous``)."""

    n_steps: int = 10_000
    """Gradient steps per learner."""
    batch_size: int = 256
    """Mini-batch size of every continuous learner."""
    hidden_units: tuple[int, ...] = (64, 64)
    """Hidden layer widths of every network (actor, critics, value)."""
    conservative_weight: float = 5.0
    """CQL's conservative weight (d3rlpy's ``conservative_weight``, held fixed as CORL does); what a sweep's
    ``alphas`` set for continuous CQL."""

    def __post_init__(self) -> None:
        if self.n_steps < 1 or self.batch_size < 1 or not self.hidden_units or min(self.hidden_units) < 1:
            raise ValueError("train.continuous: n_steps and batch_size must be >= 1, hidden_units non-empty")
        if not self.conservative_weight >= 0:
            raise ValueError(f"train.continuous.conservative_weight must be >= 0, got {self.conservative_weight}")


@dataclass(frozen=True)
class TrainConfig:
    """Which learners to train on the dataset, and how."""

    learners: tuple[str, ...] | Literal["auto"] | None = None
    """Candidates to train, in order: any of ``bc``, ``cql``, ``dqn``, ``bcq`` (d3rlpy networks), ``spibb``,
    ``mopo``, ``morel`` (tabular planners; the last two plan in the run's world model), each optionally with its
    key setting after a dash (``cql-3``: alpha 3; ``spibb-10``: N∧ 10; ``mopo-0.2``: penalty 0.2; ``morel-10``:
    minimum count 10). ``auto``: the portfolio ``AUTO_PORTFOLIO``, of which the trainer keeps what applies to the
    logs and says why it skipped the rest. ``None``: the run's default, resolved when a run config loads: ``auto``
    for discrete actions, ``bc``, ``td3bc`` and ``cql`` for continuous ones."""
    bc: BCConfig = field(default_factory=BCConfig)
    cql: CQLConfig = field(default_factory=CQLConfig)
    dqn: DQNConfig = field(default_factory=DQNConfig)
    bcq: BCQConfig = field(default_factory=BCQConfig)
    spibb: SPIBBConfig = field(default_factory=SPIBBConfig)
    mopo: MOPOConfig = field(default_factory=MOPOConfig)
    morel: MOReLConfig = field(default_factory=MOReLConfig)
    continuous: ContinuousTrainConfig = field(default_factory=ContinuousTrainConfig)
    """Runs with continuous actions (``env: safenav``)."""
    seed: int = 0
    """Seeds network initialization (torch, in a forked RNG) and batch sampling (numpy Generator)."""
    device: str = "cpu"
    """``cpu``, or ``cuda`` / ``cuda:N`` when available."""
    encoder: Encoder = "auto"
    """How the network learners read states. ``grid``: a one-hot of SafeGrid's (x, y) cell; ``index``: an
    embedding of the logged state nearest to the observation, for discrete states the audit indexes exactly
    (imported logs, FrozenLake); ``mlp``: the raw observations through an MLP; ``auto``: grid on SafeGrid, index
    where the audit indexes the logged observations exactly (at most ``audit.max_exact_states``), mlp otherwise
    (continuous observations)."""
    torch_threads: int = 1
    """torch intra-op threads during training; small MLPs run fastest on one."""
    workers: int = 2
    """Network learners trained at once, each in a forked process on the CPU (d3rlpy's update loop holds the GIL,
    so threads would not overlap); 1: one after the other. The results are the same either way (each learner
    seeds its own randomness). The tabular learners take well under a second each and run in the parent."""
    log_every: int = 100
    """Gradient steps between learning-curve points."""
    monitor_every: int = 500
    """Gradient steps between exact evaluations of the greedy policy (SafeGrid only; plots, never selection)."""

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"train.workers must be at least 1, got {self.workers}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"train.encoder must be one of {list(ENCODERS)}, got {self.encoder!r}")
        unknown = [name for name in self.chosen if learner_kind(name) not in LEARNERS]
        if unknown:
            raise ValueError(f"train.learners: unknown {unknown}; choose from {list(LEARNERS)} (a setting may follow "
                             "a dash: cql-3, spibb-10, mopo-0.1, morel-10), or auto")  # fmt: skip
        for name in self.chosen:
            self.config_of(name)  # a setting that does not parse fails here, naming the candidate
        if len(set(self.chosen)) != len(self.chosen):
            raise ValueError(f"train.learners: a learner is listed twice in {list(self.chosen)}")
        if not self.chosen:
            raise ValueError("train.learners: name at least one learner")

    @property
    def chosen(self) -> tuple[str, ...]:
        """The candidates to train (``bc`` and ``cql`` when unset; a run config resolves this at load)."""
        if self.learners == "auto":
            return AUTO_PORTFOLIO
        return DEFAULT_LEARNERS if self.learners is None else tuple(self.learners)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The learner of each chosen candidate (``mopo`` for ``mopo-0.05``)."""
        return tuple(learner_kind(name) for name in self.chosen)

    def config_of(self, name: str) -> Any:
        """The config of candidate ``name``: its learner's config with the key setting its name fixes."""
        kind, _, setting = name.partition("-")
        base = getattr(self, kind, None) if kind in DISCRETE_LEARNERS else None
        if not setting:
            return base
        key = PORTFOLIO_SETTINGS.get(kind)
        if key is None or base is None:
            raise ValueError(f"train.learners: {name!r}: only {', '.join(PORTFOLIO_SETTINGS)} take a setting "
                             "after a dash")  # fmt: skip
        field_type = type(getattr(base, key)) if getattr(base, key) is not None else int
        try:
            value = int(setting) if field_type is int else float(setting)
        except ValueError:
            raise ValueError(f"train.learners: {name!r}: {setting!r} is not a value of {kind}'s {key}") from None
        return replace(base, **{key: value})


def learner_kind(name: str) -> str:
    """The learner behind a candidate's name: ``mopo`` for ``mopo-0.05``, ``bc`` for ``bc``."""
    return name.partition("-")[0]


NetworkConfig = BCConfig | CQLConfig | DQNConfig | BCQConfig
"""Configs of the learners trained as d3rlpy networks."""
LearnerConfig = NetworkConfig | SPIBBConfig | MOPOConfig | MOReLConfig


@dataclass(frozen=True)
class WorldModelConfig:
    """The world model learned from the logs (``world_model`` in the run config): an ensemble of small networks
    predicting the next observation, and from (observation, action, next observation) the reward, the cost and
    the termination. It feeds model-based OPE and its disagreement is the model's uncertainty."""

    n_members: int = 5
    """Ensemble members; each trains on its own bootstrap resample of the training transitions."""
    hidden_units: tuple[int, ...] = (64, 64)
    """Hidden layer widths of each member's two networks (transition, outcome)."""
    steps: int = 1500
    """Gradient steps (all members at once)."""
    batch_size: int = 256
    """Transitions per member in each gradient step."""
    learning_rate: float = 3e-3
    """Adam's learning rate (cosine-annealed to 0 over ``steps``)."""
    holdout: float = 0.1
    """Share of episodes held out of training to measure the model's accuracy (reported, never used to fit)."""
    max_classes: int = 64
    """The next observation is predicted as a class (one of the changes, or of the next observations, seen in
    the logs) when the logs hold at most this many distinct ones; otherwise as a Gaussian change."""
    seed: int = 0
    """Seeds the split, the bootstrap resamples, the initialization and the batches."""

    def __post_init__(self) -> None:
        if self.n_members < 2:
            raise ValueError(f"world_model.n_members must be at least 2 (disagreement needs two), got {self.n_members}")
        if not 0.0 < self.holdout < 0.5:
            raise ValueError(f"world_model.holdout must lie in (0, 0.5), got {self.holdout}")
        if self.steps < 1 or self.batch_size < 1 or self.max_classes < 2:
            raise ValueError("world_model.steps and batch_size must be >= 1, max_classes >= 2")
