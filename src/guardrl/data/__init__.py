"""Behaviour logs: behaviour policies, dataset regimes, collection and the on-disk dataset format."""

from guardrl.data.behaviour import REGIMES, Component, constrained_policy, greedy_safe_probs, uniform_policy
from guardrl.data.collect import collect
from guardrl.data.dataset import Dataset, DatasetError, Episode, load_dataset

__all__ = [
    "REGIMES",
    "Component",
    "Dataset",
    "DatasetError",
    "Episode",
    "collect",
    "constrained_policy",
    "greedy_safe_probs",
    "load_dataset",
    "uniform_policy",
]
