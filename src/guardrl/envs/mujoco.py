"""MuJoCo tasks (gymnasium 1.0's v5 envs) and the behaviour policies their D4RL-style datasets are rolled out from.

The policies are SAC actors trained with Stable-Baselines3 (``scripts/train_mujoco_actors.py`` says how) and
shipped as plain arrays under ``guardrl/envs/actors/<task>/``: no pickle, no SB3 at run time. An actor maps an
observation through ReLU layers to a Gaussian whose sample is squashed by ``tanh`` into the action box, so its
density at the logged action is known and is logged as the propensity.

The hazard is a fall: an episode that terminates (Hopper's and Walker2d's body leaves its healthy range) costs 1
at that step; reaching the 1,000-step limit is a truncation and costs nothing. HalfCheetah cannot fall.

Needs the ``mujoco`` extra (``pip install "guardrl[mujoco]"``). Scores are normalized with D4RL's published
constants; D4RL's data came from the v2 envs (mujoco-py), ours from v5, so the scores are indicative.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from guardrl.envs.vector import Episodes
from guardrl.errors import GuardrlError

TASKS = {"hopper": "Hopper-v5", "halfcheetah": "HalfCheetah-v5", "walker2d": "Walker2d-v5"}
ACTION_DIMS = {"hopper": 3, "halfcheetah": 6, "walker2d": 6}
"""Every task's actions lie in ``[-1, 1]^k``."""
OBS_DIMS = {"hopper": 11, "halfcheetah": 17, "walker2d": 17}
LEVELS = ("random", "medium", "medium-replay", "medium-expert", "expert")
"""D4RL's dataset levels (``guardrl.data.mujoco`` makes them from the actors below)."""
D4RL_REFERENCE = {"hopper": (-20.272305, 3234.3), "halfcheetah": (-280.178953, 12135.0), "walker2d": (1.629008, 4592.3)}
"""D4RL's random and expert returns per task (``d4rl.infos.REF_MIN_SCORE`` / ``REF_MAX_SCORE``)."""
LOG_STD_RANGE = (-20.0, 2.0)  # SB3's clip of the actor's log-std
_EPS = 1e-6
N_ENVS = 8
"""Episodes simulated side by side: the policy acts on all of them at once."""
Policy = Callable[[NDArray[np.float64], np.random.Generator], tuple[NDArray[np.floating], NDArray[np.float64]]]
"""``(observations (N, d), rng) -> (actions (N, k) in [-1, 1]^k, log-density of each)``."""


class MujocoError(GuardrlError, ValueError):
    """A MuJoCo task, actor or dataset kind that does not exist, or the extra that is not installed."""


def make_env(task: str, **kwargs: Any) -> Any:
    """The gymnasium env of ``task`` (a key of :data:`TASKS`), with a clear error without the extra."""
    if task not in TASKS:
        raise MujocoError(f"unknown MuJoCo task {task!r}; choose one of {sorted(TASKS)}")
    try:
        import mujoco
    except ImportError:
        raise MujocoError(f'{TASKS[task]} needs MuJoCo: pip install "guardrl[mujoco]"') from None
    import gymnasium as gym

    if mujoco.get_mju_user_warning() is None:  # the caller's own handler stays
        mujoco.set_mju_user_warning(_log_mujoco_warning)
    return gym.make(TASKS[task], **kwargs)


def _log_mujoco_warning(message: str) -> None:
    """MuJoCo's warnings to Python's logging. Left to MuJoCo, each goes to stderr and is appended to
    ``MUJOCO_LOG.TXT`` in the working directory; gymnasium 1.0's HalfCheetah-v5 model uses the deprecated
    ``settotalmass`` and would log that on every env made (a debug line here). Simulation warnings (unstable
    accelerations, contact buffers full) stay warnings."""
    level = logging.DEBUG if "settotalmass" in message else logging.WARNING
    logging.getLogger(__name__).log(level, "MuJoCo: %s", message.strip())


