"""The run config: per-stage frozen dataclasses composed into one ``RunConfig``, saved beside every run.

YAML is read strictly: an unknown key or a value of the wrong type is an error naming its dotted path
(``train.cql.conservative_weight: unknown option``); nothing is silently dropped.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from guardrl._io import atomic_write_text
from guardrl.data.audit import AuditConfig
from guardrl.envs import Layout, named_layout
from guardrl.envs.gym_env import GymEnvError, GymSpec, parse_rule
from guardrl.envs.layouts import NAMED_LAYOUTS
from guardrl.envs.mujoco import LEVELS
from guardrl.errors import ConfigError
from guardrl.evaluate import EvalConfig
from guardrl.evaluate.gate import GateConfig
from guardrl.evaluate.ope_config import MODEL_FREE, OPEConfig
from guardrl.train.config import (
    CONTINUOUS_DEFAULT_LEARNERS,
    CONTINUOUS_LEARNERS,
    DISCRETE_LEARNERS,
    MODEL_LEARNERS,
    TrainConfig,
    WorldModelConfig,
    learner_kind,
)

MUJOCO_REGIMES = LEVELS
"""D4RL's dataset levels, made here by ``guardrl.data.mujoco``."""
CONTINUOUS_ESTIMATORS: tuple[Any, ...] = ("pdis", "wis", "fqe")
"""The off-policy estimators built for continuous actions (``guardrl.evaluate.continuous_ope``)."""


