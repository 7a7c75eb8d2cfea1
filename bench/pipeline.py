"""Pipeline benchmark: the original tutorial's pipeline through plain d3rlpy ``fit()`` against ``guardrl run``.

Both run in this one process, one after the other, on the same machine:

* **tutorial**: 500 episodes of the eps=0.22 controller logged with a Python ``env.step`` loop, an ``MDPDataset``,
  ``DiscreteBC`` for 25,000 and ``DiscreteCQL`` for 80,000 gradient steps at batch 256 through ``fit()`` with
  d3rlpy's default networks and learning rates, then evaluation with a Python loop calling ``predict`` per step
  on the same held-out seeds and episode count as guardrl.
* **guardrl**: ``guardrl.pipeline.run`` on the built-in defaults (the same data size).

Also measured: d3rlpy ``fit()`` with guardrl's own learner configs (same network, same batch) against guardrl's
vectorized batch loop, so the training speed-up is separated from the smaller step counts; and env steps/s of
the vectorized simulator against the Python loop.

One-time library initialization (torch's first optimizer imports ``torch._dynamo``, about 1.4 s; matplotlib's
first figure) is paid before either pipeline is timed, so neither is charged for running first.

Peak memory is the largest resident set size seen by a 10 ms sampler thread during each stage (one process, so
a later stage starts from what the earlier ones left allocated).

    .venv/bin/python bench/pipeline.py                 # full run (about 25 min on 2 cores)
    .venv/bin/python bench/pipeline.py --scale 0.02    # smoke run: tutorial step counts x 0.02

Writes ``bench/results/pipeline.json`` and ``bench/results/pipeline.md`` (or ``--out DIR``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import importlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch

from guardrl.config import RunConfig, to_dict
from guardrl.data.behaviour import constrained_policy
from guardrl.envs import build_tables, default_layout, make_safegrid, obs_to_states, simulate
from guardrl.evaluate import EvalConfig, bootstrap, normalized_score
from guardrl.run import run as guardrl_run
from guardrl.train import ObsBounds, build_algo, to_mdp_dataset

# imported through guardrl.train first, which silences the banner d3rlpy's legacy gym import prints
d3rlpy = importlib.import_module("d3rlpy")

# d3rlpy logs every epoch's parameters and metrics at info level through structlog; the tables are the output.
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))

TUTORIAL = {"n_episodes": 500, "epsilon": 0.22, "bc_steps": 25_000, "cql_steps": 80_000, "batch_size": 256}


# ------------------------------------------------------------------ measurement helpers


class PeakRSS:
    """Largest resident set size (MB) seen while the context is open, sampled from /proc every 10 ms."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()

    @staticmethod
    def current_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self.current_mb())
            self._stop.wait(0.01)

    def __enter__(self) -> PeakRSS:
        self.peak_mb = self.current_mb()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self.current_mb())


@contextlib.contextmanager
def stage(record: dict[str, Any], name: str) -> Iterator[None]:
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        yield
        seconds = time.perf_counter() - t0
    record[name] = {"seconds": seconds, "peak_rss_mb": mem.peak_mb}
    print(f"  {name}: {seconds:.1f} s, peak RSS {mem.peak_mb:.0f} MB", flush=True)


def plain_fit(algo: Any, dataset: Any, n_steps: int, log_dir: Path) -> None:
    """``fit()`` as the tutorial calls it: d3rlpy's defaults (file logger, a model saved every epoch, tqdm).

    Epochs of 5,000 steps divide both tutorial step counts (d3rlpy runs ``n_steps // n_steps_per_epoch`` epochs).
    """
    algo.fit(
        dataset,
        n_steps=n_steps,
        n_steps_per_epoch=min(n_steps, 5000),
        logger_adapter=d3rlpy.logging.FileAdapterFactory(root_dir=str(log_dir)),
    )


