import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from guardrl.cli import app
from guardrl.data import collect, load_dataset
from guardrl.data.hdf5 import HDF5FormatError, export_hdf5, import_hdf5

runner = CliRunner()
SHARED = ("episode_ids", "steps", "observations", "actions", "rewards", "terminations", "truncations")


@pytest.fixture(scope="module")
def ds(tables):
    return collect(tables, "noisy", 30, seed=4)  # with truncated episodes


def test_export_is_read_by_d3rlpy_and_round_trips(ds, tmp_path):
    from d3rlpy.dataset import InfiniteBuffer, ReplayBuffer

    import guardrl.train  # noqa: F401  (silences d3rlpy's legacy gym banner)

    path = export_hdf5(ds, tmp_path / "d.h5")
    with open(path, "rb") as f:
        buffer = ReplayBuffer.load(f, InfiniteBuffer())
    assert len(buffer.episodes) == ds.n_episodes
    first = buffer.episodes[0]
    n0 = int((ds.episode_ids == ds.episode_ids[0]).sum())
    assert np.array_equal(first.observations, ds.observations[:n0])
    assert np.array_equal(first.actions[:, 0], ds.actions[:n0])
    assert [bool(e.terminated) for e in buffer.episodes] == list(ds.terminations[ds.episode_ends])
    back = import_hdf5(path, 4)
    for name in SHARED:
        assert np.array_equal(getattr(back, name), getattr(ds, name)), name


def test_reads_what_d3rlpy_itself_dumps(ds, tmp_path):
    from guardrl.train import to_mdp_dataset

    path = tmp_path / "d3.h5"
    with open(path, "w+b") as f:  # h5py reads back while writing
        to_mdp_dataset(ds).dump(f)
    back = import_hdf5(path, 4)
    for name in SHARED:
        assert np.array_equal(getattr(back, name), getattr(ds, name)), name
    assert np.isnan(back.propensities).all() and back.provenance["format"] == "hdf5 (d3rlpy 2.1)"


def test_bad_hdf5_files_are_clear_errors(ds, tmp_path):
    not_h5 = tmp_path / "x.h5"
    not_h5.write_text("hello")
    with pytest.raises(HDF5FormatError, match="not an HDF5 file"):
        import_hdf5(not_h5, 4)
    path = export_hdf5(ds, tmp_path / "d.h5")
    with h5py.File(path, "a") as h5:
        del h5["rewards_3"]
    with pytest.raises(HDF5FormatError, match=r"missing entry 'rewards_3' \(episode 3\)"):
        import_hdf5(path, 4)
    with pytest.raises(HDF5FormatError, match=r"actions must be integers in \[0, 3\)"):
        import_hdf5(export_hdf5(ds, tmp_path / "e.h5"), 3)


def test_cli_export_and_import(ds, tmp_path):
    ds.save(tmp_path / "src")
    for fmt, name in (("hdf5", "d.h5"), ("csv", "d.csv"), ("parquet", "d.parquet")):
        res = runner.invoke(app, ["export", str(tmp_path / "src"), "-f", fmt, "-o", str(tmp_path / name)])
        assert res.exit_code == 0, res.output
        res = runner.invoke(app, ["import", str(tmp_path / name), "-f", fmt, "--n-actions", "4",
                                  "-o", str(tmp_path / f"back-{fmt}")])  # fmt: skip
        assert res.exit_code == 0, res.output
        back = load_dataset(tmp_path / f"back-{fmt}")
        for field in SHARED:
            assert np.array_equal(getattr(back, field), getattr(ds, field)), (fmt, field)
