"""The policy server against hostile requests and crashes: 4xx not 5xx, bounded bodies, a log that survives."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from guardrl.config import ServeConfig, load_config
from guardrl.serve.app import create_app
from guardrl.serve.auth import Authenticator
from guardrl.serve.service import PolicyService, ServeError

from .conftest import free_port
from .test_server import cells

OPEN = Authenticator(None)  # these tests call the service without tokens (tests/serve/test_auth.py checks them)

JSON = {"content-type": "application/json"}


def service(run_dir, log, policies=("cql", "bc"), fallback="bc", **serve):
    cfg = load_config(run_dir / "config.yaml")
    cfg = replace(cfg, serve=replace(ServeConfig(), **serve))
    return PolicyService(run_dir, list(policies), mode="full", fallback=fallback, audit_log=log, cfg=cfg,
                         allow_gate_fail=True)  # fmt: skip


def records(log):
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_a_torn_last_line_is_cut_off_so_restarts_keep_appending_whole_lines(tiny_run, tmp_path):
    log = tmp_path / "audit.jsonl"
    logged, _ = cells(tiny_run)
    svc = service(tiny_run, log)
    svc.act(logged)
    svc.close()
    with log.open("a") as f:
        f.write('{"type": "act", "id": 1, "decis')  # the crash cut this record short
    for _ in range(3):  # each restart appends a start record; none may land on the torn line
        again = service(tiny_run, log)
        assert again.status()["requests"]["act"] == 1
        again.close()
    assert [r["type"] for r in records(log)] == ["start", "act", "start", "start", "start"]
    # a whole record that lost only its newline is kept, and the next record starts on a new line
    log.write_text(log.read_text().rstrip("\n"))
    again = service(tiny_run, log)
    assert again.act(logged)["decision_id"] == 1
    again.close()
    assert [r["type"] for r in records(log)][-3:] == ["start", "start", "act"]


@pytest.mark.parametrize(
    ("line", "message"),
    [("[1, 2]", "line 2 is JSON but not a record"), ('{"type": "act"}', "line 2 carries no hash chain"),
     ('"text"', "line 2 is JSON but not a record")],
)  # fmt: skip
def test_log_lines_that_are_json_but_not_records_are_named(tiny_run, tmp_path, line, message):
    log = tmp_path / "audit.jsonl"
    service(tiny_run, log).close()
    log.write_text(log.read_text() + line + "\n" + log.read_text())
    with pytest.raises(ServeError, match=message):
        service(tiny_run, log)


def test_an_outcome_counts_once_per_decision_even_across_restarts(tiny_run, tmp_path):
    log = tmp_path / "audit.jsonl"
    logged, _ = cells(tiny_run)
    svc = service(tiny_run, log, min_q_gap=0.0, rollback_per_1000=10.0, rollback_min_decisions=100)
    with TestClient(create_app(svc, auth=OPEN)) as client:
        d = client.post("/act", json={"observation": logged}).json()["decision_id"]
        first = client.post("/outcome", json={"decision_id": d, "hazard": True})
        assert first.status_code == 200 and first.json()["counted"]
        for _ in range(2):  # two events would trip this threshold: repeats must not count
            again = client.post("/outcome", json={"decision_id": d, "hazard": True})
            assert again.status_code == 409 and "already reported" in again.json()["detail"]
        status = client.get("/status").json()
        assert not status["rolled_back"] and status["rollback"]["hazard_events"] == 1
    svc.close()
    restarted = service(tiny_run, log, min_q_gap=0.0, rollback_per_1000=10.0, rollback_min_decisions=100)
    with pytest.raises(ServeError, match="already reported"):
        restarted.outcome(d, True)
    assert not restarted.status()["rolled_back"]
    restarted.close()


HOSTILE = [
    (b'{"observation": [1.0, 2.0], "policy": ["cql"]}', 422, "policy: expected the name of a served policy"),
    (b'{"observation": [1.0, 2.0], "policy": 0}', 422, "policy: expected the name"),
    (b'{"observation": [1.0, 2.0], "policy": ""}', 422, "policy: expected the name"),
    (b'{"observation": [1.0, 2.0], "policy": null}', 422, "policy: expected the name"),
    (b'{"observation": [1' + b"0" * 400 + b", 2.0]}", 422, "observation: an integer entry is too large"),
    (b'{"observation": [1e39, 2.0]}', 422, "beyond the float32 range"),
    (b'{"observation": [1' + b"0" * 5000 + b", 2.0]}", 400, "body is not usable JSON"),
    (b'{"observation": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "nested too deeply"),
    (b'{"observation": [1.0, 2.0], "\\ud800": 1}', 422, "unknown field(s): '\\ud800'"),
    (b'{"decision_id": 1' + b"0" * 300 + b', "hazard": true}', 404, "no such decision"),
]


@pytest.mark.parametrize(("body", "status", "message"), HOSTILE, ids=[str(i) for i in range(len(HOSTILE))])
def test_hostile_bodies_get_a_4xx_naming_the_field(tiny_run, tmp_path, body, status, message):
    svc = service(tiny_run, tmp_path / "audit.jsonl", max_body_bytes=1 << 20)
    path = "/outcome" if b"decision_id" in body else "/act"
    with TestClient(create_app(svc, auth=OPEN)) as client:
        r = client.post(path, content=body, headers=JSON)
        assert r.status_code == status and message in r.json()["detail"], r.text
        assert client.get("/healthz").json()["ok"]
    svc.close()


def test_content_type_echo_and_the_fallback_card(tiny_run, tmp_path):
    svc = service(tiny_run, tmp_path / "audit.jsonl", policies=("cql",), fallback="bc")
    with TestClient(create_app(svc, auth=OPEN)) as client:
        r = client.post("/act", content=b'{"observation": [1.0, 2.0]}', headers={"content-type": "text/plain"})
        assert r.status_code == 415 and "application/json" in r.json()["detail"]
        r = client.post("/act", json={"observation": [1.0, 2.0], "x" * 20_000: 1})
        assert r.status_code == 422 and len(r.json()["detail"]) < 300  # the input is echoed cut short
        card = client.get("/policies/bc")
        assert card.status_code == 200 and card.json()["role"] == "fallback"
        assert client.get("/policies/cql").json()["role"] == "served"
    svc.close()


def _rss_mb(pid="self"):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_a_100_mb_body_is_refused_without_growing_memory(tiny_run, tmp_path, live_server):
    svc = service(tiny_run, tmp_path / "audit.jsonl")
    chunk = b" " * (1 << 20)

    def body():  # streamed from one buffer, so the client side holds 1 MB, not 100
        for _ in range(100):
            yield chunk

    with live_server(create_app(svc, auth=OPEN)) as srv, httpx.Client(base_url=srv.url, timeout=60) as client:
        client.get("/healthz")
        before = _rss_mb()
        declared = client.post("/act", content=body(), headers={**JSON, "content-length": str(100 << 20)})
        chunked = client.post("/act", content=body(), headers=JSON)  # no length: cut off at the limit
        grown = _rss_mb() - before
        assert declared.status_code == 413 and "serve.max_body_bytes" in declared.json()["detail"]
        assert chunked.status_code == 413
        assert grown < 50, f"resident memory grew by {grown:.1f} MB"
        assert client.get("/healthz").json()["ok"]
    svc.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"observation": json_values}, optional={"policy": json_values}),
    st.fixed_dictionaries(
        {"observation": st.lists(st.floats(-20, 20) | st.integers(-3, 20), min_size=2, max_size=2)},
        optional={"policy": st.sampled_from(["cql", "bc", "dqn", ""]), "production_action": json_values},
    ),  # fmt: skip
    st.fixed_dictionaries({"decision_id": json_values | st.integers(0, 50), "hazard": json_values}),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/act", "/shadow", "/outcome"]), body=bodies, raw=st.binary(max_size=64))
def test_fuzzed_requests_never_get_a_5xx_and_the_log_replays(tiny_run, tmp_path_factory, path, body, raw):
    log = tmp_path_factory.mktemp("fuzz") / "audit.jsonl"
    svc = service(tiny_run, log, rollback_per_1000=10.0, rollback_min_decisions=100)
    with TestClient(create_app(svc, auth=OPEN)) as client:
        client.post("/act", json={"observation": [0.0, 0.0]})  # a decision for outcomes to refer to
        for content in (json.dumps(body).encode(), raw):
            r = client.post(path, content=content, headers=JSON)
            assert r.status_code < 500, (path, content, r.text)
        assert client.get("/healthz").json()["ok"]
        status = client.get("/status").json()
    svc.close()
    replayed = service(tiny_run, log, rollback_per_1000=10.0, rollback_min_decisions=100)
    again = replayed.status()
    replayed.close()
    for key in ("requests", "decisions", "defer_reasons", "shadow", "rolled_back"):
        assert again[key] == status[key], key


SERVE = [sys.executable, "-m", "guardrl.cli", "serve"]


def _start(run_dir, log, port):
    cmd = [*SERVE, str(run_dir), "--policy", "cql", "--fallback", "bc", "--mode", "full", "--allow-gate-fail",
           "--port", str(port), "--audit-log", str(log), "--no-auth"]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_up(proc, url, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def test_killed_during_load_and_twice_while_restarting_the_log_keeps_every_acknowledged_decision(tiny_run, tmp_path):
    log = tmp_path / "audit.jsonl"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    logged, _ = cells(tiny_run)
    acked: list[int] = []
    proc = _start(tiny_run, log, port)
    _wait_up(proc, url)

    def load():
        with httpx.Client(base_url=url, timeout=5) as client:
            for _ in range(5000):
                try:
                    r = client.post("/act", json={"observation": logged})
                except httpx.TransportError:
                    return  # the server died under us
                acked.append(r.json()["decision_id"])

    loader = threading.Thread(target=load)
    loader.start()
    while len(acked) < 200 and loader.is_alive():
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # mid-load
    proc.wait()
    loader.join()
    assert len(acked) >= 200
    with log.open("a") as f:
        f.write('{"type":"act","id":')  # what a kill inside a write leaves
    for delay in (0.3, 2.0):  # killed while starting: during imports, then during the replay or just after
        proc = _start(tiny_run, log, port)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    proc = _start(tiny_run, log, port)
    try:
        _wait_up(proc, url)
        with httpx.Client(base_url=url) as client:
            status = client.get("/status").json()
            assert status["requests"]["act"] >= len(acked)
            nxt = client.post("/act", json={"observation": logged}).json()["decision_id"]
            assert nxt > max(acked)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    ids = {r["id"] for r in records(log) if r["type"] == "act"}  # every line parses: no torn line remains
    assert set(acked) <= ids
    assert os.path.getsize(log) > 0


def test_a_sealed_line_that_is_not_a_record_is_named(tiny_run, tmp_path):
    from guardrl.serve.audit_log import read_records, seal

    log = tmp_path / "audit.jsonl"
    service(tiny_run, log).close()
    last = list(read_records(log))[-1].chain
    line, _ = seal({"type": "act"}, last)  # chained properly, but lacks a decision's fields
    log.write_text(log.read_text() + line + "\n")
    with pytest.raises(ServeError, match="line 2 is not a guardrl audit record"):
        service(tiny_run, log)
