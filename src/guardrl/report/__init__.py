"""Reporting: plots of a run (matplotlib lives only here)."""

from guardrl.report.plots import learning_curves, returns_with_ci, reward_histogram, safety_bars, visitation_heatmap

__all__ = ["learning_curves", "returns_with_ci", "reward_histogram", "safety_bars", "visitation_heatmap"]
