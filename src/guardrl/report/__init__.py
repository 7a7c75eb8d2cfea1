"""Reporting: plots (matplotlib lives only here), the self-contained HTML report and the console tables.

Names load on first use, so the console tables (``guardrl.report.console``) do not pull in matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULE_OF = {
    "Memo": "memo",
    "build_memo": "memo",
    "render_html": "html",
    "render_sweep_html": "html",
    "learning_curves": "plots",
    "ope_vs_truth": "plots",
    "returns_with_ci": "plots",
    "reward_histogram": "plots",
    "safety_bars": "plots",
    "tradeoff_plot": "plots",
    "visitation_heatmap": "plots",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'guardrl.report' has no attribute {name!r}")
    return getattr(importlib.import_module(f"guardrl.report.{_MODULE_OF[name]}"), name)