def quiet_fit(algo: Any, dataset: Any, n_steps: int) -> None:
    """``fit()`` with logging, saving and the progress bar off: its sampling loop and nothing else."""
    algo.fit(
        dataset,
        n_steps=n_steps,
        n_steps_per_epoch=min(n_steps, 10_000),
        show_progress=False,
        logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
        save_interval=10**9,
    )


# ------------------------------------------------------------------ the tutorial pipeline


def tutorial_collect(n_episodes: int, epsilon: float, seed: int) -> tuple[Any, int]:
    """Log episodes with a per-step Python loop over the gymnasium env, as the tutorial does."""
    layout = default_layout()
    tables = build_tables(layout)
    probs = constrained_policy(tables, epsilon).probs
    env = make_safegrid(layout)
    rng = np.random.default_rng(seed)
    obs_l, act_l, rew_l, term_l, trunc_l = [], [], [], [], []
    n_steps = 0
    for ep in range(n_episodes):
        obs, _ = env.reset(seed=seed * 100_000 + ep)
        t, done = 0, False
        while not done:
            state = int(obs_to_states(layout, obs[None])[0])
            action = int(rng.choice(4, p=probs[min(t, probs.shape[0] - 1), state]))
            next_obs, reward, terminated, truncated, _ = env.step(action)
            obs_l.append(obs)
            act_l.append(action)
            rew_l.append(reward)
            term_l.append(terminated)
            trunc_l.append(truncated)
            obs, t, done = next_obs, t + 1, terminated or truncated
            n_steps += 1
    dataset = d3rlpy.dataset.MDPDataset(
        observations=np.asarray(obs_l, dtype=np.float32),
        actions=np.asarray(act_l, dtype=np.int64),
        rewards=np.asarray(rew_l, dtype=np.float32),
        terminals=np.asarray(term_l, dtype=np.float32),
        timeouts=np.asarray(trunc_l, dtype=np.float32),
        action_size=4,
    )
    return dataset, n_steps


