"""Any gymnasium environment with a ``Discrete`` action space, run as a batch of episodes.

guardrl's pipeline needs three things from an environment: flat float observations, a safety-event signal
(``cost``) and a success signal. :class:`GymSimulator` provides them for any gymnasium id:

* observations: a ``Discrete(n)`` space is one-hot encoded to ``n`` floats, a ``Box`` is flattened. Other
  spaces (``Dict``, ``Tuple``...) need a wrapper first, named in ``wrappers`` (for MiniGrid:
  ``minigrid.wrappers:ImgObsWrapper``).
* cost: ``info["cost"]`` when the environment provides it, else a rule (:func:`parse_rule`), for instance
  ``reward <= -100`` (CliffWalking) or ``terminated_without_success`` (FrozenLake's holes, MiniGrid's lava).
* success: ``info["is_success"]`` when provided, else a rule such as ``reward > 0``.

:meth:`GymSimulator.simulate` steps N episodes together with **one policy call per time step** for all of
them (one forward pass of a network), and returns the same time-major :class:`~guardrl.envs.Episodes` record
as the vectorized SafeGrid, so rollouts, datasets and metrics are shared.
"""

from __future__ import annotations

import importlib
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

from guardrl.envs.solve import sample_actions
from guardrl.envs.vector import Episodes, Policy
from guardrl.errors import GuardrlError

_COMPARE = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt, "==": operator.eq}
_RULE = re.compile(r"^\s*reward\s*(<=|>=|==|<|>)\s*(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*$")
COST_RULES = ("info", "terminated_without_success", "reward <op> <number>")
SUCCESS_RULES = ("info", "terminated", "terminated_without_cost", "reward <op> <number>")


class GymEnvError(GuardrlError, ValueError):
    """An environment, wrapper, rule or behaviour policy that guardrl cannot use; the message says which."""


@dataclass(frozen=True)
class Rule:
    """A parsed cost or success rule."""

    kind: str  # "info" | "terminated" | "terminated_without_success" | "terminated_without_cost" | "reward"
    op: str = ""
    threshold: float = 0.0

    def reward_test(self, rewards: NDArray[np.float64]) -> NDArray[np.bool_]:
        return np.asarray(_COMPARE[self.op](rewards, self.threshold), dtype=bool)


def parse_rule(text: str, what: str) -> Rule:
    """Parse a ``cost_rule`` (``what="cost"``) or ``success_rule`` (``what="success"``)."""
    allowed = COST_RULES if what == "cost" else SUCCESS_RULES
    match = _RULE.match(text)
    if match:
        return Rule("reward", match.group(1), float(match.group(2)))
    name = text.strip()
    if name in allowed and "<" not in name:
        return Rule(name)
    raise GymEnvError(f"env.{what}_rule: {text!r} is not a rule; use one of {', '.join(allowed)}")


def rule_events(
    cost_rule: Rule,
    success_rule: Rule,
    rewards: NDArray[np.floating],
    terminated: NDArray[np.bool_],
    info_cost: NDArray[np.float64] | None = None,
    info_success: NDArray[np.int8] | None = None,
) -> tuple[NDArray[np.float64] | None, NDArray[np.bool_] | None]:
    """Per-step cost and success: what the environment reported where it did, the rules elsewhere.

    ``info_cost`` holds ``info["cost"]`` per step (NaN where absent), ``info_success`` ``info["is_success"]``
    (1/0, -1 where absent); a ``terminated_without_cost`` success is always derived from the final cost.
    Without them (logs that did not record events), a result is ``None`` where its rule is ``info`` and so
    cannot be computed from rewards and terminations.
    """
    rewards64 = np.asarray(rewards, dtype=np.float64)
    terminated = np.asarray(terminated, dtype=bool)
    success: NDArray[np.bool_] | None = None
    if success_rule.kind == "reward":
        success = success_rule.reward_test(rewards64)
    elif success_rule.kind == "terminated":
        success = terminated.copy()
    if info_success is not None:
        base = success if success is not None else np.zeros(len(rewards), dtype=bool)
        success = np.where(info_success >= 0, info_success == 1, base)
    cost: NDArray[np.float64] | None = None
    if cost_rule.kind == "reward":
        cost = cost_rule.reward_test(rewards64).astype(np.float64)
    elif cost_rule.kind == "terminated_without_success" and success is not None:
        cost = (terminated & ~success).astype(np.float64)
    if info_cost is not None:
        base_cost = cost if cost is not None else np.zeros(len(rewards))
        cost = np.where(np.isnan(info_cost), base_cost, info_cost)
    if success_rule.kind == "terminated_without_cost" and cost is not None:
        success = terminated & (cost == 0)
    return cost, success


