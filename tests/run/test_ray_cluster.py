"""A logs-only run on a local Ray cluster (a head and one worker, started here with ``ray start``): its training and
off-policy tasks run there, and its gate is the one the same run gets with local processes."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from guardrl.config import to_dict
from guardrl.data import collect
from guardrl.errors import ConfigError

pytest.importorskip("ray")

CONFIG = """
name: {name}
env: none
collect:
  dataset: {dataset}
train:
  learners: [bc, cql, spibb]
  bc: {{n_steps: 40, batch_size: 32, stop: steps}}
  cql: {{n_steps: 40, batch_size: 32}}
  log_every: 10
world_model: {{n_members: 2, steps: 60, hidden_units: [32, 32]}}
ope: {{n_bootstrap: 100, model_episodes: 100}}
{ray}
"""


# A loopback cluster without Ray's token authentication: with a ~/.ray/auth_token on the machine, `ray start --head`
# turns it on, and then every node and driver needs RAY_AUTH_MODE=token (the docs' Scale page says how)
LOCAL_RAY = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cluster():
    """``ray start --head`` and one ``ray start --address`` worker on this machine, one CPU each."""
    ray = str(Path(sys.executable).parent / "ray")
    env = {**os.environ, **LOCAL_RAY}
    env.pop("RAY_ADDRESS", None)
    port = _free_port()

    def call(*args: str) -> None:
        subprocess.run([ray, *args], check=True, env=env, capture_output=True, timeout=180)

    try:
        call("start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
             "--disable-usage-stats")  # fmt: skip
        call("start", f"--address=127.0.0.1:{port}", "--num-cpus=1")
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=180)


def _run(tmp_path, name, dataset, ray_line="", text=None):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text if text is not None else CONFIG.format(name=name, dataset=dataset, ray=ray_line))
    # as a user runs it: its own process (the Ray driver), here with a deadline
    guardrl = str(Path(sys.executable).parent / "guardrl")
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, **LOCAL_RAY}
    res = subprocess.run([guardrl, "run", "-c", str(path), "--runs-dir", str(tmp_path / "runs"), "-q"],
                         capture_output=True, text=True, timeout=600, env=env)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    return tmp_path / "runs" / name


def test_a_logs_only_run_on_a_two_node_ray_cluster_gets_the_local_gate(tmp_path, tables, cluster):
    collect(tables, "safe", 60, 7).save(tmp_path / "logs")
    local = _run(tmp_path, "local", tmp_path / "logs")
    on_ray = _run(tmp_path, "on_ray", tmp_path / "logs", f'ray: {{address: "{cluster}"}}')

    where = json.loads((on_ray / "metrics.json").read_text())["parallel"]
    # bc and cql trained as two tasks, then one off-policy task per policy (bc, cql, spibb)
    assert where == {"backend": "ray", "address": cluster, "nodes": 2, "tasks": 5}
    assert json.loads((local / "metrics.json").read_text())["parallel"] == {"backend": "local processes"}
    gates = [json.loads((run / "gate.json").read_text())["decisions"] for run in (local, on_ray)]
    assert {k: d["decision"] for k, d in gates[0].items()} == {k: d["decision"] for k, d in gates[1].items()}
    assert set(gates[0]) == {"bc", "cql", "spibb"}
    ope = [json.loads((run / "ope.json").read_text())["policies"] for run in (local, on_ray)]
    for name in ope[0]:
        assert ope[0][name]["estimates"] == ope[1][name]["estimates"]


def test_a_simulator_run_rolls_out_its_policies_on_the_cluster(tmp_path, tiny_config, cluster):
    config = {**to_dict(tiny_config), "report": False}
    texts = {"local": {**config, "name": "local"}, "on_ray": {**config, "name": "on_ray", "ray": {"address": cluster}}}
    runs = {name: _run(tmp_path, name, None, text=yaml.safe_dump(c)) for name, c in texts.items()}
    metrics = {name: json.loads((run / "metrics.json").read_text()) for name, run in runs.items()}
    # bc and cql trained as two tasks; then one rollout task and one off-policy task per policy
    rolled = set(metrics["local"]["policies"])
    assert {"bc", "cql", "behaviour", "optimal"} <= rolled
    assert metrics["on_ray"]["parallel"]["tasks"] == 2 + len(rolled) + 2
    assert metrics["on_ray"]["policies"] == metrics["local"]["policies"]
    gates = [json.loads((run / "gate.json").read_text())["decisions"] for run in runs.values()]
    assert gates[0] == gates[1]


def test_an_unreachable_ray_address_is_a_one_line_error(tmp_path, monkeypatch):
    from guardrl._parallel import ray_session

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(ConfigError, match=r"ray address '127\.0\.0\.1:1': cannot connect .* `ray start --head`"):
        with ray_session("127.0.0.1:1"):
            pass
