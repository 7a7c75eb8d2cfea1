import json
import re

import pytest
import yaml
from typer.testing import CliRunner

from guardrl.cli import app
from guardrl.config import to_dict

runner = CliRunner()


@pytest.fixture
def tiny_yaml(tmp_path, tiny_config):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(to_dict(tiny_config)))
    return path


def test_help_lists_every_stage():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for cmd in ("run", "collect", "audit", "train", "evaluate", "ope", "gate", "report", "show"):
        assert cmd in result.output
    for cmd in ("run", "collect", "audit", "train", "evaluate", "ope", "gate", "report"):
        sub = runner.invoke(app, [cmd, "--help"])
        assert sub.exit_code == 0 and "Usage" in sub.output


def test_tiny_end_to_end_run(tmp_path, tiny_yaml):
    runs = tmp_path / "runs"
    result = runner.invoke(app, ["run", "--config", str(tiny_yaml), "--runs-dir", str(runs), "--quiet"])
    assert result.exit_code == 0, result.output
    run_dir = runs / "tiny"
    expected = {
        "config.yaml", "metrics.json", "training.json", "dataset/transitions.parquet", "dataset/metadata.json",
        "policies/bc.pt", "policies/bc.onnx", "policies/bc.json", "policies/cql.pt", "policies/cql.onnx",
        "policies/cql.json", "policies/bc.scores.pt", "policies/cql.scores.pt", "plots/state_visitation.png",
        "plots/rewards.png", "plots/returns.png",
        "plots/safety.png", "plots/learning_curves.png", "audit.json", "ope.json", "gate.json", "report.html",
        "plots/ope_vs_truth.png", "memo.md", "recommendation.json", "portfolio.json",
    }  # fmt: skip
    found = {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}
    assert expected == found
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["policies"]) == {"behaviour", "random", "optimal", "hazard-seeking", "bc", "cql"}
    opt = metrics["policies"]["optimal"]
    assert opt["n_episodes"] == 90
    assert opt["normalized_score"]["mean"] == pytest.approx(100.0, abs=3.0)
    assert metrics["policies"]["random"]["normalized_score"]["mean"] == pytest.approx(0.0, abs=5.0)
    for name in ("bc", "cql", "optimal"):
        assert metrics["policies"][name]["mismatch"]["flag"] in {"ok", "caution", "red"}
    assert metrics["policies"]["optimal"]["exact"]["expected_return"] == pytest.approx(21.69, abs=0.01)
    assert metrics["policies"]["behaviour"]["exact"]["hazard_prob"] == pytest.approx(0.2073, abs=1e-4)
    for name in ("bc", "cql"):  # learned policies get exact values too (dynamic programming on their greedy table)
        exact = metrics["policies"][name]["exact"]
        assert 0.0 <= exact["hazard_prob"] <= 1.0 and "normalized_score" in exact
    assert "deployment gate" not in result.output  # --quiet: no tables, only the verdicts and the folder
    assert re.search(r"gate: bc (PASS|CAUTION|FAIL), cql (PASS|CAUTION|FAIL)", result.output), result.output
    gate = json.loads((run_dir / "gate.json").read_text())
    assert set(gate["decisions"]) == {"bc", "cql"}
    assert all(d["decision"] in {"PASS", "CAUTION", "FAIL"} and d["reasons"] for d in gate["decisions"].values())
    ope = json.loads((run_dir / "ope.json").read_text())
    assert set(ope["policies"]) == {"bc", "cql"}
    assert set(ope["policies"]["cql"]["estimates"]["return"]) == {"pdis", "wis", "fqe", "dr"}
    card = json.loads((run_dir / "policies" / "cql.json").read_text())
    assert card["dataset_sha256"] == metrics["dataset_sha256"] and card["learner_config"]["n_steps"] == 40
    assert card["training"] == {"gradient_steps": 40, "stopped": "planned steps done"}
    assert card["learner"] == "cql" and card["input"]["encoder"] == "one-hot of the (x, y) cell of the 15x15 grid"
    assert not [p for p in runs.iterdir() if p.name.startswith(".")]  # no temporary folders left

    # the same config gives the same metrics (timings aside)
    again = runner.invoke(app, ["run", "--config", str(tiny_yaml), "--runs-dir", str(runs), "--name", "again"])
    assert again.exit_code == 0, again.output
    assert "cql" in again.output and "hazard" in again.output and "deployment gate" in again.output
    m2 = json.loads((runs / "again" / "metrics.json").read_text())
    metrics.pop("timings_seconds"), m2.pop("timings_seconds")
    assert m2 == metrics

    # an existing run is never overwritten by accident
    before = (run_dir / "metrics.json").read_bytes()
    clash = runner.invoke(app, ["run", "--config", str(tiny_yaml), "--runs-dir", str(runs), "-q"])
    assert clash.exit_code == 1 and "already exists" in clash.output
    assert (run_dir / "metrics.json").read_bytes() == before


