"""Train the MuJoCo behaviour policies that guardrl's D4RL-style datasets are rolled out from.


Stable-Baselines3's SAC with its default hyperparameters (two 256-unit layers, learning rate 3e-4, batch 256, buffer
1M, 100 random steps first, one gradient step per env step) learns the task online, on one CPU thread. Every
``--every`` steps the actor is evaluated (its mean action, ``--eval-episodes`` episodes on seeds of its own) and
saved as plain arrays (``step_<n>.npz``: the hidden layers, the mean and log-std heads; read with
``allow_pickle=False``, no SB3 needed), with a line in ``progress.json``. ``guardrl.envs.mujoco`` picks the last
listed checkpoint as ``expert`` and the first whose return reaches a third of it as ``medium``; the checkpoints
before ``medium`` make ``medium-replay``. Ship a subset by copying those files and trimming ``progress.json`` to
them.

    .venv/bin/pip install -e ".[mujoco-train]"
    .venv/bin/python scripts/train_mujoco_actors.py --env Hopper-v5 --steps 400000 --out actors/hopper

The run is seeded (``--seed``) and single-threaded; SAC's result still varies across machines and library
versions, so the shipped checkpoints are the reference, and this script is how to make new ones.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch


def actor_arrays(model: Any) -> dict[str, np.ndarray]:
    """The SAC actor as plain float32 arrays: hidden layers ``w<i>``/``b<i>`` (ReLU), heads ``mu_*`` and
    ``log_std_*`` (the action is ``tanh(mu + exp(log_std) * noise)``, log-std clipped to [-20, 2])."""
    actor = model.actor
    hidden = [m for m in actor.latent_pi if isinstance(m, torch.nn.Linear)]
    out: dict[str, np.ndarray] = {}
    for i, layer in enumerate(hidden):
        out[f"w{i}"] = layer.weight.detach().cpu().numpy().T.astype(np.float32)
        out[f"b{i}"] = layer.bias.detach().cpu().numpy().astype(np.float32)
    for head in ("mu", "log_std"):
        layer = getattr(actor, head)
        out[f"{head}_w"] = layer.weight.detach().cpu().numpy().T.astype(np.float32)
        out[f"{head}_b"] = layer.bias.detach().cpu().numpy().astype(np.float32)
    return out


def evaluate(model: Any, env_id: str, episodes: int, seed: int) -> float:
    env = gym.make(env_id)
    total = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        ret, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            ret += float(reward)
            done = terminated or truncated
        total.append(ret)
    return float(np.mean(total))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--steps", type=int, default=300_000)
    parser.add_argument("--every", type=int, default=10_000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    env = gym.make(args.env)
    model = SAC("MlpPolicy", env, seed=args.seed, device="cpu", verbose=0)
    progress: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    class Checkpoint(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % args.every == 0:
                ret = evaluate(model, args.env, args.eval_episodes, 10_000 + self.num_timesteps)
                name = f"step_{self.num_timesteps}.npz"
                tmp = args.out / f".{name}.tmp.npz"
                np.savez(tmp, **actor_arrays(model))
                os.replace(tmp, args.out / name)
                progress.append({"step": self.num_timesteps, "file": name, "eval_return": ret,
                                 "seconds": time.perf_counter() - t0})  # fmt: skip
                meta = {"env": args.env, "seed": args.seed, "algorithm": "stable-baselines3 SAC, defaults",
                        "stable_baselines3": __import__("stable_baselines3").__version__,
                        "eval_episodes": args.eval_episodes, "checkpoints": progress}  # fmt: skip
                (args.out / "progress.json.tmp").write_text(json.dumps(meta, indent=1))
                os.replace(args.out / "progress.json.tmp", args.out / "progress.json")
                print(f"{self.num_timesteps} steps, return {ret:.1f}, {time.perf_counter() - t0:.0f} s", flush=True)
            return True

    model.learn(total_timesteps=args.steps, callback=Checkpoint())


if __name__ == "__main__":
    main()
