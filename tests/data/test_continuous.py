from dataclasses import replace

import h5py
import numpy as np
import pandas as pd
import pytest

from guardrl.data.collect import collect_nav
from guardrl.data.d4rl import D4RLFormatError, export_d4rl, import_d4rl
from guardrl.data.dataset import DatasetError, load_dataset
from guardrl.envs.safenav import NavLayout


@pytest.fixture(scope="module")
def nav_logs():
    return collect_nav(NavLayout(), "mixed", 60, seed=3)


def test_safenav_logs_are_continuous_reproducible_and_carry_the_behaviour_density(nav_logs):
    assert nav_logs.is_continuous and nav_logs.action_dim == 2 and nav_logs.n_actions == 0
    assert nav_logs.actions.dtype == np.float32 and np.abs(nav_logs.actions).max() <= 1.0
    assert collect_nav(NavLayout(), "mixed", 60, seed=3).content_hash() == nav_logs.content_hash()
    assert collect_nav(NavLayout(), "mixed", 60, seed=4).content_hash() != nav_logs.content_hash()
    # 30% of episodes uniform on the box (density 1/4), the rest the steering controller's squashed Gaussian
    uniform = nav_logs.episode_ids < 18
    np.testing.assert_allclose(nav_logs.propensities[uniform], 0.25)
    assert (nav_logs.propensities[~uniform] > 0).all() and np.isfinite(nav_logs.propensities).all()
    assert nav_logs.provenance["environment"] == "SafeNav-v0" and nav_logs.provenance["regime"] == "mixed"


def test_the_dataset_folder_round_trips_continuous_actions(nav_logs, tmp_path):
    nav_logs.save(tmp_path / "ds")
    back = load_dataset(tmp_path / "ds")
    assert back.content_hash() == nav_logs.content_hash() and back.action_bounds == ((-1.0, -1.0), (1.0, 1.0))
    np.testing.assert_array_equal(back.actions, nav_logs.actions)


def test_a_continuous_action_outside_its_box_is_refused_with_its_row_and_column(nav_logs, tmp_path):
    actions = nav_logs.actions.copy()
    actions[7, 1] = 1.5
    with pytest.raises(ValueError, match=r"row 7 action_1 = 1\.5 is outside its bounds \[-1, 1\] \(1 row"):
        replace(nav_logs, actions=actions)
    actions[9, 0] = np.nan
    with pytest.raises(ValueError, match=r"row 7 action_1 .*\(2 row\(s\) in all\)"):
        replace(nav_logs, actions=actions)


def test_the_d4rl_layout_round_trips_everything_guardrl_logs(nav_logs, tmp_path):
    path = export_d4rl(nav_logs, tmp_path / "nav.hdf5")
    with h5py.File(path) as h5:
        assert h5["observations"].shape == (len(nav_logs), 2) and h5["actions"].shape == (len(nav_logs), 2)
        assert int(h5["terminals"][()].sum() + h5["timeouts"][()].sum()) == nav_logs.n_episodes
    back = import_d4rl(path)
    assert back.content_hash() == nav_logs.content_hash()
    assert back.n_episodes == 60 and back.provenance["format"] == "d4rl (hdf5)"


def _write(path, n=6, **override):
    arrays = {
        "observations": np.arange(2 * n, dtype=np.float32).reshape(n, 2),
        "actions": np.zeros((n, 3), dtype=np.float32),
        "rewards": np.ones(n, dtype=np.float32),
        "terminals": np.array([0, 0, 1, 0, 0, 0], dtype=bool)[:n],
        "timeouts": np.array([0, 0, 0, 0, 0, 1], dtype=bool)[:n],
    }
    arrays.update(override)
    with h5py.File(path, "w") as h5:
        for key, value in arrays.items():
            if value is not None:
                h5.create_dataset(key, data=value)
    return path


