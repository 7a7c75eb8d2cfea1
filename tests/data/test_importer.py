import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
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


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_progress_is_reported_after_every_batch(frame, tmp_path, fmt):
    seen = []
    import_log(write(frame, tmp_path, fmt), fmt, 4, chunk_rows=97, csv_block_bytes=1 << 12,
               on_rows=lambda rows, total: seen.append((rows, total)))  # fmt: skip
    rows = [r for r, _ in seen]
    assert len(seen) > 3 and rows == sorted(rows) and rows[-1] == len(frame)
    # a Parquet file says its row count up front; a CSV file is counted as it is read
    assert {t for _, t in seen} == ({len(frame)} if fmt == "parquet" else {None})


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
     "row 2 (episode 0, step 1), column 'propensity': propensity outside (0, 1]"),
    ("propensity above one", lambda df: df.assign(propensity=df.propensity.where(df.index != 1, 1.5)),
     "column 'propensity': propensity outside (0, 1]"),
    ("zero propensity", lambda df: df.assign(propensity=df.propensity.where(df.index != 9, 0.0)),
     "row 10 (episode 0, step 9), column 'propensity': propensity outside (0, 1]"),
    ("text propensity", lambda df: df.assign(propensity=df.propensity.astype(str).where(df.index != 6, "abc")),
     "row 7, column 'propensity': expected a number, got 'abc'"),
    ("negative cost", lambda df: df.assign(cost=df.cost.where(df.index != 4, -1.0)),
     "row 5 (episode 0, step 4), column 'cost': negative cost (pass --allow-negative-costs"),
    ("observation beyond float32", lambda df: df.assign(obs_0=df.obs_0.astype(float).where(df.index != 3, 1e39)),
     "row 4 (episode 0, step 3), column 'obs_0': observation outside the float32 range"),
    ("episode id beyond int64", lambda df: df.assign(episode_id=df.episode_id.astype(float).where(df.index > 0, 1e20)),
     "row 1, column 'episode_id': expected an integer within int64, got 1e+20"),
    ("duplicated step", lambda df: df.assign(step=df.step.where(df.index != 4, 3)), "column 'step': step duplicated"),
    ("steps out of order", lambda df: df.assign(step=df.step.where(df.index != 4, 2)), "steps out of order"),
    ("gap", lambda df: df.drop(index=4).reset_index(drop=True), "row 5 (episode 0, step 5), column 'step': gap"),
    ("end flag before last row", lambda df: df.assign(terminated=df.terminated | (df.index == 2)),
     "row 3 (episode 0, step 2), column 'terminated': flagged as the episode's last row (an end flag before its "
     "last row), but the episode continues on row 4"),
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
    assert res.exit_code == 1, res.output
    text = " ".join(res.output.split())
    assert str(path) in text and in_format(message, fmt) in text, text
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def in_format(message, fmt):
    """CSV errors also name the line (the header is line 1): 'row 4 (' -> 'row 4 (line 5, ', 'row 8,' -> ..."""
    if fmt != "csv":
        return message

    def add_line(m):
        row = int(m.group(1))
        return f"row {row} (line {row + 1}, " if m.group(2) == " (" else f"row {row} (line {row + 1}),"

    return re.sub(r"row (\d+)( \(|,)", add_line, message)


def test_inconsistent_observation_widths(frame, tmp_path):
    df = frame.copy()
    pairs = zip(df.pop("obs_0"), df.pop("obs_1"), strict=True)
    df["obs"] = [[a, b] if i != 6 else [a, b, 0.0] for i, (a, b) in enumerate(pairs)]
    with pytest.raises(ImportValidationError, match=r"row 7 \(episode 0, step 6\), column 'obs': observation width"):
        import_log(write(df, tmp_path, "parquet"), "parquet", 4)


def test_empty_observation_lists_are_refused(frame, tmp_path):
    df = frame.drop(columns=["obs_0", "obs_1"])
    df["obs"] = [[] for _ in range(len(df))]
    with pytest.raises(ImportValidationError, match=r"row 1 \(episode 0, step 0\), column 'obs': empty observation"):
        import_log(write(df, tmp_path, "parquet"), "parquet", 4)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_repeated_column_name_is_refused_naming_both_positions(frame, tmp_path, fmt):
    df = frame.copy()
    df.insert(len(df.columns), "reward_again", df.propensity)
    table = pa.Table.from_pandas(df, preserve_index=False).rename_columns([*df.columns[:-1], "reward"])
    path = tmp_path / f"log.{fmt}"
    if fmt == "csv":
        pa.csv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    with pytest.raises(ImportValidationError, match=r"column name 'reward' appears twice \(columns 6 and 12\)"):
        import_log(path, fmt, 4)


