import json

import numpy as np
import pytest

from guardrl.data import DatasetError, collect, load_dataset
from guardrl.data.dataset import ARRAY_FIELDS


def test_collection_is_reproducible_and_seed_sensitive(tables):
    a = collect(tables, "safe", 80, seed=5)
    b = collect(tables, "safe", 80, seed=5)
    c = collect(tables, "safe", 80, seed=6)
    assert a.content_hash() == b.content_hash()
    assert a.content_hash() != c.content_hash()


def test_propensities_are_behaviour_probabilities(tables):
    ds = collect(tables, "safe", 100, seed=1)
    # eps=0.22 over 4 actions: a non-preferred action has probability 0.055; preferred ones more
    assert ds.propensities.min() == pytest.approx(0.055)
    assert set(np.round(np.unique(ds.propensities), 4)) <= {0.055, 0.445, 0.835}
    mixed = collect(tables, "mixed", 100, seed=1)
    assert np.isclose(mixed.propensities, 0.25).sum() > 0


def test_episode_structure(tables):
    ds = collect(tables, "noisy", 120, seed=2)
    assert ds.n_episodes == 120
    ends = ds.episode_ends
    starts = ds.episode_starts
    assert (ds.steps[starts] == 0).all()
    assert ends.sum() == 120 and not (ds.terminations & ds.truncations).any()
    assert np.array_equal(np.flatnonzero(ends) + 1, np.append(starts[1:], len(ds)))
    # within an episode, next_obs of one step is the obs of the next
    same = ~ends[:-1]
    assert np.array_equal(ds.next_observations[:-1][same], ds.observations[1:][same])
    episodes = list(ds.episodes())
    assert len(episodes) == 120 and sum(e.length for e in episodes) == len(ds)
    assert episodes[0].terminations[-1] or episodes[0].truncations[-1]


def test_truncations_are_kept_apart(tables):
    ds = collect(tables, "noisy", 300, seed=0)
    assert ds.truncations.sum() > 0 and ds.terminations.sum() > 0
    assert (ds.steps[ds.truncations] == tables.layout.max_steps - 1).all()


def test_round_trip_is_exact(tables, tmp_path):
    ds = collect(tables, "mixed", 50, seed=4)
    ds.save(tmp_path / "d")
    back = load_dataset(tmp_path / "d")
    for name in ARRAY_FIELDS:
        a, b = getattr(ds, name), getattr(back, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert back.provenance["regime"] == "mixed" and back.provenance["seed"] == 4
    assert back.n_actions == 4


def test_save_refuses_to_overwrite_and_leaves_original(tables, tmp_path):
    ds = collect(tables, "safe", 10, seed=0)
    ds.save(tmp_path / "d")
    before = (tmp_path / "d" / "transitions.parquet").read_bytes()
    with pytest.raises(FileExistsError):
        collect(tables, "safe", 10, seed=1).save(tmp_path / "d")
    assert (tmp_path / "d" / "transitions.parquet").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no temporary leftovers


def test_load_errors_name_the_file_and_field(tables, tmp_path):
    with pytest.raises(DatasetError, match="metadata.json: missing"):
        load_dataset(tmp_path)
    ds = collect(tables, "safe", 10, seed=0)
    ds.save(tmp_path / "d")
    meta_path = tmp_path / "d" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["sha256"] = "0" * 64
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="does not match the sha256"):
        load_dataset(tmp_path / "d")
    del meta["n_actions"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="missing field 'n_actions'"):
        load_dataset(tmp_path / "d")
    (tmp_path / "d" / "transitions.parquet").write_bytes(b"not parquet")
    meta_path.write_text(json.dumps(ds.metadata()))
    with pytest.raises(DatasetError, match="transitions.parquet: cannot be read"):
        load_dataset(tmp_path / "d")


def test_unknown_regime_is_an_error(tables):
    with pytest.raises(ValueError, match="unknown dataset regime"):
        collect(tables, "wild", 10, seed=0)