def tutorial_evaluate(algo: Any, ecfg: EvalConfig) -> tuple[dict[str, Any], int]:
    """Python-loop evaluation: one env, one ``predict`` call per step, on guardrl's held-out seeds."""
    layout = default_layout()
    env = make_safegrid(layout)
    per_seed = np.full(len(ecfg.seeds), ecfg.n_episodes // len(ecfg.seeds))
    per_seed[: ecfg.n_episodes % len(ecfg.seeds)] += 1
    returns, hazards, goals, lengths = [], [], [], []
    n_steps = 0
    for seed, count in zip(ecfg.seeds, per_seed, strict=True):
        for ep in range(int(count)):
            obs, _ = env.reset(seed=seed * 100_000 + ep)
            total, hazard, goal, length, done = 0.0, False, False, 0, False
            while not done:
                action = int(algo.predict(obs[None].astype(np.float32))[0])
                obs, reward, terminated, truncated, info = env.step(action)
                total += reward
                hazard |= info["cost"] > 0
                goal |= info["is_success"]
                length += 1
                done = terminated or truncated
            returns.append(total)
            hazards.append(hazard)
            goals.append(goal)
            lengths.append(length)
            n_steps += length
    summary = bootstrap(
        {
            "return": np.array(returns),
            "hazard_rate": np.array(hazards, float),
            "goal_rate": np.array(goals, float),
            "length": np.array(lengths, float),
        },  # fmt: skip
        ecfg.n_bootstrap,
        ecfg.confidence,
        np.random.default_rng(ecfg.bootstrap_seed),
    )
    return {k: v.to_dict() for k, v in summary.items()}, n_steps


def run_tutorial(scale: float, ecfg: EvalConfig, record: dict[str, Any]) -> dict[str, Any]:
    # whole epochs only, as fit() runs them
    steps = {k: max(1, int(TUTORIAL[f"{k}_steps"] * scale)) for k in ("bc", "cql")}
    steps = {k: v if v <= 5000 else v - v % 5000 for k, v in steps.items()}
    out: dict[str, Any] = {"config": {**TUTORIAL, "scale": scale, "steps_run": steps,
                                      "torch_threads": torch.get_num_threads()}}  # fmt: skip
    with stage(record, "collect"):
        dataset, n_env_steps = tutorial_collect(TUTORIAL["n_episodes"], TUTORIAL["epsilon"], seed=0)
    out["collect_env_steps_per_second"] = n_env_steps / record["collect"]["seconds"]
    algos = {
        "bc": d3rlpy.algos.DiscreteBCConfig(batch_size=TUTORIAL["batch_size"]).create(device="cpu:0"),
        "cql": d3rlpy.algos.DiscreteCQLConfig(batch_size=TUTORIAL["batch_size"]).create(device="cpu:0"),
    }
    out["policies"] = {}
    for name, algo in algos.items():
        torch.manual_seed(0)
        with tempfile.TemporaryDirectory() as logs, stage(record, f"train_{name}"):
            plain_fit(algo, dataset, steps[name], Path(logs))
        out[f"{name}_steps_per_second"] = steps[name] / record[f"train_{name}"]["seconds"]
    eval_steps = 0
    with stage(record, "evaluate"):
        for name, algo in algos.items():
            out["policies"][name], n = tutorial_evaluate(algo, ecfg)
            eval_steps += n
    out["evaluate_env_steps_per_second"] = eval_steps / record["evaluate"]["seconds"]
    return out


# ------------------------------------------------------------------ guardrl


def run_guardrl(record: dict[str, Any]) -> dict[str, Any]:
    cfg = RunConfig(name="bench")
    with tempfile.TemporaryDirectory() as tmp, stage(record, "total"):
        run_dir, metrics = guardrl_run(cfg, Path(tmp), show_progress=False)
        training = json.loads((run_dir / "training.json").read_text())
    for name, seconds in metrics["timings_seconds"].items():
        record[name] = {"seconds": seconds}
    return {
        "config": to_dict(cfg),
        "metrics": metrics,
        "steps_per_second": {n: t["steps_per_second"] for n, t in training.items()},
    }


def training_throughput(n_steps: int) -> dict[str, Any]:
    """d3rlpy ``fit()`` against guardrl's batch loop with the *same* learner configs, network and data."""
    from guardrl.data import collect
    from guardrl.train import TrainConfig, train_all

    tables = build_tables(default_layout())
    ds = collect(tables, "safe", TUTORIAL["n_episodes"], seed=0)
    bounds = ObsBounds(np.zeros(2), np.full(2, float(tables.layout.size - 1)))
    base = TrainConfig()
    out: dict[str, Any] = {}
    for name in ("bc", "cql"):
        lcfg = getattr(base, name)
        algo = build_algo(name, lcfg, bounds, "cpu:0")
        torch.set_num_threads(base.torch_threads)
        t0 = time.perf_counter()
        quiet_fit(algo, to_mdp_dataset(ds), n_steps)
        fit_sps = n_steps / (time.perf_counter() - t0)
        cfg = dataclasses.replace(base, learners=(name,), **{name: dataclasses.replace(lcfg, n_steps=n_steps)})
        res = train_all(ds, cfg, bounds, show_progress=False)[name]
        out[name] = {"d3rlpy_fit": fit_sps, "guardrl_loop": res.steps_per_second,
                     "ratio": res.steps_per_second / fit_sps}  # fmt: skip
    return out


def vector_env_throughput(n_episodes: int = 200_000) -> dict[str, float]:
    tables = build_tables(default_layout())
    policy = constrained_policy(tables, TUTORIAL["epsilon"])
    simulate(tables, policy, 1000, np.random.default_rng(0))  # warm-up
    t0 = time.perf_counter()
    eps = simulate(tables, policy, n_episodes, np.random.default_rng(1))
    seconds = time.perf_counter() - t0
    return {"episodes": n_episodes, "env_steps": int(eps.lengths.sum()), "seconds": seconds,
            "env_steps_per_second": float(eps.lengths.sum() / seconds)}  # fmt: skip


def warm_up() -> None:
    """Pay one-time imports outside the timed sections (see the module docstring)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    opt.zero_grad()
    opt.step()
    fig = plt.figure()
    fig.savefig(io.BytesIO(), format="png")
    plt.close(fig)


# ------------------------------------------------------------------ report


def time_guardrl_command() -> dict[str, float]:
    """``guardrl run`` on the defaults as a user runs it: a new process, imports included, until it exits."""
    exe = Path(sys.executable).with_name("guardrl")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run([str(exe), "run", "--runs-dir", tmp, "--quiet"], check=True, capture_output=True)
        return {"seconds": time.perf_counter() - t0}


def ci(e: dict[str, float], scale: float = 1.0, digits: int = 2) -> str:
    return f"{e['mean'] * scale:.{digits}f} [{e['low'] * scale:.{digits}f}, {e['high'] * scale:.{digits}f}]"


def markdown(res: dict[str, Any]) -> str:
    tut, gr = res["tutorial"], res["guardrl"]
    t_rec, g_rec = res["stages"]["tutorial"], res["stages"]["guardrl"]
    policies = gr["metrics"]["policies"]
    r_opt, r_rand = policies["optimal"]["exact"]["expected_return"], policies["random"]["exact"]["expected_return"]
    t_train = t_rec["train_bc"]["seconds"] + t_rec["train_cql"]["seconds"]
    t_total = res["tutorial_total_seconds"]

    def rate(learner: str) -> str:
        steps = gr["steps_per_second"].get(learner)
        return "– (not a default learner)" if steps is None else f"{steps:.0f}"

    lines = [
        f"# Pipeline benchmark ({res['date']}, {res['machine']})",
        "",
        f"Command: `{res['command']}`. Tutorial step counts scaled by {tut['config']['scale']}.",
        "",
        "| stage | tutorial (d3rlpy fit) s | guardrl s |",
        "|---|---|---|",
        f"| collect | {t_rec['collect']['seconds']:.1f} | {g_rec['collect']['seconds']:.2f} |",
        f"| train | {t_train:.1f} (BC {t_rec['train_bc']['seconds']:.1f}, CQL {t_rec['train_cql']['seconds']:.1f})"
        f" | {g_rec['train']['seconds']:.2f} |",
        f"| evaluate | {t_rec['evaluate']['seconds']:.1f} | {g_rec['evaluate']['seconds']:.2f} |",
    ]
    for extra in sorted(set(g_rec) - {"collect", "train", "evaluate", "total"}):
        lines.append(f"| {extra} | – | {g_rec[extra]['seconds']:.2f} |")
    lines += [
        f"| **total** | **{t_total:.1f}** | **{g_rec['total']['seconds']:.2f}** |",
        f"| peak RSS MB | {max(v['peak_rss_mb'] for v in t_rec.values()):.0f} | {g_rec['total']['peak_rss_mb']:.0f} |",
        "",
        f"| **`guardrl run` command** (process start to exit, imports included) | | "
        f"**{res['guardrl_command_seconds']:.2f}** |",
        "",
        f"**Speed-up: {res['speedup']:.1f}x** for the whole `guardrl run` command "
        f"({res['speedup_stages']:.1f}x on the stage sum); target >= 45x, guardrl <= 30 s.",
        "",
        "| throughput | tutorial | guardrl |",
        "|---|---|---|",
        f"| BC gradient steps/s (own config) | {tut['bc_steps_per_second']:.0f} | {rate('bc')} |",
        f"| CQL gradient steps/s (own config) | {tut['cql_steps_per_second']:.0f} | {rate('cql')} |",
        f"| env steps/s, collection | {tut['collect_env_steps_per_second']:,.0f} | "
        f"{res['vector_env']['env_steps_per_second']:,.0f} (vectorized, table policy) |",
        f"| env steps/s, evaluation | {tut['evaluate_env_steps_per_second']:,.0f} (predict per step) | – |",
        "",
        "Same learner config (guardrl's 64x64 MLP, batch 256), d3rlpy `fit()` against guardrl's batch loop:",
        "",
        "| learner | d3rlpy fit() steps/s | guardrl loop steps/s | ratio |",
        "|---|---|---|---|",
    ]
    for name, t in res["training_throughput"].items():
        lines.append(f"| {name} | {t['d3rlpy_fit']:.0f} | {t['guardrl_loop']:.0f} | {t['ratio']:.2f}x |")
    lines += [
        "",
        "Quality (1,500 episodes over held-out seeds 10001-10003, 95% bootstrap CIs):",
        "",
        "| pipeline | policy | return | normalized | hazard % | goal % |",
        "|---|---|---|---|---|---|",
    ]
    for name, p in tut["policies"].items():
        norm = normalized_score(p["return"]["mean"], r_rand, r_opt)
        lines.append(f"| tutorial | {name} | {ci(p['return'])} | {norm:.1f} | {ci(p['hazard_rate'], 100, 1)} | "
                     f"{ci(p['goal_rate'], 100, 1)} |")  # fmt: skip
    for name, p in gr["metrics"]["policies"].items():
        lines.append(f"| guardrl | {name} | {ci(p['return'])} | {ci(p['normalized_score'], 1, 1)} | "
                     f"{ci(p['hazard_rate'], 100, 1)} | {ci(p['goal_rate'], 100, 1)} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the tutorial's step counts (smoke runs)")
    parser.add_argument("--fit-steps", type=int, default=2000, help="steps for the same-config fit() comparison")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--render", type=Path, help="only write the markdown of a saved pipeline.json")
    args = parser.parse_args()
    if args.render is not None:
        from guardrl._io import atomic_write_text

        res = json.loads(args.render.read_text())
        atomic_write_text(args.out / f"{args.render.stem}.md", markdown(res))
        print(markdown(res))
        return
    warm_up()
    ecfg = EvalConfig()
    stages: dict[str, dict[str, Any]] = {"tutorial": {}, "guardrl": {}}
    print("guardrl run (defaults)", flush=True)
    guardrl = run_guardrl(stages["guardrl"])
    print("tutorial pipeline (d3rlpy fit)", flush=True)
    t0 = time.perf_counter()
    tutorial = run_tutorial(args.scale, ecfg, stages["tutorial"])
    tutorial_total = time.perf_counter() - t0
    print("guardrl run, the whole command", flush=True)
    command = time_guardrl_command()
    print("same-config fit() vs guardrl loop", flush=True)
    throughput = training_throughput(args.fit_steps)
    print("vectorized env", flush=True)
    vector = vector_env_throughput()
    res = {
        "date": dt.date.today().isoformat(),
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "command": ".venv/bin/python bench/pipeline.py" + (f" --scale {args.scale}" if args.scale != 1.0 else ""),
        "versions": {"d3rlpy": d3rlpy.__version__, "torch": torch.__version__, "numpy": np.__version__},
        "stages": stages,
        "tutorial_total_seconds": tutorial_total,
        "guardrl_command_seconds": command["seconds"],
        "speedup": tutorial_total / command["seconds"],
        "speedup_stages": tutorial_total / stages["guardrl"]["total"]["seconds"],
        "tutorial": tutorial,
        "guardrl": guardrl,
        "training_throughput": throughput,
        "vector_env": vector,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "pipeline" if args.scale == 1.0 else "pipeline-smoke"
    from guardrl._io import atomic_write_json, atomic_write_text

    atomic_write_json(args.out / f"{stem}.json", res)
    atomic_write_text(args.out / f"{stem}.md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