def test_a_d4rl_file_without_extras_splits_episodes_at_terminals_and_timeouts(tmp_path):
    ds = import_d4rl(_write(tmp_path / "plain.hdf5"))
    assert ds.episode_ids.tolist() == [0, 0, 0, 1, 1, 1] and ds.steps.tolist() == [0, 1, 2, 0, 1, 2]
    assert np.isnan(ds.propensities).all() and ds.costs.sum() == 0
    # next observation: the next row's, except at an episode's end (its own)
    np.testing.assert_array_equal(ds.next_observations[:, 0], [2, 4, 4, 8, 10, 10])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"actions": np.array([[0, 0, 0]] * 4 + [[0, 2.0, 0]] + [[0, 0, 0]], dtype=np.float32)},
         r"'actions': row 4 action_1 = 2\.0 is outside its bounds \[-1, 1\]"),
        ({"timeouts": None}, r"missing array 'timeouts'"),
        ({"rewards": np.array([1, 1, np.nan, 1, 1, 1], dtype=np.float32)}, r"'rewards' row 2 is NaN"),
        ({"timeouts": np.zeros(6, dtype=bool)}, r"rows 3\.\.5 end with neither a terminal nor a timeout"),
        ({"timeouts": np.array([0, 0, 1, 0, 0, 1], dtype=bool)}, r"row 2 is both terminal and timeout"),
        ({"rewards": np.ones(5, dtype=np.float32)}, r"'rewards' has 5 rows, 'observations' 6"),
    ],
)  # fmt: skip
def test_a_bad_d4rl_file_is_refused_naming_the_file_and_row(tmp_path, override, message):
    path = _write(tmp_path / "bad.hdf5", **override)
    with pytest.raises(D4RLFormatError, match=message) as err:
        import_d4rl(path)
    assert str(path) in str(err.value)


def test_a_corrupt_action_space_in_metadata_is_a_dataset_error(nav_logs, tmp_path):
    nav_logs.save(tmp_path / "ds")
    meta = tmp_path / "ds" / "metadata.json"
    meta.write_text(meta.read_text().replace('"type": "box"', '"type": "cube"'))
    with pytest.raises(DatasetError, match=r"metadata.json: action_space must be"):
        load_dataset(tmp_path / "ds")


def test_the_cli_imports_and_exports_d4rl_and_refuses_to_lose_continuous_actions(nav_logs, tmp_path):
    from typer.testing import CliRunner

    from guardrl.cli import app

    runner = CliRunner()
    export_d4rl(nav_logs, tmp_path / "nav.hdf5")
    # the .hdf5 extension means d3rlpy's format: the error points at --format d4rl
    res = runner.invoke(app, ["import", str(tmp_path / "nav.hdf5"), "--out", str(tmp_path / "x"), "--n-actions", "4"])
    assert res.exit_code == 1 and "pass --format d4rl" in res.output
    res = runner.invoke(app, ["import", str(tmp_path / "nav.hdf5"), "-f", "d4rl", "--out", str(tmp_path / "ds")])
    assert res.exit_code == 0, res.output
    assert load_dataset(tmp_path / "ds").content_hash() == nav_logs.content_hash()
    res = runner.invoke(app, ["import", str(tmp_path / "nav.hdf5"), "-f", "d4rl", "--out", str(tmp_path / "narrow"),
                              "--action-low", "-0.5", "--action-high", "0.5"])  # fmt: skip
    assert res.exit_code == 1 and "is outside its bounds [-0.5, 0.5]" in res.output
    assert not (tmp_path / "narrow").exists()
    # d3rlpy's HDF5 holds integer actions: writing continuous ones there would truncate them
    res = runner.invoke(app, ["export", str(tmp_path / "ds"), "--out", str(tmp_path / "d3.h5"), "-f", "hdf5"])
    assert res.exit_code == 1 and "the dataset has continuous actions" in res.output
    assert not (tmp_path / "d3.h5").exists()
    res = runner.invoke(app, ["export", str(tmp_path / "ds"), "--out", str(tmp_path / "again.hdf5"), "-f", "d4rl"])
    assert res.exit_code == 0 and import_d4rl(tmp_path / "again.hdf5").content_hash() == nav_logs.content_hash()
    res = runner.invoke(app, ["import", str(tmp_path / "nav.hdf5"), "-f", "hdf5", "--out", str(tmp_path / "y")])
    assert res.exit_code == 1 and "needs --n-actions" in res.output


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_csv_and_parquet_round_trip_continuous_actions_and_their_densities(nav_logs, tmp_path, fmt):
    from guardrl.data.dataset import ARRAY_FIELDS
    from guardrl.data.importer import export_log, import_log

    path = export_log(nav_logs, tmp_path / f"nav.{fmt}", fmt)
    header = pd.read_parquet(path).columns if fmt == "parquet" else pd.read_csv(path, nrows=1).columns
    assert {"action_0", "action_1"} <= set(header) and "action" not in header
    assert (nav_logs.propensities > 1).any()  # densities, not probabilities: above 1 is fine
    back = import_log(path, fmt, None, action_bounds=(-1.0, 1.0), chunk_rows=501, csv_block_bytes=1 << 14)
    assert back.action_bounds == nav_logs.action_bounds and back.n_actions == 0
    for name in ARRAY_FIELDS:
        assert np.array_equal(getattr(back, name), getattr(nav_logs, name), equal_nan=True), name