def test_episode_ids_beyond_int64_are_refused_not_wrapped(frame, tmp_path):
    df = frame.astype({"episode_id": object})
    df.loc[df.episode_id == df.episode_id.max(), "episode_id"] = 2**64 - 1  # uint64 in Parquet, text in CSV
    path = write(df.astype({"episode_id": "uint64"}), tmp_path, "parquet")
    first = int(np.flatnonzero(df.episode_id.to_numpy() == 2**64 - 1)[0]) + 1
    with pytest.raises(ImportValidationError, match=rf"row {first}, column 'episode_id': expected an integer within"):
        import_log(path, "parquet", 4)
    csv = write(df, tmp_path, "csv")
    with pytest.raises(ImportValidationError, match=rf"row {first} \(line {first + 1}\), column 'episode_id': integer"):
        import_log(csv, "csv", 4, csv_block_bytes=4096)  # int64 inferred from the first block, overflow later


def test_negative_costs_import_only_when_allowed(frame, tmp_path):
    path = write(frame.assign(cost=frame.cost - 0.5), tmp_path, "parquet")
    with pytest.raises(ImportValidationError, match="negative cost"):
        import_log(path, "parquet", 4)
    ds = import_log(path, "parquet", 4, allow_negative_costs=True)
    assert ds.costs.min() == -0.5


def test_csv_errors_past_the_first_block_name_row_line_and_column(frame, tmp_path):
    df = pd.concat([frame] * 5, ignore_index=True)
    df["episode_id"] = np.repeat(np.arange(5), len(frame)) * 1000 + np.tile(frame.episode_id, 5)
    late = len(df) - 30
    cases = [
        (df.assign(reward=df.reward.astype(str).where(df.index != late, "lots")), "reward", "expected a number"),
        (df.assign(propensity=df.propensity.astype(str).where(df.index != late, "abc")), "propensity",
         "expected a number"),
        (df.assign(action=df.action.astype(str).where(df.index != late, "left")), "action", "expected an integer"),
        (df.assign(success=df.success.astype(str).where(df.index != late, "maybe")), "success",
         "expected true/false or 0/1"),
    ]  # fmt: skip
    for bad, column, problem in cases:
        path = write(bad, tmp_path, "csv")
        assert path.stat().st_size > 8 * 4096  # many blocks before the bad one
        with pytest.raises(ImportValidationError) as err:
            import_log(path, "csv", 4, csv_block_bytes=4096)
        assert f"{path}: row {late + 1} (line {late + 2}), column '{column}': {problem}, got" in str(err.value)
    path = write(df, tmp_path, "csv")
    lines = path.read_text().splitlines()
    lines[late + 1] += ",7"  # a ragged row
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ImportValidationError, match=rf"row {late + 1} \(line {late + 2}\): expected 11 fields"):
        import_log(path, "csv", 4, csv_block_bytes=4096)


def test_a_later_block_with_decimals_after_whole_numbers_imports(frame, tmp_path):
    df = pd.concat([frame.assign(reward=frame.reward.round())] * 4, ignore_index=True)
    df["episode_id"] = np.repeat(np.arange(4), len(frame)) * 1000 + np.tile(frame.episode_id, 4)
    df.loc[len(df) - 5, "reward"] = 0.25  # the first blocks hold only whole numbers
    ds = import_log(write(df, tmp_path, "csv"), "csv", 4, csv_block_bytes=4096)
    assert ds.rewards[len(df) - 5] == 0.25


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
    res = runner.invoke(
        app, ["import", str(path), "--n-actions", "4", "-o", str(out), "--mapping", "cost=cost"]
    )  # fmt: skip  (the format comes from the extension)
    assert res.exit_code == 0, res.output
    assert load_dataset(out).n_episodes == 40 and load_dataset(out).provenance["format"] == "csv"
    odd = path.rename(tmp_path / "log.txt")
    res = runner.invoke(app, ["import", str(odd), "--n-actions", "4", "-o", str(tmp_path / "other")])
    assert res.exit_code == 1 and "cannot tell the format from the extension '.txt'; pass --format" in res.output
    path = odd.rename(path)
    bad = runner.invoke(app, ["import", str(path), "-f", "csv", "--n-actions", "4", "-o", str(out), "--mapping", "x=y"])
    assert bad.exit_code == 1 and "FIELD=COLUMN" in bad.output


