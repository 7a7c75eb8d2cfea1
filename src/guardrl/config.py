"""The run config: per-stage frozen dataclasses composed into one ``RunConfig``, saved beside every run.

YAML is read strictly: an unknown key or a value of the wrong type is an error naming its dotted path
(``train.cql.conservative_weight: unknown option``); nothing is silently dropped.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from guardrl._io import atomic_write_text
from guardrl.data.audit import AuditConfig
from guardrl.envs import Layout, named_layout
from guardrl.envs.gym_env import GymEnvError, GymSpec, parse_rule
from guardrl.envs.layouts import DEFAULT_LAYOUT_SEED, default_layout
from guardrl.evaluate import EvalConfig
from guardrl.evaluate.gate import GateConfig
from guardrl.evaluate.ope_config import OPEConfig
from guardrl.serve.guard import ServeConfig
from guardrl.train.config import TrainConfig


@dataclass(frozen=True)
class EnvConfig:
    """The environment: a SafeGrid layout (the default), or any gymnasium id with discrete actions."""

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
    layout: str = "default"
    """A named layout: ``default`` (the tutorial's) or ``corridor``."""
    layout_seed: int = DEFAULT_LAYOUT_SEED
    """Hazard draw seed for the ``default`` layout."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Layout fields replacing the named layout's (size, start, goal, hazards, slip, max_steps, rewards)."""

    def __post_init__(self) -> None:
        if self.gym_id is not None:
            try:
                parse_rule(self.cost_rule, "cost")
                parse_rule(self.success_rule, "success")
            except GymEnvError as exc:
                raise ConfigError(str(exc)) from None
            if self.max_episode_steps is not None and self.max_episode_steps < 1:
                raise ConfigError("env.max_episode_steps must be at least 1")
            return
        self.build()  # a bad layout is a config error at load time, not halfway through a run

    @property
    def is_gym(self) -> bool:
        return self.gym_id is not None

    def gym_spec(self) -> GymSpec:
        if self.gym_id is None:
            raise ConfigError("env.gym_id is not set: this run uses SafeGrid")
        return GymSpec(
            env_id=self.gym_id, kwargs=dict(self.gym_kwargs), max_episode_steps=self.max_episode_steps,
            wrappers=self.wrappers, imports=self.imports, cost_rule=self.cost_rule, success_rule=self.success_rule,
        )  # fmt: skip

    def build(self) -> Layout:
        base = default_layout(self.layout_seed) if self.layout == "default" else named_layout(self.layout)
        unknown = set(self.overrides) - {f.name for f in dataclasses.fields(Layout)}
        if unknown:
            raise ConfigError(f"env.overrides: unknown layout field(s) {sorted(unknown)}")
        try:
            return Layout.from_dict({**base.to_dict(), **self.overrides})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"env.overrides: {exc}") from None


@dataclass(frozen=True)
class CollectConfig:
    """How the behaviour dataset is logged."""

    regime: str = "safe"
    """Dataset regime: ``safe`` (eps=0.22), ``noisy`` (eps=0.6), ``mixed`` (30% random), ``expert``."""
    n_episodes: int = 500
    """Episodes to log."""
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
    serve: ServeConfig = field(default_factory=ServeConfig)
    report: bool = True
    """Write ``report.html`` at the end of ``guardrl run``."""

    def __post_init__(self) -> None:
        if self.collect.seed in self.evaluate.seeds:
            raise ConfigError("evaluate.seeds must not include collect.seed: evaluate on held-out seeds")
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ConfigError(f"name: {self.name!r} is not a valid run folder name")
        if self.env.is_gym:
            if self.collect.behaviour is None and self.collect.dataset is None:
                raise ConfigError(
                    f"collect: env.gym_id {self.env.gym_id!r} needs collect.behaviour (module:factory) "
                    "or collect.dataset (imported logs)"
                )
            if self.train.encoder == "grid":
                raise ConfigError("train.encoder: 'grid' needs SafeGrid's (x, y) observations; use auto or mlp")
            if self.ope.validate:
                raise ConfigError("ope.validate: reference policies with exact truth exist on SafeGrid only")
        elif self.collect.behaviour is not None:
            raise ConfigError("collect.behaviour: applies to gymnasium envs (env.gym_id); SafeGrid uses regime")


class ConfigError(ValueError):
    """A config file or value that cannot be used; the message names the field."""


def to_dict(obj: Any) -> Any:
    """A config dataclass as plain YAML-friendly data (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def _coerce(value: Any, tp: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
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


def load_config(path: Path | None) -> RunConfig:
    """Read a YAML run config (missing keys take the built-in defaults); ``None`` gives the defaults."""
    if path is None:
        return RunConfig()
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    try:
        return from_dict(RunConfig, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def save_config(cfg: RunConfig, path: Path) -> None:
    atomic_write_text(Path(path), yaml.safe_dump(to_dict(cfg), sort_keys=False))
