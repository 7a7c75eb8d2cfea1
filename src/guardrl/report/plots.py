"""Plots of a run (the only module that touches matplotlib). Each function takes plain data and a path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from guardrl._io import atomic_write  # noqa: E402

Interval = Mapping[str, float]  # {"mean", "low", "high"}


def _save(fig: Figure, path: Path) -> Path:
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return Path(path)


def visitation_heatmap(
    counts: np.ndarray,
    hazards: Sequence[Sequence[int]],
    start: Sequence[int],
    goal: Sequence[int],
    path: Path,
    title: str = "State visitation in the logged data",
) -> Path:
    """``counts`` is (size, size) indexed [y, x]; hazards, start and goal are (x, y) cells."""
    fig, ax = plt.subplots(figsize=(6, 5.2))
    shown = np.where(counts > 0, counts, np.nan)
    im = ax.imshow(np.log10(shown), cmap="viridis", origin="upper")
    fig.colorbar(im, ax=ax, label="log10(visits)")
    for x, y in hazards:
        ax.add_patch(plt.Rectangle((x - 0.5, y - 0.5), 1, 1, color="crimson", alpha=0.9))
    ax.scatter([start[0]], [start[1]], marker="o", s=120, c="white", edgecolors="black", label="start", zorder=3)
    ax.scatter([goal[0]], [goal[1]], marker="*", s=260, c="gold", edgecolors="black", label="goal", zorder=3)
    ax.add_patch(plt.Rectangle((-10, -10), 0.1, 0.1, color="crimson", label="hazard"))
    ax.set_xlim(-0.5, counts.shape[1] - 0.5)
    ax.set_ylim(counts.shape[0] - 0.5, -0.5)
    unvisited = int(np.sum(counts == 0))
    ax.set_title(f"{title}\n(white: never visited, {unvisited} cells)")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, frameon=False)
    return _save(fig, path)


MAX_REWARD_BARS = 30
"""Step rewards with at most this many distinct values get a bar each; more, a histogram."""


def reward_histogram(step_rewards: np.ndarray, episode_returns: np.ndarray, path: Path) -> Path:
    """Per-step rewards (counts per value) beside the distribution of episode returns."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    values, counts = np.unique(step_rewards, return_counts=True)
    if len(values) <= MAX_REWARD_BARS:
        a1.bar([f"{v:g}" for v in values], counts, color="slategray")
    else:  # continuous rewards (MuJoCo): a bar per distinct value took minutes for 100,000 of them
        a1.hist(step_rewards, bins=40, color="slategray")
    a1.set_yscale("log")
    a1.set_title("Step rewards in the logs")
    a1.set_xlabel("reward")
    a1.set_ylabel("transitions (log scale)")
    a2.hist(episode_returns, bins=40, color="steelblue")
    a2.axvline(float(np.mean(episode_returns)), color="black", ls="--", label=f"mean {np.mean(episode_returns):.1f}")
    a2.set_title("Episode returns in the logs")
    a2.set_xlabel("return")
    a2.set_ylabel("episodes")
    a2.legend()
    return _save(fig, path)


def _colors(names: Sequence[str]) -> list[str]:
    palette = {"optimal": "seagreen", "random": "gray", "behaviour": "darkorange", "bc": "royalblue",
               "cql": "purple"}  # fmt: skip
    return [palette.get(n, "teal") for n in names]


def returns_with_ci(rows: Mapping[str, Interval], path: Path, optimal: float | None = None) -> Path:
    """Mean return per policy with its confidence interval."""
    names = list(rows)
    means = np.array([rows[n]["mean"] for n in names])
    err = np.array([[rows[n]["mean"] - rows[n]["low"] for n in names],
                    [rows[n]["high"] - rows[n]["mean"] for n in names]])  # fmt: skip
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.barh(names, means, xerr=err, color=_colors(names), capsize=4)
    if optimal is not None:
        ax.axvline(optimal, color="seagreen", ls="--", label=f"exact optimum {optimal:.2f}")
        ax.legend(loc="lower right")
    for i, m in enumerate(means):
        ax.text(m, i, f" {m:.1f}", va="center", ha="left" if m >= 0 else "right")
    ax.axvline(0, color="black", lw=0.8)
    ax.invert_yaxis()
    ax.set_xlabel("mean episode return (95% CI)")
    ax.set_title("Return per policy")
    return _save(fig, path)


def safety_bars(hazard: Mapping[str, Interval], goal: Mapping[str, Interval], path: Path) -> Path:
    """Hazard rate and goal rate per policy, side by side, with confidence intervals."""
    names = list(hazard)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, rows, title in ((axes[0], hazard, "Hazard rate (lower is safer)"), (axes[1], goal, "Goal rate")):
        means = np.array([rows[n]["mean"] for n in names]) * 100
        err = np.array([[rows[n]["mean"] - rows[n]["low"] for n in names],
                        [rows[n]["high"] - rows[n]["mean"] for n in names]]) * 100  # fmt: skip
        ax.bar(names, means, yerr=err, color=_colors(names), capsize=4)
        for i, m in enumerate(means):
            ax.text(i, m, f"{m:.1f}%", ha="center", va="bottom")
        ax.set_ylabel("% of episodes (95% CI)")
        ax.set_title(title)
    return _save(fig, path)


