"""Reporting: plots of a run (matplotlib lives only here) and the self-contained HTML report."""

from guardrl.report.html import render_html, render_sweep_html, spread_text
from guardrl.report.plots import (
    learning_curves,
    ope_vs_truth,
    returns_with_ci,
    reward_histogram,
    safety_bars,
    tradeoff_plot,
    visitation_heatmap,
)

__all__ = [
    "learning_curves",
    "ope_vs_truth",
    "render_html",
    "render_sweep_html",
    "returns_with_ci",
    "reward_histogram",
    "safety_bars",
    "spread_text",
    "tradeoff_plot",
    "visitation_heatmap",
]
