"""Conversion of guardrl datasets to d3rlpy's ``MDPDataset``."""

from __future__ import annotations

import numpy as np
from d3rlpy.constants import ActionSpace
from d3rlpy.dataset import MDPDataset

from guardrl.data import Dataset


def to_mdp_dataset(ds: Dataset) -> MDPDataset:
    """Terminations become ``terminals`` and truncations ``timeouts`` (a timeout is not a terminal);
    ``action_size`` is the dataset's declared number of actions, not the largest action seen (continuous
    actions: their width)."""
    continuous = ds.is_continuous
    return MDPDataset(
        observations=ds.observations.astype(np.float32),
        actions=ds.actions.astype(np.float32 if continuous else np.int64),
        rewards=ds.rewards.astype(np.float32),
        terminals=ds.terminations.astype(np.float32),
        timeouts=ds.truncations.astype(np.float32),
        action_space=ActionSpace.CONTINUOUS if continuous else ActionSpace.DISCRETE,
        action_size=ds.action_dim if continuous else ds.n_actions,
    )
