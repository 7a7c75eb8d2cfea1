"""GAIL (Ho & Ermon, NeurIPS 2016) for discrete actions: compact, on torch, over guardrl's vectorized simulators.

A discriminator D(s, a) learns to tell the expert's (state, action) pairs from the policy's; the policy is
trained by PPO (clipped objective, GAE) on the discriminator's logit ``log D - log(1 - D)``: positive where the
policy looks like the expert and negative elsewhere. No environment reward is read, only the expert's pairs and
the simulator's dynamics.

Episode ends are learned too, as in Discriminator-Actor-Critic (Kostrikov et al., ICLR 2019): a step that ends
an episode by termination leads to an absorbing state, shown to the discriminator as the final observation with
an extra "absorbed" action, whose reward repeats for ever (its value is ``reward / (1 - gamma)``). Without it,
the logit reward is biased by episode length: once the discriminator wins, every step's reward is negative and
the policy learns to end episodes early (in a first version without it, CartPole's true return went 262, 9, 406
over 30 iterations). With it, ending where the expert ends (SafeGrid's goal) is rewarded and ending where it
never does (a hazard, a fallen pole) is punished. A truncation (step limit) is not an end: its value is
bootstrapped.

Why not the ``imitation`` library: 1.0.1 requires gymnasium ~0.29 (d3rlpy 2.8.1 pins 1.0.0), stable-baselines3
~2.2.1, seals, sacred, tensorboard, optuna, datasets and huggingface-sb3; installed with ``--no-deps`` its GAIL
fails to import (no tensorboard), and every one of those would be a dependency for this module alone. Its
trainers also step one gymnasium env per episode; guardrl's simulators are array functions that step every
episode at once, so a compact implementation over them installs with our pins and uses them directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from guardrl._parallel import torch_threads
from guardrl.envs import sample_actions
from guardrl.envs.vector import Episodes, Policy
from guardrl.errors import ConfigError
from guardrl.progress import make_progress

Simulator = Callable[[Policy, int, np.random.Generator], Episodes]
"""Plays ``n`` episodes of a policy from a generator: :func:`guardrl.envs.simulate` with its tables bound."""


class GridCells(torch.nn.Module):
    """SafeGrid's (x, y) observations as one-hot cells: every cell its own input, as the tabular learners see
    the grid (an off-grid observation is clamped to the nearest edge cell)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        xy = torch.round(obs).long().clamp(0, self.size - 1)
        return torch.nn.functional.one_hot(xy[:, 1] * self.size + xy[:, 0], self.size * self.size).float()


class Scaled(torch.nn.Module):
    """Observations divided by a fixed per-dimension scale (e.g. CartPole's termination thresholds)."""

    def __init__(self, scale: NDArray[np.floating]):
        super().__init__()
        self.scale: torch.Tensor
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale, dtype=np.float32)))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return obs / self.scale


@dataclass(frozen=True)
class GAILConfig:
    """Adversarial imitation: rounds of (roll out, update the discriminator, update the policy by PPO)."""

    iterations: int = 80
    episodes_per_iteration: int = 16
    hidden_units: tuple[int, ...] = (64, 64)
    policy_lr: float = 1e-3
    """PPO's step size at the first iteration, decayed linearly to 0 at the last."""
    discriminator_lr: float = 1e-3
    discriminator_steps: int = 5
    ppo_epochs: int = 10
    minibatches: int = 8
    """PPO minibatches per epoch (their size follows the rollout's)."""
    clip: float = 0.2
    gamma: float = 0.99
    gae_lambda: float = 0.95
    entropy: float = 0.01
    reward_clip: float = 5.0
    """The logit reward is clipped to [-reward_clip, reward_clip], so one confident discriminator output cannot
    dominate an update."""
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.iterations, self.episodes_per_iteration, self.discriminator_steps, self.ppo_epochs) < 1:
            raise ConfigError("gail: iterations, episodes_per_iteration, discriminator_steps, ppo_epochs must be >= 1")
        if not 0.0 < self.gamma < 1.0:
            raise ConfigError(f"gail.gamma must lie in (0, 1), got {self.gamma}")


@dataclass(frozen=True)
class Demonstrations:
    """The expert's (observation, action) pairs and the observations where its episodes terminated."""

    observations: NDArray[np.float32]
    actions: NDArray[np.int64]
    terminal_observations: NDArray[np.float32]
    """Next observations of the steps that ended an episode by termination (not by the step limit)."""

    @classmethod
    def from_episodes(cls, eps: Episodes) -> Demonstrations:
        ended = eps.terminated & eps.valid
        return cls(eps.obs[eps.valid], eps.actions[eps.valid], eps.next_obs[ended])

    @classmethod
    def from_arrays(
        cls,
        observations: NDArray[np.floating],
        actions: NDArray[np.integer],
        next_observations: NDArray[np.floating],
        terminations: NDArray[np.bool_],
    ) -> Demonstrations:
        """From a log's flat arrays (e.g. a :class:`~guardrl.data.Dataset`'s)."""
        term = np.asarray(terminations, dtype=bool)
        return cls(
            np.asarray(observations, dtype=np.float32),
            np.asarray(actions, dtype=np.int64),
            np.asarray(next_observations, dtype=np.float32)[term],
        )