@dataclass(frozen=True)
class EnvConfig:
    """The environment: a SafeGrid layout (the default), any gymnasium id with discrete actions, SafeNav
    (continuous actions), or none at all.

    ``env: none`` in a run config (``logs_only``) runs on imported logs alone: no stage builds an environment,
    and every estimate comes from the logs and a world model learned from them. ``env: safenav`` runs on
    SafeNav-v0's default layout with continuous actions (``guardrl.run.continuous``)."""

    logs_only: bool = False
    """No simulator: the run has logs only (``collect.dataset``). Written ``env: none`` in YAML."""
    safenav: bool = False
    """SafeNav-v0 (continuous velocity actions, circular hazards). Written ``env: safenav`` in YAML."""
    sepsis: bool = False
    """The sepsis treatment simulator (Sepsis-v0): the run logs its physicians (``collect.regime``: physician or
    physician-hidden) and then judges on those logs alone, as a logs-only run; the simulator's exact values are
    shown beside the estimates and never read by the gate. Written ``env: sepsis`` in YAML."""
    mujoco: Literal["hopper", "halfcheetah", "walker2d"] | None = None
    """A MuJoCo task (gymnasium 1.0's v5 env; the ``mujoco`` extra) with continuous actions and D4RL-style logs
    made here (``collect.regime``: random, medium, medium-replay, medium-expert or expert). Written
    ``env: {mujoco: hopper}`` in YAML."""

    gym_id: str | None = None
    """A gymnasium environment id (e.g. ``FrozenLake-v1``) instead of SafeGrid; the ``layout*`` fields then
    do not apply. Observations must be ``Discrete`` (one-hot encoded) or ``Box`` (flattened)."""
    gym_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for ``gymnasium.make`` (e.g. ``is_slippery: true``)."""
    max_episode_steps: int | None = None
    """Step limit (truncation); required when the id registers none."""
    wrappers: tuple[str, ...] = ()
    """Observation wrappers applied in order, as ``module:Class`` (e.g. ``minigrid.wrappers:ImgObsWrapper``)."""
    imports: tuple[str, ...] = ()
    """Modules imported before ``gymnasium.make``, to register their ids (e.g. ``minigrid``)."""
    cost_rule: str = "info"
    """Safety event when ``info["cost"]`` is absent: ``info`` (none), ``terminated_without_success``, or
    ``reward <op> <number>`` (e.g. ``reward <= -100``)."""
    success_rule: str = "info"
    """Success when ``info["is_success"]`` is absent: ``info`` (none), ``terminated``,
    ``terminated_without_cost``, or ``reward <op> <number>`` (e.g. ``reward > 0``)."""
    optimal_return: float | None = None
    """A known optimal return for a gymnasium env: enables the normalized score (random = 0, optimal = 100)."""
    layout: Literal["default", "drawn", "corridor"] = "default"
    """A named layout: ``default`` (the tutorial's world), ``drawn`` (guardrl's first default) or ``corridor``."""
    layout_seed: int | None = None
    """Hazard draw seed of ``default`` (the tutorial's 42 when unset) and ``drawn`` (2020 when unset)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Layout fields replacing the named layout's (size, start, goal, hazards, slip, max_steps, rewards)."""

    def __post_init__(self) -> None:
        if self.sepsis:  # judged on its logs alone: a logs-only run whose logs the simulator makes
            object.__setattr__(self, "logs_only", True)
        kinds = [k for k, on in (("env: none", self.logs_only), ("env: safenav", self.safenav),
                                 ("env.mujoco", self.mujoco is not None)) if on]  # fmt: skip
        if len(kinds) > 1:
            raise ConfigError(f"{' and '.join(kinds)} exclude each other")
        if kinds:
            if self.gym_id is not None:
                raise ConfigError(f"env.gym_id: a run with {kinds[0]} has no gym_id")
            return
        if self.gym_id is not None:
            try:
                parse_rule(self.cost_rule, "cost")
                parse_rule(self.success_rule, "success")
            except GymEnvError as exc:
                raise ConfigError(str(exc)) from None
            if (self.cost_rule, self.success_rule) == ("terminated_without_success", "terminated_without_cost"):
                raise ConfigError(
                    "env.cost_rule terminated_without_success and env.success_rule terminated_without_cost define "
                    "each event by the other; give one of them its own rule (info, or a reward threshold)"
                )
            if self.max_episode_steps is not None and self.max_episode_steps < 1:
                raise ConfigError("env.max_episode_steps must be at least 1")
            return
        self.build()  # a bad layout is a config error at load time, not halfway through a run

    @property
    def is_gym(self) -> bool:
        return self.gym_id is not None

    @property
    def continuous(self) -> bool:
        """Continuous actions: SafeNav or a MuJoCo task (``guardrl.run.continuous``)."""
        return self.safenav or self.mujoco is not None

    def gym_spec(self) -> GymSpec:
        if self.gym_id is None:
            raise ConfigError("env.gym_id is not set: this run uses SafeGrid")
        return GymSpec(
            env_id=self.gym_id, kwargs=dict(self.gym_kwargs), max_episode_steps=self.max_episode_steps,
            wrappers=self.wrappers, imports=self.imports, cost_rule=self.cost_rule, success_rule=self.success_rule,
        )  # fmt: skip

    def build(self) -> Layout:
        if self.layout_seed is not None and self.layout == "corridor":
            raise ConfigError("env.layout_seed: the corridor layout draws no hazards; remove the seed")
        base = named_layout(self.layout) if self.layout_seed is None else NAMED_LAYOUTS[self.layout](self.layout_seed)  # type: ignore[call-arg]  # corridor has no seed: refused above
        unknown = set(self.overrides) - {f.name for f in dataclasses.fields(Layout)}
        if unknown:
            raise ConfigError(f"env.overrides: unknown layout field(s) {sorted(unknown)}")
        try:
            return Layout.from_dict({**base.to_dict(), **self.overrides})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"env.overrides: {exc}") from None


GRID_REGIMES = ("safe", "noisy", "mixed", "expert")
"""SafeGrid's and SafeNav's logging regimes (the controller with its noise, or the planner for ``expert``)."""
SEPSIS_REGIMES = ("physician", "physician-hidden")
"""Sepsis-v0's: the physicians with their propensities logged, or hidden (the propensity column left empty)."""

Regime = Literal[
    "safe", "noisy", "mixed", "expert", "random", "medium", "medium-replay", "medium-expert", "physician",
    "physician-hidden",
]  # fmt: skip
"""Logging regimes: SafeGrid's and SafeNav's four, D4RL's levels on a MuJoCo task, Sepsis-v0's physicians."""


@dataclass(frozen=True)
class CollectConfig:
    """How the behaviour dataset is logged."""

    regime: Regime = "safe"
    """Dataset regime: ``safe`` (eps=0.22), ``noisy`` (eps=0.6), ``mixed`` (30% random), ``expert``; SafeNav has
    the same four; a MuJoCo task D4RL's five levels: ``random``, ``medium``, ``medium-replay``, ``medium-expert``,
    ``expert``; Sepsis-v0 ``physician`` (the optimal full-state action w.p. 0.95, propensities logged) or
    ``physician-hidden`` (the same without propensities)."""
    n_episodes: int = 500
    """Episodes to log (a MuJoCo task: ``n_steps`` instead)."""
    n_steps: int = 100_000
    """A MuJoCo task: transitions to log, in whole episodes (so at least this many)."""
    seed: int = 0
    """Collection seed."""
    behaviour: str | None = None
    """Gymnasium envs: the behaviour policy, ``module:factory``. The factory is called with
    ``behaviour_kwargs`` and returns ``f(observations (N, d), envs) -> action probabilities (N, A)``
    (e.g. ``guardrl.envs.controllers:toy_text_controller``)."""
    behaviour_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the behaviour factory."""
    dataset: str | None = None
    """Use these logs instead of collecting: a guardrl dataset folder (from ``guardrl import``)."""


@dataclass(frozen=True)
class ServeConfig:
    """Thresholds of deferral, canary routing and rollback (``serve`` in the run config)."""

    min_state_count: int = 5
    """Defer when the state was logged fewer times than this (``out_of_support``)."""
    min_q_gap: float = 0.01
    """Q-learners: defer when the two best Q-values differ by less (scaled reward units: reward x 0.1)."""
    min_prob_gap: float = 0.1
    """BC: defer when the two most probable actions' probabilities differ by less."""
    defer_unsupported: bool = True
    """Defer when the chosen action was logged fewer than ``audit.k`` times in the state."""
    canary_fraction: float = 0.1
    """Canary mode: the share of requests routed to the policy; the rest go to the fallback."""
    rollback_per_1000: float = 2.0
    """Roll back when policy-caused hazard events exceed this many per 1,000 policy decisions."""
    rollback_min_decisions: int = 1000
    """The rate's denominator is at least this many decisions."""
    seed: int = 0
    """Seed of the canary routing draws."""
    max_body_bytes: int = 65536
    """The largest request body the HTTP server reads; a larger one is refused with 413 before it is read."""
    rate_limit_per_minute: int | None = 600
    """Requests one token may make to ``/outcome`` and to ``/labels`` in any 60 seconds (429 beyond);
    ``null``: no limit."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.canary_fraction <= 1.0:
            raise ValueError(f"serve.canary_fraction must lie in [0, 1], got {self.canary_fraction}")
        if self.rollback_per_1000 < 0 or self.rollback_min_decisions < 1:
            raise ValueError("serve.rollback_per_1000 must be >= 0 and serve.rollback_min_decisions >= 1")
        if self.rate_limit_per_minute is not None and self.rate_limit_per_minute < 1:
            raise ValueError(
                f"serve.rate_limit_per_minute must be at least 1 (or null), got {self.rate_limit_per_minute}"
            )
        if self.max_body_bytes < 1024:
            raise ValueError(f"serve.max_body_bytes must be at least 1024, got {self.max_body_bytes}")


@dataclass(frozen=True)
class RayConfig:
    """Where a run's parallel work goes: a Ray cluster, or this machine's processes."""

    address: str | None = None
    """A running Ray cluster (``auto``, ``host:6379`` or ``ray://host:10001``): the portfolio's network learners
    train there, and each policy's off-policy estimates and its rollouts (with a simulator) are one task there,
    which reads the run folder (so the folder must be on storage every node sees). ``null``: the ``RAY_ADDRESS``
    environment variable when it is set, else local processes."""

    def resolved(self) -> str | None:
        """The address in use: this one, else ``RAY_ADDRESS``, else None."""
        return self.address or os.environ.get("RAY_ADDRESS") or None


@dataclass(frozen=True)
class RunConfig:
    """Everything one ``guardrl run`` does; saved as ``config.yaml`` in the run folder."""

    name: str = "default"
    """Run name: artifacts go to ``<runs_dir>/<name>/``."""
    env: EnvConfig = field(default_factory=EnvConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    ope: OPEConfig = field(default_factory=OPEConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    report: bool = True
    """Write ``report.html`` at the end of ``guardrl run``."""

    def __post_init__(self) -> None:
        if self.ope.estimators is None:  # resolved here so that the saved config lists what ran
            chosen = (*MODEL_FREE, "model") if self.env.logs_only else MODEL_FREE
            if self.env.continuous:
                chosen = CONTINUOUS_ESTIMATORS
            object.__setattr__(self, "ope", dataclasses.replace(self.ope, estimators=chosen))
        if self.train.learners is None:
            learners: tuple[str, ...] | Literal["auto"] = CONTINUOUS_DEFAULT_LEARNERS if self.env.continuous else "auto"
            object.__setattr__(self, "train", dataclasses.replace(self.train, learners=learners))
        if self.env.continuous:
            self._check_continuous()
        else:
            only = [n for n in self.train.chosen if learner_kind(n) not in DISCRETE_LEARNERS]
            if only:
                raise ConfigError(f"train.learners: {only} learn continuous actions only (env: safenav or mujoco)")
            if self.env.sepsis:
                if self.collect.regime not in SEPSIS_REGIMES:
                    raise ConfigError(f"collect.regime: a sepsis run logs one of {list(SEPSIS_REGIMES)}, "
                                      f"not {self.collect.regime!r}")  # fmt: skip
                if self.collect.dataset is not None:
                    raise ConfigError("collect.dataset: a sepsis run logs its own patients; remove collect.dataset "
                                      "(or judge imported logs with env: none)")  # fmt: skip
            elif self.collect.regime in SEPSIS_REGIMES:
                raise ConfigError(f"collect.regime: {self.collect.regime!r} logs Sepsis-v0's physicians (env: sepsis)")
            elif self.collect.regime not in GRID_REGIMES and self.collect.dataset is None:
                raise ConfigError(f"collect.regime: {self.collect.regime!r} is a MuJoCo level (env.mujoco)")
        if self.collect.seed in self.evaluate.seeds:
            raise ConfigError("evaluate.seeds must not include collect.seed: evaluate on held-out seeds")
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ConfigError(f"name: {self.name!r} is not a valid run folder name")
        if self.env.logs_only:
            if self.collect.dataset is None and not self.env.sepsis:
                raise ConfigError("collect.dataset: a logs-only run (env: none) needs imported logs (guardrl import)")
            if self.collect.behaviour is not None:
                raise ConfigError("collect.behaviour: a logs-only run logs nothing; it reads collect.dataset")
            if self.train.encoder == "grid":
                raise ConfigError("train.encoder: 'grid' needs SafeGrid's (x, y) observations; use auto, index or mlp")
            if self.ope.validate:
                raise ConfigError("ope.validate: a logs-only run has no truth to validate against")
            if "model" not in self.ope.chosen:
                raise ConfigError("ope.estimators: a logs-only run needs the model estimator (its hazard bound)")
        elif self.env.is_gym:
            if self.collect.behaviour is None and self.collect.dataset is None:
                raise ConfigError(
                    f"collect: env.gym_id {self.env.gym_id!r} needs collect.behaviour (module:factory) "
                    "or collect.dataset (imported logs)"
                )
            if self.train.encoder == "grid":
                raise ConfigError("train.encoder: 'grid' needs SafeGrid's (x, y) observations; use auto, index or mlp")
            if self.ope.validate:
                raise ConfigError("ope.validate: reference policies with exact truth exist on SafeGrid only")
        elif self.collect.behaviour is not None:
            raise ConfigError("collect.behaviour: applies to gymnasium envs (env.gym_id); SafeGrid uses regime")

    def _check_continuous(self) -> None:
        """SafeNav and MuJoCo runs: continuous learners and estimators, the env's own logging regimes."""
        what = "SafeNav" if self.env.safenav else "MuJoCo"
        if self.train.learners == "auto":
            raise ConfigError(f"train.learners: auto is the discrete portfolio; a {what} run lists its learners, "
                              f"from {list(CONTINUOUS_LEARNERS)}")  # fmt: skip
        wrong = [n for n in self.train.chosen if n not in CONTINUOUS_LEARNERS]
        if wrong:
            raise ConfigError(
                f"train.learners: {wrong} learn discrete actions; a {what} run takes {list(CONTINUOUS_LEARNERS)}"
            )
        regimes = MUJOCO_REGIMES if self.env.mujoco is not None else GRID_REGIMES
        if self.collect.regime not in regimes:
            raise ConfigError(f"collect.regime: a {what} run logs one of {list(regimes)}, not {self.collect.regime!r}")
        if "bc" not in self.train.chosen:
            raise ConfigError("train.learners: the gate compares every candidate with bc; list it")
        unknown = [e for e in self.ope.chosen if e not in CONTINUOUS_ESTIMATORS]
        if unknown:
            raise ConfigError(
                f"ope.estimators: {unknown} are not built for continuous actions; choose from "
                f"{list(CONTINUOUS_ESTIMATORS)}"
            )
        if self.collect.behaviour is not None:
            raise ConfigError(f"collect.behaviour: a {what} run logs one of its regimes (collect.regime)")
        if self.ope.validate:
            raise ConfigError("ope.validate: reference policies with exact truth exist on SafeGrid only")

    @property
    def train_needs_world_model(self) -> bool:
        """A learner plans in the world model (``mopo``, ``morel``)."""
        return any(kind in MODEL_LEARNERS for kind in self.train.kinds)

    @property
    def needs_world_model(self) -> bool:
        """The run fits a world model: the model estimator or a model-based learner uses it."""
        return "model" in self.ope.chosen or self.train_needs_world_model


def to_dict(obj: Any) -> Any:
    """A config dataclass as plain YAML-friendly data (tuples become lists; a logs-only env is ``none``, SafeNav
    ``safenav``, the sepsis simulator ``sepsis``)."""
    if isinstance(obj, EnvConfig) and obj.sepsis:
        return "sepsis"
    if isinstance(obj, EnvConfig) and obj.logs_only:
        return "none"
    if isinstance(obj, EnvConfig) and obj.safenav:
        return "safenav"
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def _coerce(value: Any, tp: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is EnvConfig and value == "none":
        return EnvConfig(logs_only=True)
    if tp is EnvConfig and value == "safenav":
        return EnvConfig(safenav=True)
    if tp is EnvConfig and value == "sepsis":
        return EnvConfig(sepsis=True)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, path)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{path}: invalid value {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
        args = typing.get_args(tp)
        item_tp = args[0] if len(args) == 2 and args[1] is Ellipsis else Any
        return tuple(_coerce(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if tp is Any:
        return value
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices or isinstance(value, bool) != any(isinstance(c, bool) for c in choices):
            raise ConfigError(f"{path}: {value!r} is not one of {', '.join(map(str, choices))}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported field type {tp}")


def from_dict(cls: type, data: dict[str, Any], path: str = "") -> Any:
    """Build config dataclass ``cls`` from ``data``; unknown keys and wrong types are errors."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    prefix = f"{path}." if path else ""
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown option (known: {', '.join(sorted(names))})")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path or cls.__name__}: {exc}") from None


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML run config (missing keys take the built-in defaults); ``None`` gives the defaults.
    ``overrides`` replace the file's keys (nested mappings merged) before the config is checked."""
    if path is None:
        return from_dict(RunConfig, overrides or {})
    return load_yaml(RunConfig, Path(path), "config file", overrides)


def _merged(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def load_yaml(cls: type, path: Path, what: str, overrides: dict[str, Any] | None = None) -> Any:
    """Config dataclass ``cls`` from a YAML file (an empty file gives the defaults); every error names the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    if overrides:
        data = _merged(data, overrides)
    try:
        return from_dict(cls, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def save_config(cfg: RunConfig, path: Path) -> None:
    atomic_write_text(Path(path), yaml.safe_dump(to_dict(cfg), sort_keys=False))