def test_continuous_csv_errors_name_the_row_and_column_and_write_nothing(nav_logs, tmp_path):
    from typer.testing import CliRunner

    from guardrl.cli import app
    from guardrl.data.importer import ImportValidationError, export_log, import_log

    path = export_log(nav_logs, tmp_path / "nav.csv", "csv")
    df = pd.read_csv(path)
    df.loc[6, "action_1"] = 1.5  # data row 7 (CSV line 8)
    df.to_csv(path, index=False)
    ep, st = int(df.loc[6, "episode_id"]), int(df.loc[6, "step"])
    res = CliRunner().invoke(app, ["import", str(path), "--out", str(tmp_path / "ds")])
    assert res.exit_code == 1, res.output
    assert (f"row 7 (line 8, episode {ep}, step {st}), column 'action_1': action outside its bounds [-1, 1]"
            in " ".join(res.output.split()))  # fmt: skip
    assert not (tmp_path / "ds").exists()
    # a discrete action count for continuous columns is a mistake, not a hint
    with pytest.raises(ImportValidationError, match=r"the actions are continuous .* drop --n-actions"):
        import_log(path, "csv", 4)
    df.loc[6, "action_1"] = 0.5
    df.loc[3, "propensity"] = 0.0
    df.to_csv(path, index=False)
    with pytest.raises(ImportValidationError, match=r"row 4 .*column 'propensity': .*density.* > 0"):
        import_log(path, "csv", None, action_bounds=(-1.0, 1.0))
    df.loc[3, "propensity"] = 0.5
    df.drop(columns="action_1").to_csv(path, index=False)  # one column left: a box of two does not fit
    with pytest.raises(ImportValidationError, match=r"do not fit 1 action column"):
        import_log(path, "csv", None, action_bounds=([-1.0, -1.0], [1.0, 1.0]))
    df.rename(columns={"action_1": "action_2"}).to_csv(path, index=False)
    with pytest.raises(ImportValidationError, match=r"numbered from 0 without gaps, got \['action_0', 'action_2'\]"):
        import_log(path, "csv", None, action_bounds=(-1.0, 1.0))


def test_a_list_column_of_continuous_actions_imports_and_a_bound_value_stays_inside_the_box(nav_logs, tmp_path):
    from guardrl.data.importer import export_log, import_log

    df = pd.read_parquet(export_log(nav_logs, tmp_path / "nav.parquet", "parquet"))
    actions = np.clip(df[["action_0", "action_1"]].to_numpy(np.float64), -0.1, 0.1)
    actions[0] = [-0.1, 0.1]  # on the bounds below, which float32 cannot hold exactly
    df = df.drop(columns=["action_0", "action_1"]).assign(action=[list(a) for a in actions])
    df.to_parquet(tmp_path / "list.parquet", index=False)
    ds = import_log(tmp_path / "list.parquet", "parquet", None, action_bounds=(-0.1, 0.1))
    assert ds.actions.shape == (len(nav_logs), 2) and ds.actions.dtype == np.float32
    assert -0.1 <= float(ds.actions[0, 0]) and float(ds.actions[0, 1]) <= 0.1
    assert np.allclose(ds.actions[0], [-0.1, 0.1])


def test_continuous_support_accepts_logged_pairs_and_refuses_far_actions():
    from guardrl.data.continuous_support import ContinuousSupport, ContinuousSupportConfig

    nav_logs = collect_nav(NavLayout(), "safe", 60, seed=3)  # no uniform-random episodes: every action heads on
    support = ContinuousSupport(nav_logs, ContinuousSupportConfig(k=5, quantile=0.99))
    inside = support.supported(nav_logs.observations, nav_logs.actions).mean()
    assert 0.98 <= inside <= 1.0  # the threshold is the logs' own 99th percentile (each pair counts itself here)
    # at the logged start states, full speed left and down: the controller heads right and up from there
    starts = nav_logs.observations[nav_logs.steps == 0][:20]
    away = np.tile([-1.0, -1.0], (len(starts), 1))
    assert not support.supported(starts, away).any()
    assert (support.distance(starts, away) > support.threshold).all()
    # by hand: a pair's distance is in units of the logs' standard deviation per feature
    scale = np.concatenate([nav_logs.observations, nav_logs.actions], axis=1).std(axis=0)
    np.testing.assert_allclose(support.scale, scale, rtol=1e-5)
    with pytest.raises(ValueError, match="discrete logs use the audit's counts"):
        from guardrl.data import collect
        from guardrl.envs import build_tables, default_layout

        ContinuousSupport(collect(build_tables(default_layout()), "safe", 3, 0))
