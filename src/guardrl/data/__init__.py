"""Behaviour logs: behaviour policies and regimes, collection, the on-disk dataset format, the importer and the
other formats (d3rlpy and D4RL HDF5, Minari), MuJoCo logs, continuous support, and the dataset audit."""

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