def load_callable(spec: str, field_name: str) -> Callable[..., Any]:
    """``"package.module:attribute"`` -> the attribute (an importable callable)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise GymEnvError(f"{field_name}: {spec!r} must look like 'package.module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise GymEnvError(f"{field_name}: cannot import {module_name!r} ({exc})") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise GymEnvError(f"{field_name}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise GymEnvError(f"{field_name}: {spec!r} is not callable")
    return obj


@dataclass(frozen=True)
class GymSpec:
    """How to build one environment instance, and how to read its safety events."""

    env_id: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int | None = None
    wrappers: tuple[str, ...] = ()
    imports: tuple[str, ...] = ()
    cost_rule: str = "info"
    success_rule: str = "info"

    def make(self) -> gym.Env:
        for name in self.imports:
            try:
                importlib.import_module(name)  # registers the package's ids (e.g. minigrid)
            except ImportError as exc:
                raise GymEnvError(f"env.imports: cannot import {name!r} ({exc}); is its extra installed?") from None
        kwargs = dict(self.kwargs)
        if self.max_episode_steps is not None:
            kwargs["max_episode_steps"] = self.max_episode_steps
        try:
            env = gym.make(self.env_id, **kwargs)
        except gym.error.Error as exc:
            raise GymEnvError(f"env.gym_id: cannot make {self.env_id!r} ({exc})") from None
        except TypeError as exc:
            raise GymEnvError(f"env.gym_kwargs: {self.env_id!r} rejects them ({exc})") from None
        for spec in self.wrappers:
            env = load_callable(spec, "env.wrappers")(env)
        return env


class ObsEncoder:
    """Observation space -> flat float32 vectors (one-hot for ``Discrete``, flattened ``Box``)."""

    def __init__(self, space: gym.Space, env_id: str):
        self.space = space
        if isinstance(space, gym.spaces.Discrete):
            self.kind, self.dim = "onehot", int(space.n)
        elif isinstance(space, gym.spaces.Box):
            self.kind, self.dim = "box", int(np.prod(space.shape))
        else:
            raise GymEnvError(
                f"{env_id}: observation space {space} is not Box or Discrete; add a wrapper in env.wrappers "
                "that turns it into one (e.g. minigrid.wrappers:ImgObsWrapper)"
            )

    def __call__(self, observations: list[Any]) -> NDArray[np.float32]:
        if self.kind == "onehot":
            idx = np.asarray(observations, dtype=np.int64) - int(self.space.start)  # type: ignore[attr-defined]
            out = np.zeros((len(observations), self.dim), dtype=np.float32)
            out[np.arange(len(observations)), idx] = 1.0
            return out
        return np.asarray(observations, dtype=np.float32).reshape(len(observations), self.dim)

    def indices_to_onehot(self, column: NDArray[np.floating], where: str) -> NDArray[np.float32]:
        """Logged ``Discrete`` observations as one integer column (N, 1) -> one-hot (N, n)."""
        values = np.asarray(column, dtype=np.float64).reshape(-1)
        start = int(self.space.start)  # type: ignore[attr-defined]
        bad = (values != np.round(values)) | (values < start) | (values >= start + self.dim)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise GymEnvError(
                f"{where}: row {row + 1}: observation {float(values[row])} is not a state of Discrete({self.dim})"
            )
        return self([int(v) for v in values])

    def describe(self) -> str:
        if self.kind == "onehot":
            return f"one-hot of Discrete({self.dim})"
        return f"flattened Box{tuple(self.space.shape or ())}"


class GymSimulator:
    """Batches of episodes of one gymnasium environment; see the module docstring."""

    def __init__(self, spec: GymSpec):
        self.spec = spec
        self.cost_rule = parse_rule(spec.cost_rule, "cost")
        self.success_rule = parse_rule(spec.success_rule, "success")
        probe = spec.make()
        if not isinstance(probe.action_space, gym.spaces.Discrete):
            raise GymEnvError(f"{spec.env_id}: action space {probe.action_space} is not Discrete")
        if int(probe.action_space.start) != 0:
            raise GymEnvError(f"{spec.env_id}: Discrete actions must start at 0")
        self.n_actions = int(probe.action_space.n)
        self.encode = ObsEncoder(probe.observation_space, spec.env_id)
        limit = probe.spec.max_episode_steps if probe.spec is not None else None
        if limit is None:
            raise GymEnvError(f"{spec.env_id}: has no step limit; set env.max_episode_steps so every episode ends")
        self.max_steps = int(limit)
        self._envs: list[gym.Env] = [probe]

    @property
    def obs_dim(self) -> int:
        return self.encode.dim

    def envs(self, n: int) -> list[gym.Env]:
        while len(self._envs) < n:
            self._envs.append(self.spec.make())
        return self._envs[:n]

    def simulate(self, policy: Policy, n_episodes: int, rng: np.random.Generator) -> Episodes:
        """Run ``n_episodes`` episodes to their end; env seeds are drawn from ``rng``."""
        envs = self.envs(n_episodes)
        seeds = rng.integers(0, 2**31 - 1, size=n_episodes)
        raw = [env.reset(seed=int(s))[0] for env, s in zip(envs, seeds, strict=True)]
        obs = self.encode(raw)
        active = np.ones(n_episodes, dtype=bool)
        steps = np.zeros(n_episodes, dtype=np.int64)
        rec: dict[str, list[NDArray]] = {k: [] for k in Episodes.__dataclass_fields__}
        for _ in range(self.max_steps):
            if not active.any():
                break
            actions = np.asarray(policy(obs, steps.copy(), rng), dtype=np.int64).reshape(-1)
            if actions.shape != (n_episodes,) or ((actions < 0) | (actions >= self.n_actions))[active].any():
                raise GymEnvError(f"policy returned invalid actions for {self.spec.env_id}: {actions[:8]}...")
            next_raw = list(raw)
            reward = np.zeros(n_episodes)
            term = np.zeros(n_episodes, dtype=bool)
            trunc = np.zeros(n_episodes, dtype=bool)
            info_cost = np.full(n_episodes, np.nan)
            info_success = np.full(n_episodes, -1, dtype=np.int8)
            for i in np.flatnonzero(active):
                o, r, te, tr, info = envs[i].step(int(actions[i]))
                next_raw[i], reward[i], term[i] = o, float(r), bool(te)
                trunc[i] = bool(tr) and not te  # an episode ends one way: a real end outranks the time limit
                if "cost" in info:
                    info_cost[i] = float(info["cost"])
                if "is_success" in info:
                    info_success[i] = int(bool(info["is_success"]))
            rule_cost, rule_success = rule_events(
                self.cost_rule, self.success_rule, reward, term, info_cost, info_success
            )
            assert rule_cost is not None and rule_success is not None  # info arrays given: always decided
            cost = np.where(active, rule_cost, 0.0)
            success = rule_success & active
            next_obs = self.encode(next_raw)
            for key, value in (
                ("obs", obs), ("next_obs", next_obs), ("steps", steps.copy()), ("actions", actions),
                ("rewards", reward), ("costs", cost), ("terminated", term), ("truncated", trunc),
                ("success", success), ("valid", active.copy()),
            ):  # fmt: skip
                rec[key].append(value)
            steps = steps + active
            active = active & ~term & ~trunc
            obs, raw = next_obs, next_raw
        return Episodes(**{k: np.stack(v) for k, v in rec.items()})


BehaviourFn = Callable[[NDArray[np.float32], list[gym.Env]], NDArray[np.float64]]
"""A behaviour policy: encoded observations (N, d) and the N environments -> action probabilities (N, A)."""


class SampledBehaviour:
    """Samples actions from a user's behaviour policy and remembers the probability of each one taken."""

    def __init__(self, fn: BehaviourFn, sim: GymSimulator):
        self.fn, self.sim = fn, sim
        self.propensities: list[NDArray[np.float64]] = []

    def __call__(self, obs: NDArray[np.float32], steps: NDArray[np.int64], rng: np.random.Generator) -> NDArray:
        n, a = obs.shape[0], self.sim.n_actions
        probs = np.asarray(self.fn(obs, self.sim.envs(n)), dtype=np.float64)  # the envs simulate() is stepping
        if probs.shape != (n, a):
            raise GymEnvError(f"collect.behaviour returned shape {probs.shape}, expected ({n}, {a}) probabilities")
        if (probs < 0).any() or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-6):
            raise GymEnvError("collect.behaviour must return non-negative probabilities summing to 1 per row")
        actions = sample_actions(probs, rng)
        self.propensities.append(probs[np.arange(n), actions])
        return actions


def uniform_policy(n_actions: int) -> Policy:
    """The uniformly random reference policy."""

    def policy(obs: NDArray[np.float32], steps: NDArray[np.int64], rng: np.random.Generator) -> NDArray[np.int64]:
        return np.asarray(rng.integers(0, n_actions, size=obs.shape[0]), dtype=np.int64)

    return policy
