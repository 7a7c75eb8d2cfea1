"""The code's shape: imports flow one way, artifact names live in one place, README commands run as written."""

import ast
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "guardrl"

# a package may import from packages to its right, never to its left
LAYERS = ["cli", "serve", "run", ("evaluate", "train", "report"), "data", "envs"]


def _layer(module: str) -> int | None:
    for i, layer in enumerate(LAYERS):
        if module in (layer if isinstance(layer, tuple) else (layer,)):
            return i
    return None


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("guardrl."):
            out.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("guardrl.")}
    return out


def test_imports_flow_one_way():
    wrong = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        own = _layer(rel.parts[0].removesuffix(".py"))
        if own is None:
            continue
        for target in _imports(path):
            layer = _layer(target)
            if layer is not None and layer < own:
                wrong.append(f"{rel} imports guardrl.{target}")
    assert not wrong, wrong
    assert "serve" not in _imports(SRC / "config.py")


def test_artifact_names_are_spelled_only_in_the_run_folder():
    names = ['"config.yaml"', '"gate.json"', '"metrics.json"', '"audit.json"', '"ope.json"', '"training.json"',
             '"report.html"', '"audit.jsonl"', '"memo.md"']  # fmt: skip
    found = [
        f"{path.relative_to(SRC)}: {name}"
        for path in SRC.rglob("*.py")
        if path not in (SRC / "run" / "folder.py", SRC / "run" / "sweep.py")  # a sweep folder has its own files
        for name in names
        if name in path.read_text()
    ]
    assert not found, found


def test_readme_commands_run_as_written_after_the_two_setup_commands():
    # the set-up scripts never activate .venv, so a bare `guardrl` or `python` line would not be found
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash)?\n(.*?)```", readme, flags=re.S)
    lines = [line for block in blocks for line in block.splitlines()]
    bare = [line for line in lines if re.match(r"(guardrl|python|pip) ", line)]
    assert not bare, bare
    assert any(line.startswith(".venv/bin/guardrl ") for line in lines)
    inline = re.findall(r"`(python|guardrl) [^`]*bench/[^`]*`", readme)
    assert not inline, inline


def test_the_gate_reads_evidence_and_rolls_nothing_out(tiny_run, tmp_path, monkeypatch):
    import guardrl.run.evaluation as evaluation
    import guardrl.run.judging as judging
    from guardrl.run import RunContext

    run_dir = shutil.copytree(tiny_run, tmp_path / "run")

    def no_rollouts(*args, **kwargs):
        raise AssertionError("the gate rolled a policy out")

    monkeypatch.setattr(evaluation, "rollout", no_rollouts)
    monkeypatch.setattr("guardrl.envs.vector.SafeGridVector.step", no_rollouts)
    before = (run_dir / "gate.json").read_text()
    (run_dir / "gate.json").unlink()
    judging.stage_gate(RunContext.open(run_dir))
    assert (run_dir / "gate.json").read_text() == before


def test_a_missing_reference_evaluation_is_named(tiny_run, tmp_path):
    import json

    from guardrl.errors import RunError
    from guardrl.run import RunContext, stage_gate

    run_dir = shutil.copytree(tiny_run, tmp_path / "run")
    ope = json.loads((run_dir / "ope.json").read_text())
    ope["policies"]["hazard-seeking"] = ope["policies"]["bc"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    del metrics["policies"]["hazard-seeking"]
    (run_dir / "ope.json").write_text(json.dumps(ope))
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(RunError, match="no evaluation of 'hazard-seeking'"):
        stage_gate(RunContext.open(run_dir))