def test_stages_run_alone_on_existing_artifacts(tmp_path, tiny_yaml):
    run_dir = tmp_path / "r"
    assert runner.invoke(app, ["train", str(run_dir)]).exit_code == 1
    res = runner.invoke(app, ["collect", str(run_dir), "--config", str(tiny_yaml)])
    assert res.exit_code == 0 and "logged 60 episodes" in res.output, res.output
    res = runner.invoke(app, ["evaluate", str(run_dir)])
    assert res.exit_code == 1 and "bc.pt: missing" in res.output
    res = runner.invoke(app, ["train", str(run_dir), "-q"])
    assert res.exit_code == 0, res.output
    assert "bc: 40 steps" in res.output
    res = runner.invoke(app, ["evaluate", str(run_dir)])
    assert res.exit_code == 0, res.output
    assert (run_dir / "metrics.json").is_file()
    assert runner.invoke(app, ["show", str(run_dir)]).exit_code == 0
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["name"] == "r"  # the folder names the run
    # auditing the run's dataset leaves the audit where the gate reads it
    res = runner.invoke(app, ["audit", str(run_dir / "dataset")])
    assert res.exit_code == 0 and f"written: {run_dir / 'audit.json'}" in res.output, res.output
    assert runner.invoke(app, ["ope", str(run_dir)]).exit_code == 0
    res = runner.invoke(app, ["gate", str(run_dir)])
    assert res.exit_code == 0 and "no dataset audit" not in res.output and "audit" in res.output, res.output


def test_bad_config_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  cql:\n    conservative_weight: 6\n")
    res = runner.invoke(app, ["run", "--config", str(bad), "--runs-dir", str(tmp_path)])
    assert res.exit_code == 1
    assert "conservative_weight: unknown option" in res.output


