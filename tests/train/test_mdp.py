import numpy as np

from guardrl.data import collect
from guardrl.data.dataset import ARRAY_FIELDS, Dataset
from guardrl.train import to_mdp_dataset


def test_mdp_dataset_keeps_timeouts_apart_from_terminals(tables):
    ds = collect(tables, "noisy", 200, seed=0)
    mdp = to_mdp_dataset(ds)
    assert len(mdp.episodes) == ds.n_episodes
    terminated = sum(bool(e.terminated) for e in mdp.episodes)
    assert terminated == int(ds.terminations.sum())
    assert ds.truncations.sum() > 0
    assert sum(not e.terminated for e in mdp.episodes) == int(ds.truncations.sum())
    assert mdp.transition_count == sum(e.transition_count for e in mdp.episodes)


def test_action_size_is_declared_not_inferred(tables):
    ds = collect(tables, "safe", 30, seed=0)
    keep = ds.actions < 3  # drop every logged action 3 ("left")
    # keep whole episodes only where no action 3 occurs
    bad_eps = np.unique(ds.episode_ids[~keep])
    m = ~np.isin(ds.episode_ids, bad_eps)
    fields = {k: getattr(ds, k)[m] for k in ARRAY_FIELDS}
    sub = Dataset(**fields, n_actions=4)
    assert sub.actions.max() < 3
    assert to_mdp_dataset(sub).dataset_info.action_size == 4
