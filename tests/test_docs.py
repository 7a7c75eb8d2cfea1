"""The manual: a short README, a documentation site that builds strictly, references generated from the code
that cover every config key and command, and commands that run as written."""

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "guardrl"
DOCS = ROOT / "docs"


def _reference():
    spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "scripts" / "docs_reference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["docs_reference"] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def _commands(block: str) -> list[str]:
    """The block's command lines, without their trailing comments."""
    lines = []
    for line in block.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            lines.append(re.sub(r"\s+#\s.*$", "", line))
    return lines


def test_the_readme_is_a_front_door():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for target in re.findall(r"\]\((docs/[^)#]+)", readme):  # every link into the manual exists
        assert (ROOT / target).is_file(), target
    # no diary in the front door: numbers there come with the benchmark that reproduces them
    assert "this session" not in readme and "issue " not in readme.lower()


def test_no_module_is_over_500_lines():
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > 500}
    assert not long, long


def test_every_config_key_and_command_is_documented():
    ref = _reference()
    assert ref.undocumented() == []
    assert ref.stale() == [], "regenerate with .venv/bin/python scripts/docs_reference.py"
    from guardrl.config import RunConfig, to_dict

    page = ref.config_page()
    flat: dict[str, object] = {}

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict) and k not in ("gym_kwargs", "overrides", "behaviour_kwargs", "d3rlpy_kwargs"):
                walk(v, f"{prefix}{k}.")
            else:
                flat[f"{prefix}{k}"] = v

    walk(to_dict(RunConfig()), "")
    keys = {k.path: k for k in ref.config_keys()}
    # every key of the saved config is in the reference (the env's kind is written `env: none` / `safenav`)
    missing = [k for k in flat if k not in keys and not k.startswith("env")]
    assert not missing, missing
    assert len(keys) >= 150
    for key in keys.values():
        assert f"| `{key.path}` |" in page and f"`{key.default}`" in page, key.path
    assert "| `collect.n_episodes` | int | `500` |" in page
    assert "| `gate.hazard_limit` | float | `0.01` |" in page
    cli = ref.cli_page()
    from typer.main import get_command

    from guardrl.cli import app

    for name in get_command(app).commands:
        assert f"## `guardrl {name}`" in cli, name


def test_every_command_that_prints_takes_quiet():
    from typer.main import get_command

    from guardrl.cli import app

    for name, command in get_command(app).commands.items():
        opts = {o for p in command.params for o in getattr(p, "opts", [])}
        assert {"-q", "--quiet"} <= opts, name


def test_the_documentation_site_builds_strictly(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    config = (tmp_path / "site" / "reference" / "config" / "index.html").read_text()
    assert "world_model.n_members" in config and "serve.canary_fraction" in config
    assert "guardrl mujoco-data" in (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    assert "RunFolder" in (tmp_path / "site" / "reference" / "api" / "index.html").read_text()


def test_doc_commands_call_the_virtual_environment():
    # the set-up scripts never activate .venv, so a bare `guardrl` or `python` line would not be found
    for page in [ROOT / "README.md", *DOCS.rglob("*.md")]:
        for block in _bash_blocks(page.read_text()):
            bare = [c for c in _commands(block) if re.match(r"(guardrl|python|pip|mkdocs) ", c)]
            assert not bare, (page.name, bare)


def _run_block(block: str, cwd: Path) -> None:
    for command in _commands(block):
        res = subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, f"{command}\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"


@pytest.fixture(scope="module")
def after_setup(tmp_path_factory):
    """A folder as the repository is after the two set-up commands: .venv, configs, and runs/default made by
    `guardrl run` on the built-in defaults (what ./scripts/run.sh runs)."""
    if not (ROOT / ".venv" / "bin" / "guardrl").exists():
        pytest.skip("needs the set-up's .venv")
    box = tmp_path_factory.mktemp("box")
    (box / ".venv").symlink_to(ROOT / ".venv")
    (box / "configs").symlink_to(ROOT / "configs")
    _run_block(".venv/bin/guardrl run -q", box)
    return box


def test_the_readme_quick_start_runs_as_written(after_setup):
    """The tour and the own-logs blocks of the README, on the default run."""
    readme = (ROOT / "README.md").read_text()
    blocks = _bash_blocks(readme)
    tour = next(b for b in blocks if "guardrl show runs/default" in b)
    own = next(b for b in blocks if "configs/logs-only.yaml" in b)
    _run_block(tour, after_setup)
    gate = json.loads((after_setup / "runs" / "default" / "gate.json").read_text())["decisions"]
    six = ("spibb-10", "spibb-20", "mopo-0.05", "mopo-0.1", "morel-5", "morel-10")
    assert [gate[n]["decision"] for n in six] == ["PASS"] * 6 and gate["bc"]["decision"] == "FAIL"  # as the README
    recommendation = json.loads((after_setup / "runs" / "default" / "recommendation.json").read_text())
    assert recommendation["policy"] == "spibb-20"
    assert (after_setup / "runs" / "default" / "report.html").is_file()
    _run_block(own, after_setup)
    logs_only = json.loads((after_setup / "runs" / "logs-only" / "gate.json").read_text())["decisions"]
    assert [logs_only[n]["decision"] for n in ("mopo-0.05", "morel-5", "morel-10")] == ["PASS"] * 3  # as the README
    assert json.loads((after_setup / "runs" / "logs-only" / "recommendation.json").read_text())["policy"] == "morel-5"


def test_the_readme_serving_example_runs_as_written(after_setup):
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 8000)) == 0:
            pytest.skip("port 8000 is taken")
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    serve = _commands(next(b for b in blocks if "guardrl serve runs/default" in b))
    call = _commands(next(b for b in blocks if "curl" in b))
    assert len(serve) == 1
    server = subprocess.Popen(["bash", "-c", f"exec {serve[0]}"], cwd=after_setup, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen("http://127.0.0.1:8000/healthz", timeout=1):
                    break
            except OSError:
                assert server.poll() is None, server.stderr.read()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        res = subprocess.run(["bash", "-c", "\n".join(call)], cwd=after_setup, capture_output=True, text=True)
        answer = json.loads(res.stdout)
        assert answer["decision_id"] == 0 and answer["policy"] == "spibb-20", res.stdout
        unauthorized = subprocess.run(["bash", "-c", call[-1].replace("$TOKEN", "nope")], cwd=after_setup,
                                      capture_output=True, text=True)  # fmt: skip
        assert "invalid token" in unauthorized.stdout
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=30)
    keys = after_setup / "runs" / "default" / "serve" / "keys.json"
    tokens = json.loads(keys.read_text())
    assert str(keys) in " ".join(out.split()) or "runs/default/serve/keys.json" in out
    assert not any(token in out for token in tokens.values())  # the path is printed, never a token