def _mlp(sizes: list[int]) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers)


class _Scores(torch.nn.Module):
    def __init__(self, features: torch.nn.Module, net: torch.nn.Module, greedy: bool):
        super().__init__()
        self.features, self.net, self.greedy = features, net, greedy

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        out = torch.log_softmax(self.net(self.features(obs)), dim=-1)
        return out.argmax(dim=-1) if self.greedy else out


@dataclass
class GAILPolicy:
    """The learned policy: ``probs`` for sampling, ``predict`` for its greedy action, ``module`` for export
    (the same interface as the tabular learners', so :func:`~guardrl.train.export_policy` writes it)."""

    net: torch.nn.Sequential
    features: torch.nn.Module
    observation_shape: tuple[int, ...]
    history: list[dict[str, Any]] = field(default_factory=list)
    """Per iteration: the discriminator's loss, its mean reward on the policy's steps, episode length, and
    whatever ``monitor`` added (true return, never used in training)."""
    kind: str = "logprob"

    @torch.no_grad()
    def probs(self, obs: NDArray[np.floating]) -> NDArray[np.float64]:
        x = self.features(torch.as_tensor(np.asarray(obs, dtype=np.float32)))
        return torch.softmax(self.net(x), dim=-1).double().numpy()

    def predict(self, obs: NDArray[np.floating]) -> NDArray[np.int64]:
        return self.probs(obs).argmax(axis=-1).astype(np.int64)

    def module(self, greedy: bool) -> torch.nn.Module:
        """Observations -> greedy actions, or -> the policy's action log-probabilities."""
        return _Scores(self.features, self.net, greedy).eval()


