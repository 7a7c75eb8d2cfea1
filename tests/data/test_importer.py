import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from guardrl.cli import app
from guardrl.data import collect, load_dataset
from guardrl.data.importer import ImportValidationError, LogSchema, import_log

runner = CliRunner()


def log_frame(ds):
    """A dataset as a decision log in the documented schema (obs_0, obs_1 feature columns)."""
    return pd.DataFrame({
        "episode_id": ds.episode_ids, "step": ds.steps,
        "obs_0": ds.observations[:, 0], "obs_1": ds.observations[:, 1],
        "action": ds.actions, "reward": ds.rewards, "terminated": ds.terminations, "truncated": ds.truncations,
        "cost": ds.costs, "propensity": ds.propensities, "success": ds.successes,
    })  # fmt: skip


@pytest.fixture(scope="module")
def source(tables):
    return collect(tables, "noisy", 40, seed=5)  # noisy logs have truncated episodes too


@pytest.fixture
def frame(source):
    return log_frame(source)


def write(df, tmp_path, fmt):
    path = tmp_path / f"log.{fmt}"
    if fmt == "csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_round_trip_is_exact(source, frame, tmp_path, fmt):
    ds = import_log(write(frame, tmp_path, fmt), fmt, 4, chunk_rows=97)  # many chunks: episodes cross boundaries
    for name in ("episode_ids", "steps", "actions", "rewards", "costs", "terminations", "truncations",
                 "successes", "propensities", "observations"):  # fmt: skip
        assert np.array_equal(getattr(ds, name), getattr(source, name)), name
    # next observations: the next row's, and the row's own on an episode's last row (the simulator's differ there)
    inner = ~source.episode_ends
    assert np.array_equal(ds.next_observations[inner], source.next_observations[inner])
    assert ds.truncations.sum() > 0 and ds.provenance["format"] == fmt


def test_list_column_observations_and_a_column_mapping(frame, tmp_path):
    df = frame.rename(columns={"action": "decision"})
    df["state"] = [list(r) for r in zip(df.pop("obs_0"), df.pop("obs_1"), strict=True)]
    ds = import_log(write(df, tmp_path, "parquet"), "parquet", 4, LogSchema(action="decision", obs_column="state"))
    assert ds.observations.shape == (len(df), 2)


CASES = [
    ("missing column", lambda df: df.drop(columns=["reward"]), "missing column(s) ['reward']"),
    ("wrong type", lambda df: df.assign(reward=df.reward.astype(str).where(df.index != 7, "lots")),
     "row 8, column 'reward': expected a number, got 'lots'"),
    ("nan observation", lambda df: df.assign(obs_1=df.obs_1.where(df.index != 3, np.nan)),
     "row 4 (episode 0, step 3), column 'obs_1': NaN or infinite observation"),
    ("inf reward", lambda df: df.assign(reward=df.reward.where(df.index != 5, np.inf)),
     "row 6 (episode 0, step 5), column 'reward': NaN or infinite reward"),
    ("action out of range", lambda df: df.assign(action=df.action.where(df.index != 2, 4)),
     "row 3 (episode 0, step 2), column 'action': action outside [0, 4)"),
    ("negative propensity", lambda df: df.assign(propensity=df.propensity.where(df.index != 1, -0.1)),
     "row 2 (episode 0, step 1), column 'propensity': propensity outside [0, 1]"),
    ("propensity above one", lambda df: df.assign(propensity=df.propensity.where(df.index != 1, 1.5)),
     "column 'propensity': propensity outside [0, 1]"),
    ("duplicated step", lambda df: df.assign(step=df.step.where(df.index != 4, 3)), "column 'step': step duplicated"),
    ("steps out of order", lambda df: df.assign(step=df.step.where(df.index != 4, 2)), "steps out of order"),
    ("gap", lambda df: df.drop(index=4).reset_index(drop=True), "row 5 (episode 0, step 5), column 'step': gap"),
    ("end flag before last row", lambda df: df.assign(terminated=df.terminated | (df.index == 2)),
     "row 4 (episode 0, step 3), column 'terminated': the episode continues after a row flagged"),
    ("both flags", lambda df: df.assign(truncated=df.truncated | df.terminated),
     "column 'terminated': both terminated and truncated"),
    ("no end flag", lambda df: df.assign(terminated=df.terminated & (df.episode_id != 0),
                                          truncated=df.truncated & (df.episode_id != 0)),
     "episode 0 ended without a terminated/truncated flag"),
    ("episode not contiguous", lambda df: pd.concat([df, df[df.episode_id == 0]]).reset_index(drop=True),
     "episode 0 appears again; rows of an episode must be contiguous"),
    ("empty", lambda df: df.iloc[:0], "empty file (no rows)"),
]  # fmt: skip


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_malformed_logs_fail_with_a_precise_message_and_write_nothing(frame, tmp_path, fmt, case):
    _, corrupt, message = case
    path = write(corrupt(frame.copy()), tmp_path, fmt)
    out = tmp_path / "imported"
    res = runner.invoke(app, ["import", str(path), "--format", fmt, "--n-actions", "4", "--out", str(out)])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert str(path) in text and message in text, text
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_inconsistent_observation_widths(frame, tmp_path):
    df = frame.copy()
    pairs = zip(df.pop("obs_0"), df.pop("obs_1"), strict=True)
    df["obs"] = [[a, b] if i != 6 else [a, b, 0.0] for i, (a, b) in enumerate(pairs)]
    with pytest.raises(ImportValidationError, match=r"row 7 \(episode 0, step 6\), column 'obs': observation width"):
        import_log(write(df, tmp_path, "parquet"), "parquet", 4)


def test_unended_last_episode_needs_the_flag(frame, tmp_path):
    last = frame.episode_id == frame.episode_id.max()
    df = frame.assign(terminated=frame.terminated & ~last, truncated=frame.truncated & ~last)
    path = write(df, tmp_path, "parquet")
    with pytest.raises(ImportValidationError, match="ends inside an episode"):
        import_log(path, "parquet", 4)
    ds = import_log(path, "parquet", 4, unended_as_truncated=True)
    assert ds.truncations[-1] and not ds.terminations[-1]


def test_cli_import_writes_a_loadable_dataset(frame, tmp_path):
    path = write(frame, tmp_path, "csv")
    out = tmp_path / "ds"
    res = runner.invoke(app, ["import", str(path), "-f", "csv", "--n-actions", "4", "-o", str(out),
                              "--mapping", "cost=cost"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert load_dataset(out).n_episodes == 40
    bad = runner.invoke(app, ["import", str(path), "-f", "csv", "--n-actions", "4", "-o", str(out), "--mapping", "x=y"])
    assert bad.exit_code == 2 and "FIELD=COLUMN" in bad.output
