import numpy as np
import pytest
from typer.testing import CliRunner

from guardrl.cli import app
from guardrl.data import collect, load_dataset
from guardrl.data.dataset import ARRAY_FIELDS
from guardrl.data.minari_io import MinariError, export_minari, import_minari

pytest.importorskip("minari")  # installed by the test extra; an optional extra for users
runner = CliRunner()


@pytest.fixture(scope="module")
def ds(tables):
    return collect(tables, "noisy", 25, seed=6)


def test_minari_round_trip_is_exact(ds, tmp_path):
    export_minari(ds, "guardrl/safegrid/noisy-v0", root=tmp_path)
    back = import_minari("guardrl/safegrid/noisy-v0", root=tmp_path)
    for name in ARRAY_FIELDS:
        assert np.array_equal(getattr(back, name), getattr(ds, name), equal_nan=name == "propensities"), name
    assert back.n_actions == 4 and back.provenance["format"] == "minari"


def test_missing_minari_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(MinariError, match="'guardrl/none-v0'"):
        import_minari("guardrl/none-v0", root=tmp_path)


def test_cli_minari_export_and_import(ds, tmp_path):
    ds.save(tmp_path / "src")
    root = tmp_path / "minari"
    res = runner.invoke(app, ["export", str(tmp_path / "src"), "-f", "minari", "-o", "guardrl/cli-v0",
                              "--minari-root", str(root)])  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["import", "guardrl/cli-v0", "-f", "minari", "--n-actions", "4", "-o",
                              str(tmp_path / "back"), "--minari-root", str(root)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert np.array_equal(load_dataset(tmp_path / "back").actions, ds.actions)
    bad = runner.invoke(app, ["import", "guardrl/cli-v0", "-f", "minari", "--n-actions", "5", "-o",
                              str(tmp_path / "x"), "--minari-root", str(root)])  # fmt: skip
    assert bad.exit_code == 2 and "has 4 actions" in bad.output and not (tmp_path / "x").exists()
