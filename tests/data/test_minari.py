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
    assert bad.exit_code == 1 and "has 4 actions" in bad.output and not (tmp_path / "x").exists()


def test_continuous_actions_round_trip_through_a_box_action_space(tmp_path):
    from guardrl.data.collect import collect_nav
    from guardrl.envs.safenav import NavLayout

    nav = collect_nav(NavLayout(), "noisy", 20, seed=2)
    export_minari(nav, "guardrl/safenav/noisy-v0", root=tmp_path)
    back = import_minari("guardrl/safenav/noisy-v0", root=tmp_path)
    assert back.action_bounds == nav.action_bounds and back.n_actions == 0
    for name in ARRAY_FIELDS:
        assert np.array_equal(getattr(back, name), getattr(nav, name), equal_nan=name == "propensities"), name
    nav.save(tmp_path / "nav")
    res = runner.invoke(app, ["import", "guardrl/safenav/noisy-v0", "-f", "minari", "--n-actions", "4", "-o",
                              str(tmp_path / "x"), "--minari-root", str(tmp_path)])  # fmt: skip
    assert res.exit_code == 1 and "is a Box (continuous actions); drop --n-actions" in " ".join(res.output.split())
    res = runner.invoke(app, ["import", "guardrl/safenav/noisy-v0", "-f", "minari", "-o", str(tmp_path / "y"),
                              "--minari-root", str(tmp_path)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert load_dataset(tmp_path / "y").content_hash() == load_dataset(tmp_path / "nav").content_hash()


def test_a_continuous_action_outside_the_box_names_the_episode_and_step(tmp_path):
    import h5py

    from guardrl.data.collect import collect_nav
    from guardrl.envs.safenav import NavLayout

    export_minari(collect_nav(NavLayout(), "safe", 5, seed=2), "guardrl/nav-v0", root=tmp_path)
    with h5py.File(tmp_path / "guardrl" / "nav-v0" / "data" / "main_data.hdf5", "r+") as f:
        f["episode_1/actions"][3, 1] = 1.75  # the box is [-1, 1]^2
    with pytest.raises(MinariError, match=r"'guardrl/nav-v0': episode 1: step 3 action_1 = 1.75 is outside"):
        import_minari("guardrl/nav-v0", root=tmp_path)