def learning_curves(
    curves: Mapping[str, Mapping[str, Sequence[float]]],
    monitors: Mapping[str, Mapping[str, Sequence[float]]],
    path: Path,
    optimal: float | None = None,
) -> Path:
    """Training loss per learner (left) and the exact return of its greedy policy during training (right)."""
    monitored = {n: m for n, m in monitors.items() if m.get("step")}
    if monitored:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    else:  # no exact monitor (gymnasium envs): the loss panel only
        fig, a1 = plt.subplots(1, 1, figsize=(6, 4))
    for name, curve in curves.items():
        if "loss" not in curve:  # a tabular planner has no loss to plot
            continue
        (color,) = _colors([name])
        a1.plot(curve["step"], curve["loss"], label=name, color=color)
    a1.set_yscale("log")
    a1.set_xlabel("gradient step")
    a1.set_ylabel("training loss (log scale)")
    a1.set_title("Training loss")
    a1.legend()
    if monitored:
        for name, mon in monitored.items():
            (color,) = _colors([name])
            a2.plot(mon["step"], mon["expected_return"], marker="o", label=name, color=color)
        if optimal is not None:
            a2.axhline(optimal, color="seagreen", ls="--", label="exact optimum")
        a2.set_xlabel("gradient step")
        a2.set_ylabel("exact expected return of greedy policy")
        a2.set_title("Policy quality during training (monitor only)")
        a2.legend()
    return _save(fig, path)


def ope_vs_truth(results: Mapping[str, Mapping], path: Path) -> Path:
    """Each OPE estimate (with CI) beside the truth, per policy, for return and cost.

    Policies are categories on the x axis (sorted by their true value), so names never overlap however close
    their values are; the estimators sit side by side around each policy's truth marker. Without a truth (a
    logs-only run) the estimates stand alone, in the policies' order."""
    keys = [k for k in ("return", "cost") if all(k in r["estimates"] for r in results.values())]
    names = list(results)
    fig, axes = plt.subplots(1, len(keys), figsize=(max(6.0, 1.1 * len(names) + 2) * len(keys), 4.8), squeeze=False)
    markers = {"pdis": "v", "wis": "s", "fqe": "o", "dr": "D", "model": "^", "model_pessimistic": "P"}
    has_truth = all("truth" in r for r in results.values())
    for ax, key in zip(axes[0], keys, strict=True):
        x = np.arange(len(names))
        if has_truth:
            truth = np.array([results[n]["truth"][key]["mean"] for n in names])
            order = np.argsort(truth, kind="stable")
            ax.scatter(x, truth[order], marker="_", s=900, color="black", zorder=3, label="truth")
        else:
            order = x
        ests = list(dict.fromkeys(e for r in results.values() for e in r["estimates"][key]))
        width = 0.7 / max(len(ests), 1)
        for i, est in enumerate(ests):
            if not all(est in results[names[k]]["estimates"][key] for k in order):
                continue
            e = [results[names[k]]["estimates"][key][est] for k in order]
            mean = np.array([v["mean"] for v in e])
            yerr = np.abs(np.array([[v["mean"] - v["low"] for v in e], [v["high"] - v["mean"] for v in e]]))
            offset = (i - (len(ests) - 1) / 2) * width
            ax.errorbar(x + offset, mean, yerr=yerr, fmt=markers.get(est, "o"), label=est, capsize=3, alpha=0.85)
        ax.set_xticks(x, [names[k] for k in order], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("return per episode" if key == "return" else "hazard events per episode")
        ax.set_title(f"Off-policy {key} estimates" + (" vs truth" if has_truth else " (logs only: no truth)"))
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def tradeoff_plot(table: Sequence[Mapping], path: Path) -> Path:
    """Safety against return: hazard rate over normalized score, one point per (learner, regime, alpha).

    Points are means over seeds with bars spanning the seeds' min and max; CQL points are labelled with their
    conservative weight, and CQL points of one regime are joined in order of the weight.
    """
    fig, ax = plt.subplots(figsize=(7.5, 5))
    x_key = "normalized_score" if all(e.get("normalized_score") for e in table) else "return"
    regimes = sorted({e["regime"] for e in table})
    markers = dict(zip(regimes, "osD^v<>", strict=False))
    for learner in sorted({e["learner"] for e in table}):
        (color,) = _colors([learner])
        for regime in regimes:
            rows = [e for e in table if e["learner"] == learner and e["regime"] == regime]
            rows.sort(key=lambda e: -1.0 if e["alpha"] is None else e["alpha"])
            x = np.array([e[x_key]["mean"] for e in rows])
            y = np.array([100 * e["hazard_rate"]["mean"] for e in rows])
            xerr = np.array([[e[x_key]["mean"] - e[x_key]["min"], e[x_key]["max"] - e[x_key]["mean"]] for e in rows]).T
            yerr = (
                100
                * np.array(
                    [
                        [
                            e["hazard_rate"]["mean"] - e["hazard_rate"]["min"],
                            e["hazard_rate"]["max"] - e["hazard_rate"]["mean"],
                        ]
                        for e in rows
                    ]  # fmt: skip
                ).T
            )
            ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt=markers[regime], color=color, capsize=3, alpha=0.85,
                        ls="-" if len(rows) > 1 else "none", label=f"{learner} ({regime})")  # fmt: skip
            for e, xi, yi in zip(rows, x, y, strict=True):
                if e["alpha"] is not None:
                    ax.annotate(f"α={e['alpha']:g}", (xi, yi), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xlabel("normalized score (mean over seeds)" if x_key == "normalized_score" else "return (mean over seeds)")
    ax.set_ylabel("hazard rate % (mean over seeds)")
    ax.set_title("Safety vs return per conservative weight (bars: min-max over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