def test_audit_ope_gate_report_commands(tmp_path, tiny_yaml):
    run_dir = tmp_path / "r"
    assert runner.invoke(app, ["collect", str(run_dir), "--config", str(tiny_yaml)]).exit_code == 0
    out = tmp_path / "audit.json"
    res = runner.invoke(app, ["audit", str(run_dir / "dataset"), "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "verdict:" in res.output and json.loads(out.read_text())["size"]["episodes"] == 60
    assert json.loads((run_dir / "audit.json").read_text()) == json.loads(out.read_text())  # where the gate reads
    assert runner.invoke(app, ["audit", str(tmp_path / "nowhere")]).exit_code == 1
    res = runner.invoke(app, ["ope", str(run_dir)])
    assert res.exit_code == 1 and "bc.pt: missing" in res.output
    assert runner.invoke(app, ["train", str(run_dir), "-q"]).exit_code == 0
    res = runner.invoke(app, ["gate", str(run_dir)])
    assert res.exit_code == 1 and "metrics.json: missing" in res.output
    assert runner.invoke(app, ["evaluate", str(run_dir)]).exit_code == 0
    # without OPE or audit the gate cannot pass anything on the missing evidence
    (run_dir / "audit.json").unlink()
    res = runner.invoke(app, ["gate", str(run_dir)])
    assert res.exit_code == 0, res.output
    gate = json.loads((run_dir / "gate.json").read_text())
    assert {d["decision"] for d in gate["decisions"].values()} == {"FAIL"}
    assert any("no dataset audit" in r["message"] for r in gate["decisions"]["cql"]["reasons"])
    res = runner.invoke(app, ["ope", str(run_dir), "--validate"])
    assert res.exit_code == 0, res.output
    assert "hazard-seeking" in res.output and "rank corr." in res.output and "covers truth" in res.output
    assert runner.invoke(app, ["report", str(run_dir)]).exit_code == 0
    page = (run_dir / "report.html").read_text()
    assert "Deployment gate" in page and "data:image/png;base64," in page and "http" not in page.split("<pre>")[0]


HEAVY = ("torch", "d3rlpy", "numpy", "pyarrow", "gymnasium", "matplotlib")


def _loaded_after(code):
    import subprocess
    import sys

    probe = f"{code}\nimport sys\nprint(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return {m.split(".")[0] for m in out.strip().split(",") if m}


def test_the_command_line_loads_no_heavy_library_until_a_command_runs():
    assert _loaded_after("import guardrl.cli") == set()
    # reading a run config needs numpy and gymnasium (layouts, rules) but neither torch nor d3rlpy
    assert not _loaded_after("from guardrl.config import load_config; load_config(None)") & {"torch", "d3rlpy"}


def test_version_and_help_answer():
    from guardrl import __version__

    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"guardrl {__version__}"
    assert runner.invoke(app, ["--help"]).exit_code == 0


def test_a_bug_is_not_reported_as_a_user_error():
    import pytest
    import typer

    from guardrl.cli import USER_ERROR, user_errors
    from guardrl.errors import RunError

    with pytest.raises(typer.Exit) as exit_info, user_errors():
        raise RunError("no dataset in runs/x")
    assert exit_info.value.exit_code == USER_ERROR == 1
    with pytest.raises(KeyError), user_errors():
        raise KeyError("a bug")
    with pytest.raises(ValueError), user_errors():  # a plain ValueError is a bug too, not a user error
        raise ValueError("shapes (3,) and (4,) not aligned")


def test_the_lazy_train_package_exports_what_it_lists():
    import importlib

    import guardrl.train as train

    assert set(train.__all__) == set(train._MODULE_OF)
    for name in train.__all__:
        module = importlib.import_module(f"guardrl.train.{train._MODULE_OF[name]}")
        assert getattr(train, name) is getattr(module, name), name


def test_tables_fit_80_columns_without_a_terminal(tiny_run):
    import io
    import re

    from rich.console import Console

    from guardrl.report import console as tables
    from guardrl.run import RunFolder

    folder = RunFolder(tiny_run)
    for renderable in (
        tables.summary(folder.read_json(folder.metrics, "evaluate")),
        tables.ope(folder.read_json(folder.ope, "ope")),
        tables.audit(folder.read_json(folder.audit, "audit")),
    ):
        console = Console(width=80, record=True, file=io.StringIO())
        console.print(renderable)
        text = console.export_text()
        assert "…" not in text, text  # nothing cut off
        assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
        # one row per policy: every interval stays whole on its line
        assert not re.search(r"\[[^\]\n]*\n", text), text


def test_choices_are_checked_by_the_command_line(tmp_path):
    res = runner.invoke(app, ["import", str(tmp_path / "x.csv"), "-o", str(tmp_path / "d"), "--n-actions", "4",
                              "--format", "xls"])  # fmt: skip
    assert res.exit_code == 2 and "xls" in res.output
    res = runner.invoke(app, ["serve", str(tmp_path), "--policy", "bc", "--mode", "everything"])
    assert res.exit_code == 2 and "everything" in res.output


def test_the_mujoco_choices_are_the_tasks_and_levels_that_exist():
    # the command line spells them out so that it loads without numpy; they must not drift from the library's
    from guardrl.cli.data import MujocoKind, MujocoTask
    from guardrl.envs.mujoco import LEVELS, TASKS

    assert [t.value for t in MujocoTask] == list(TASKS)
    assert [k.value for k in MujocoKind] == list(LEVELS)


def test_failures_a_user_can_cause_end_in_one_line_not_a_traceback(tmp_path):
    from guardrl.data.collect import collect_nav
    from guardrl.envs.safenav import NavLayout

    # auditing continuous logs outside a run: the continuous audit, not an indexing error
    collect_nav(NavLayout(), "safe", 40, seed=0).save(tmp_path / "nav")
    res = runner.invoke(app, ["audit", str(tmp_path / "nav")])
    assert res.exit_code == 0 and res.exception is None, res.output
    assert "2-dimensional continuous actions" in res.output and "support: distance threshold" in res.output
    res = runner.invoke(app, ["audit", str(tmp_path / "nav"), "-q"])
    assert res.output.strip() == "verdict: offline-RL-ready", res.output
    # a Ray client address without Ray's client package: the fix, on one line (brackets kept, not read as markup)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("name: s\nseeds: [0]\nlearners: [bc]\nregimes: [safe]\nbase: {train: {bc: {n_steps: 5}}}\n")
    res = runner.invoke(app, ["sweep", str(sweep), "--sweeps-dir", str(tmp_path / "sw"), "--backend", "ray",
                              "--address", "ray://127.0.0.1:1", "-q"])  # fmt: skip
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    assert "cannot connect" in res.output and "pip install 'ray[client]'" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1


def test_export_keeps_an_existing_file_unless_told_to_overwrite(tmp_path, tiny_run):
    out = tmp_path / "logs.csv"
    args = ["export", str(tiny_run / "dataset"), "--format", "csv", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    out.write_text("mine")
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and "already exists; pass --overwrite" in res.output and out.read_text() == "mine"
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0 and out.read_text().startswith('"episode_id"')
