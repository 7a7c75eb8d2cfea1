"""Write an example of one-step decision logs and two policies to judge on them (docs: Judge a policy).

``bandit.csv``: 20,000 recommendations, one per episode, in guardrl's import schema: the context (``obs_0``, one
of 4 customer segments), the item shown (6 items), the click as reward, a complaint as cost (item 5 draws
complaints), and the logging policy's propensity. Two policy tables: ``vendor.csv`` mostly shows each segment's
favourite item, ``pushy.csv`` mostly the item that draws complaints. The rates are drawn from the seed, and each
policy's true click and complaint rates are printed, so that the judgement can be checked against them.

    .venv/bin/python scripts/example_bandit_logs.py [--seed 0] [--out-dir .]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

SEGMENTS, ITEMS, ROWS = 4, 6, 20_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=Path("."))
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    clicks = rng.uniform(0.02, 0.08, size=(SEGMENTS, ITEMS))
    clicks[np.arange(SEGMENTS), np.arange(SEGMENTS)] = 0.16  # each segment's favourite
    clicks[:, 5] = 0.2  # the item that sells best and draws complaints
    complaints = np.zeros((SEGMENTS, ITEMS))
    complaints[:, 5] = 0.05
    logits = rng.normal(0.0, 0.7, size=(SEGMENTS, ITEMS))
    mu = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    segment = rng.integers(0, SEGMENTS, size=ROWS)
    item = (rng.random(ROWS)[:, None] > mu[segment].cumsum(axis=1)).sum(axis=1).clip(max=ITEMS - 1)
    log = pd.DataFrame({
        "episode_id": np.arange(ROWS), "step": 0, "obs_0": segment, "action": item,
        "reward": (rng.random(ROWS) < clicks[segment, item]).astype(float), "terminated": True, "truncated": False,
        "cost": (rng.random(ROWS) < complaints[segment, item]).astype(float), "propensity": mu[segment, item],
    })  # fmt: skip
    safe = clicks[:, :5].argmax(axis=1)  # the best item that draws no complaints
    vendor = np.full((SEGMENTS, ITEMS), 0.02)
    vendor[np.arange(SEGMENTS), safe] = 0.9
    pushy = np.full((SEGMENTS, ITEMS), 0.02)
    pushy[:, 5] = 0.9  # the clicks, and the complaints
    args.out_dir.mkdir(parents=True, exist_ok=True)
    log.to_csv(args.out_dir / "bandit.csv", index=False)
    print(f"wrote {args.out_dir / 'bandit.csv'} ({ROWS} rows; logged click rate {log['reward'].mean():.4f})")
    for name, probs in (("vendor", vendor), ("pushy", pushy)):
        table = pd.DataFrame({"obs_0": np.arange(SEGMENTS)})
        table.assign(**{f"prob_{k}": probs[:, k] for k in range(ITEMS)}).to_csv(
            args.out_dir / f"{name}.csv", index=False
        )
        # segments are equally likely, so the true rates are the averages over segments
        click = float((probs * clicks).sum(axis=1).mean())
        complaint = float((probs * complaints).sum(axis=1).mean())
        print(f"wrote {args.out_dir / name}.csv (true click rate {click:.4f}, complaint rate {complaint:.4f})")


if __name__ == "__main__":
    main()