def _gae(
    reward: torch.Tensor,
    value: torch.Tensor,
    end_value: torch.Tensor,
    valid: torch.Tensor,
    ended: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """Generalized advantage estimates over (T, E) steps; ``end_value`` is the value after an episode's last step
    (the absorbing state's after a termination, the bootstrapped one after a truncation)."""
    T, E = reward.shape
    adv = torch.zeros(T, E)
    running = torch.zeros(E)
    for t in reversed(range(T)):
        following = value[t + 1] * valid[t + 1] if t + 1 < T else torch.zeros(E)
        nxt = torch.where(ended[t], end_value[t], following)
        delta = reward[t] + gamma * nxt - value[t]
        running = (delta + gamma * lam * running * ~ended[t]) * valid[t]
        adv[t] = running
    return adv


def train_gail(
    simulate: Simulator,
    features: torch.nn.Module,
    expert: Demonstrations,
    n_actions: int,
    cfg: GAILConfig,
    monitor: Callable[[GAILPolicy], dict[str, float]] | None = None,
    monitor_every: int = 10,
    show_progress: bool = False,
) -> GAILPolicy:
    """Imitate ``expert`` in ``simulate``. ``monitor(policy)`` adds true-return metrics to the history every
    ``monitor_every`` iterations; it never feeds the training. One torch thread, so a seed gives one result."""
    with torch_threads(1):
        return _train(simulate, features, expert, n_actions, cfg, monitor, monitor_every, show_progress)


def _train(
    simulate: Simulator,
    features: torch.nn.Module,
    expert: Demonstrations,
    n_actions: int,
    cfg: GAILConfig,
    monitor: Callable[[GAILPolicy], dict[str, float]] | None,
    monitor_every: int,
    show_progress: bool,
) -> GAILPolicy:
    rng = np.random.default_rng([cfg.seed, 23])
    d = expert.observations.shape[1]

    def feat(obs: NDArray[np.floating]) -> torch.Tensor:
        with torch.no_grad():
            return features(torch.tensor(np.asarray(obs, dtype=np.float32).reshape(-1, d)))

    scale = 1.0 / (1.0 - cfg.gamma)  # the value net predicts values / scale, so its targets stay near the rewards'
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        ex = feat(expert.observations)
        f = ex.shape[1]
        ex_end = feat(expert.terminal_observations)
        absorbed = n_actions  # the extra "action" that marks an absorbing state
        ex_x = torch.cat([ex, ex_end])
        ex_a = torch.cat([torch.tensor(expert.actions, dtype=torch.int64), torch.full((len(ex_end),), absorbed)])
        pi, value = _mlp([f, *cfg.hidden_units, n_actions]), _mlp([f, *cfg.hidden_units, 1])
        disc = _mlp([f + n_actions + 1, *cfg.hidden_units, 1])
        opt = torch.optim.Adam([*pi.parameters(), *value.parameters()], lr=cfg.policy_lr)
        d_opt = torch.optim.Adam(disc.parameters(), lr=cfg.discriminator_lr)
        policy = GAILPolicy(pi, features, (d,))

        def logit(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
            return disc(torch.cat([x, torch.nn.functional.one_hot(a, n_actions + 1).float()], dim=-1)).squeeze(-1)

        def sampler(obs: NDArray[np.float32], steps: NDArray[np.int64], rng: np.random.Generator) -> NDArray[np.int64]:
            return sample_actions(policy.probs(obs), rng)

        with make_progress(show_progress) as progress:
            task = progress.add_task("gail", total=cfg.iterations)
            for it in range(cfg.iterations):
                eps = simulate(sampler, cfg.episodes_per_iteration, np.random.default_rng([cfg.seed, it]))
                T, E = eps.valid.shape
                x = feat(eps.obs).reshape(T, E, f)
                nx = feat(eps.next_obs).reshape(T, E, f)
                a = torch.as_tensor(eps.actions)
                valid = torch.as_tensor(eps.valid)
                term = torch.as_tensor(eps.terminated & eps.valid)
                trunc = torch.as_tensor(eps.truncated & eps.valid)
                xs, acts = x[valid], a[valid]
                my_x = torch.cat([xs, nx[term]])
                my_a = torch.cat([acts, torch.full((int(term.sum()),), absorbed)])
                for _ in range(cfg.discriminator_steps):
                    n = min(len(my_x), 2048)
                    pick = torch.as_tensor(rng.integers(0, len(ex_x), size=n))
                    mine = torch.as_tensor(rng.integers(0, len(my_x), size=n))
                    loss_d = torch.nn.functional.binary_cross_entropy_with_logits(
                        torch.cat([logit(ex_x[pick], ex_a[pick]), logit(my_x[mine], my_a[mine])]),
                        torch.cat([torch.ones(n), torch.zeros(n)]),
                    )
                    d_opt.zero_grad()
                    loss_d.backward()
                    d_opt.step()
                with torch.no_grad():
                    c = cfg.reward_clip
                    reward = logit(x.reshape(T * E, f), a.reshape(-1)).reshape(T, E).clamp(-c, c) * valid
                    at_end = logit(nx.reshape(T * E, f), torch.full((T * E,), absorbed)).reshape(T, E)
                    boot = value(nx).squeeze(-1) * scale
                    end_value = torch.where(term, at_end.clamp(-c, c) * scale, boot)
                    v = value(x).squeeze(-1) * scale * valid
                    adv = _gae(reward, v, end_value, valid, term | trunc, cfg.gamma, cfg.gae_lambda)
                    ret = ((adv + v)[valid]) / scale
                    adv_v = adv[valid]
                    adv_v = (adv_v - adv_v.mean()) / (adv_v.std() + 1e-8)
                    logp_old = torch.log_softmax(pi(xs), dim=-1).gather(1, acts[:, None]).squeeze(1)
                for group in opt.param_groups:  # linear decay to 0: the last iterations settle instead of drifting
                    group["lr"] = cfg.policy_lr * (1.0 - it / cfg.iterations)
                size = -(-len(xs) // cfg.minibatches)
                for _ in range(cfg.ppo_epochs):
                    for idx in torch.as_tensor(rng.permutation(len(xs))).split(size):
                        logits = pi(xs[idx])
                        logp = torch.log_softmax(logits, dim=-1).gather(1, acts[idx][:, None]).squeeze(1)
                        ratio = torch.exp(logp - logp_old[idx])
                        surr = torch.min(ratio * adv_v[idx], ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * adv_v[idx])
                        entropy = torch.distributions.Categorical(logits=logits).entropy().mean()
                        v_loss = (value(xs[idx]).squeeze(-1) - ret[idx]).pow(2).mean()
                        loss = -surr.mean() + 0.5 * v_loss - cfg.entropy * entropy
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
                row: dict[str, Any] = {
                    "iteration": it + 1,
                    "discriminator_loss": float(loss_d.detach()),
                    "mean_reward": float(reward[valid].mean()),
                    "episode_length": float(eps.valid.sum(axis=0).mean()),
                }
                if monitor is not None and ((it + 1) % monitor_every == 0 or it + 1 == cfg.iterations):
                    row.update(monitor(policy))
                policy.history.append(row)
                progress.advance(task)
    return policy