def test_cli_import_checks_the_output_before_reading_the_log(frame, tmp_path):
    broken = tmp_path / "broken.csv"
    broken.write_text("not,a,log\n1,2\n")
    out = tmp_path / "ds"
    out.mkdir()
    res = runner.invoke(app, ["import", str(broken), "-f", "csv", "--n-actions", "4", "-o", str(out)])
    assert res.exit_code == 1 and f"{out} already exists; pass --overwrite" in " ".join(res.output.split())
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    res = runner.invoke(app, ["import", str(broken), "-f", "csv", "--n-actions", "4", "-o", str(blocker / "ds")])
    assert res.exit_code == 1 and f"{blocker} is a file, not a folder" in " ".join(res.output.split())
    assert res.exception is None or isinstance(res.exception, SystemExit)  # a clear error, not a traceback


KILLED_WRITER = """
import os, sys, time
from pathlib import Path
from guardrl._io import atomic_write_dir
def fill(tmp):
    (tmp / "part").write_text("half")
    print(tmp, flush=True)
    time.sleep(60)
atomic_write_dir(Path(sys.argv[1]), fill)
"""


def test_a_write_killed_midway_leaves_no_temporary_behind_for_good(frame, tmp_path):
    out = tmp_path / "ds"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(out)], stdout=subprocess.PIPE, text=True)
    tmp = proc.stdout.readline().strip()
    proc.kill()
    proc.wait()
    assert os.path.isdir(tmp) and not out.exists()  # what SIGKILL leaves
    path = write(frame, tmp_path, "csv")
    res = runner.invoke(app, ["import", str(path), "-f", "csv", "--n-actions", "4", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert not os.path.exists(tmp) and sorted(p.name for p in tmp_path.iterdir()) == ["ds", "log.csv"]


@pytest.mark.parametrize(("umask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_written_files_respect_the_umask(frame, tmp_path, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        ds = import_log(write(frame, tmp_path, "csv"), "csv", 4)
        ds.save(tmp_path / "ds")
    finally:
        os.umask(old)
    assert (tmp_path / "ds").stat().st_mode & 0o777 == dir_mode
    for f in (tmp_path / "ds").iterdir():
        assert f.stat().st_mode & 0o777 == file_mode, f


def test_export_to_a_place_that_cannot_be_written_is_a_clear_error(source, tmp_path):
    source.save(tmp_path / "ds")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    res = runner.invoke(app, ["export", str(tmp_path / "ds"), "-f", "csv", "-o", str(blocker / "log.csv")])
    assert res.exit_code == 1 and f"{blocker / 'log.csv'}: cannot create its folder" in " ".join(res.output.split())


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_then_import_is_exact_to_the_last_next_observation(source, tmp_path, fmt):
    from guardrl.data.dataset import ARRAY_FIELDS
    from guardrl.data.importer import export_log

    back = import_log(export_log(source, tmp_path / f"log.{fmt}", fmt), fmt, 4, csv_block_bytes=4096)
    for name in ARRAY_FIELDS:
        assert np.array_equal(getattr(back, name), getattr(source, name), equal_nan=True), name
    # the simulator's last next observations differ from the rows' own: only the columns carry them
    last = source.episode_ends
    assert (source.next_observations[last] != source.observations[last]).any()


def test_next_observations_that_contradict_the_next_row_are_refused(source, tmp_path):
    from guardrl.data.importer import export_log

    path = export_log(source, tmp_path / "log.parquet", "parquet")
    df = pd.read_parquet(path)
    df.loc[4, "next_obs_1"] += 1.0  # row 5's next observation no longer matches row 6
    df.to_parquet(path, index=False)
    with pytest.raises(ImportValidationError, match=r"row 6 \(episode 0, step 5\), column 'obs_1': differs from the "
                                                    r"previous row's next_obs_1"):  # fmt: skip
        import_log(path, "parquet", 4)