def action_box(task: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The task's action box, ``[-1, 1]^k``, as a dataset's ``action_bounds``."""
    k = ACTION_DIMS[task]
    return ((-1.0,) * k, (1.0,) * k)


def normalized_score(task: str, returns: NDArray[np.floating] | float) -> NDArray[np.float64]:
    """D4RL's normalized score, 100 * (return - random) / (expert - random)."""
    low, high = D4RL_REFERENCE[task]
    return 100.0 * (np.asarray(returns, dtype=np.float64) - low) / (high - low)


@dataclass(frozen=True)
class GaussianActor:
    """A squashed-Gaussian actor as arrays: ``hidden`` (weight (in, out), bias) pairs with ReLU, then the mean
    and log-std heads."""

    hidden: tuple[tuple[NDArray[np.float32], NDArray[np.float32]], ...]
    mu: tuple[NDArray[np.float32], NDArray[np.float32]]
    log_std: tuple[NDArray[np.float32], NDArray[np.float32]]

    @classmethod
    def load(cls, path: Path) -> GaussianActor:
        """From an ``.npz`` written by ``scripts/train_mujoco_actors.py`` (read without pickle)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise MujocoError(f"{path}: not a readable actor ({exc})") from None
        n = sum(1 for k in arrays if k.startswith("w") and k[1:].isdigit())
        needed = [f"{p}{i}" for i in range(n) for p in ("w", "b")] + ["mu_w", "mu_b", "log_std_w", "log_std_b"]
        missing = [k for k in needed if k not in arrays]
        if n == 0 or missing:
            raise MujocoError(f"{path}: an actor needs arrays {needed or ['w0', 'b0', '...']}; missing {missing}")
        return cls(
            hidden=tuple((arrays[f"w{i}"], arrays[f"b{i}"]) for i in range(n)),
            mu=(arrays["mu_w"], arrays["mu_b"]),
            log_std=(arrays["log_std_w"], arrays["log_std_b"]),
        )

    @property
    def obs_dim(self) -> int:
        return int(self.hidden[0][0].shape[0])

    @property
    def action_dim(self) -> int:
        return int(self.mu[0].shape[1])

    def _heads(self, obs: NDArray[np.floating]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        h = np.asarray(obs, dtype=np.float64)
        for w, b in self.hidden:
            h = np.maximum(h @ w + b, 0.0)
        mean = h @ self.mu[0] + self.mu[1]
        log_std = np.clip(h @ self.log_std[0] + self.log_std[1], *LOG_STD_RANGE)
        return mean, log_std

    def mean_action(self, obs: NDArray[np.floating]) -> NDArray[np.float32]:
        """The deterministic action ``tanh(mean)`` (SAC's evaluation action)."""
        return np.tanh(self._heads(obs)[0]).astype(np.float32)

    def sample(
        self, obs: NDArray[np.floating], rng: np.random.Generator
    ) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
        """Actions drawn from the policy, and the log of its density at each (on the action box, tanh's Jacobian
        included)."""
        mean, log_std = self._heads(obs)
        noise = rng.standard_normal(mean.shape)
        pre = mean + np.exp(log_std) * noise
        action = np.tanh(pre)
        gauss = -0.5 * noise**2 - log_std - 0.5 * np.log(2 * np.pi)
        log_density = (gauss - np.log(1.0 - action**2 + _EPS)).sum(axis=-1)
        return action.astype(np.float32), log_density


@dataclass(frozen=True)
class ActorSet:
    """A task's shipped checkpoints: ``files`` in training order, each with its evaluation return."""

    task: str
    folder: Path
    files: tuple[str, ...]
    eval_returns: tuple[float, ...]
    meta: dict[str, Any]

    @property
    def expert(self) -> str:
        """The last checkpoint."""
        return self.files[-1]

    @property
    def medium(self) -> str:
        """The first checkpoint whose evaluation return reaches a third of the expert's (D4RL's medium level)."""
        return self.files[self.medium_index]

    @property
    def medium_index(self) -> int:
        target = self.eval_returns[-1] / 3.0
        return next(i for i, r in enumerate(self.eval_returns) if r >= target)

    def actor(self, name: str) -> GaussianActor:
        return GaussianActor.load(self.folder / name)


def actor_set(task: str, folder: Path | None = None) -> ActorSet:
    """The checkpoints of ``task`` listed in ``progress.json`` (``folder``: elsewhere than the shipped ones)."""
    if task not in TASKS:
        raise MujocoError(f"unknown MuJoCo task {task!r}; choose one of {sorted(TASKS)}")
    base = Path(str(resources.files("guardrl.envs") / "actors" / task)) if folder is None else Path(folder)
    path = base / "progress.json"
    if not path.is_file():
        raise MujocoError(f"{path}: no actors for {task} (train them with scripts/train_mujoco_actors.py)")
    meta = json.loads(path.read_text())
    points = [c for c in meta["checkpoints"] if (base / c["file"]).is_file()]
    if not points:
        raise MujocoError(f"{path}: lists no checkpoint file that exists in {base}")
    return ActorSet(task, base, tuple(c["file"] for c in points), tuple(float(c["eval_return"]) for c in points),
                    meta)  # fmt: skip


def uniform_policy(action_dim: int) -> Policy:
    """Uniform actions on ``[-1, 1]^action_dim`` (D4RL's ``random`` level), with their density."""

    def act(obs: NDArray[np.float64], rng: np.random.Generator) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
        n = len(obs)
        return rng.uniform(-1.0, 1.0, size=(n, action_dim)).astype(np.float32), np.full(n, -action_dim * np.log(2.0))

    return act


# ------------------------------------------------------------------ simulation


def simulate_mujoco(
    task: str, policy: Policy, n_episodes: int, rng: np.random.Generator
) -> tuple[Episodes, NDArray[np.float64]]:
    """``n_episodes`` episodes of ``policy`` in ``task``, time-major (each to its end: a fall terminates, the step
    limit truncates), and the policy's log-density of each action. Each env is reset with a seed drawn from
    ``rng``; ``N_ENVS`` episodes step side by side so that the policy acts on a batch."""
    envs = [make_env(task) for _ in range(min(N_ENVS, n_episodes))]
    limit = int(envs[0].spec.max_episode_steps)
    d = int(envs[0].observation_space.shape[0])
    k = int(envs[0].action_space.shape[0])
    parts: list[tuple[Episodes, NDArray[np.float64]]] = []
    left = n_episodes
    while left > 0:
        batch = envs[: min(len(envs), left)]
        parts.append(_batch(batch, policy, limit, d, k, rng))
        left -= len(batch)
    for env in envs:
        env.close()
    return _join(parts)


def _batch(
    envs: list[Any], policy: Policy, limit: int, d: int, k: int, rng: np.random.Generator
) -> tuple[Episodes, NDArray[np.float64]]:
    n = len(envs)
    obs_rec = np.zeros((limit, n, d), np.float32)
    next_rec = np.zeros((limit, n, d), np.float32)
    act_rec = np.zeros((limit, n, k), np.float32)
    rew, logp = np.zeros((limit, n)), np.zeros((limit, n))
    term, trunc, valid = (np.zeros((limit, n), bool) for _ in range(3))
    obs = np.stack([env.reset(seed=int(s))[0] for env, s in zip(envs, rng.integers(0, 2**31 - 1, n), strict=True)])
    alive = np.ones(n, bool)
    for t in range(limit):
        action, log_density = policy(obs, rng)
        action = np.asarray(action, dtype=np.float32).reshape(n, k)
        for i in np.flatnonzero(alive):
            nxt, r, te, tr, _ = envs[i].step(action[i])
            obs_rec[t, i], next_rec[t, i], act_rec[t, i] = obs[i], nxt, action[i]
            rew[t, i], logp[t, i], valid[t, i] = r, log_density[i], True
            term[t, i], trunc[t, i] = te, tr or (t == limit - 1 and not te)
            obs[i] = nxt
            alive[i] = not (te or trunc[t, i])
        if not alive.any():
            break
    steps = np.broadcast_to(np.arange(limit)[:, None], (limit, n)).astype(np.int64)
    # a termination is a fall (Hopper's and Walker2d's "unhealthy" body; HalfCheetah never ends so): the hazard
    falls = term.astype(np.float64)
    eps = Episodes(obs=obs_rec, next_obs=next_rec, steps=steps, actions=act_rec, rewards=rew, costs=falls,  # type: ignore[arg-type]
                   terminated=term, truncated=trunc, success=np.zeros((limit, n), bool), valid=valid)  # fmt: skip
    return eps, logp


def _join(parts: list[tuple[Episodes, NDArray[np.float64]]]) -> tuple[Episodes, NDArray[np.float64]]:
    fields = ("obs", "next_obs", "steps", "actions", "rewards", "costs", "terminated", "truncated", "success", "valid")
    joined = {f: np.concatenate([getattr(e, f) for e, _ in parts], axis=1) for f in fields}
    return Episodes(**joined), np.concatenate([lp for _, lp in parts], axis=1)
