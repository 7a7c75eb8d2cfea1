"""The policy server on a loopback port: act / defer / shadow / canary / rollback, bad input, restarts."""

import json
from dataclasses import replace

import httpx
import numpy as np
import pytest

from guardrl.config import ServeConfig, load_config
from guardrl.data import load_dataset
from guardrl.serve.app import create_app
from guardrl.serve.auth import Authenticator
from guardrl.serve.service import PolicyService, ServeError

OPEN = Authenticator(None)  # these tests call the service without tokens (tests/serve/test_auth.py checks them)


def service(run_dir, tmp_path, mode="full", accept_log_from=None, **serve):
    cfg = load_config(run_dir / "config.yaml")
    cfg = replace(cfg, serve=replace(ServeConfig(), **serve))
    return PolicyService(run_dir, ["cql", "bc"], mode=mode, fallback="bc", audit_log=tmp_path / "audit.jsonl", cfg=cfg,
                         allow_gate_fail=True, accept_log_from=accept_log_from)  # fmt: skip


def cells(run_dir):
    """The most logged cell and a cell never logged."""
    ds = load_dataset(run_dir / "dataset")
    rows, counts = np.unique(ds.observations, axis=0, return_counts=True)
    logged = rows[np.argmax(counts)].tolist()
    seen = {tuple(r) for r in rows.tolist()}
    never = next([float(x), float(y)] for x in range(15) for y in range(15) if (x, y) not in seen)
    return logged, never


def test_act_defer_and_model_card(tiny_run, tmp_path, live_server):
    svc = service(tiny_run, tmp_path, min_q_gap=0.0)
    logged, never = cells(tiny_run)
    with live_server(create_app(svc, auth=OPEN)) as srv, httpx.Client(base_url=srv.url) as client:
        r = client.post("/act", json={"observation": logged}).json()
        assert r["decision"] == "act" and r["source"] == "policy" and 0 <= r["action"] < 4 and r["policy"] == "cql"
        r = client.post("/act", json={"observation": never, "policy": "bc"}).json()
        assert r["decision"] == "defer" and r["action"] is None
        assert "out_of_support" in r["reasons"] and 0 <= r["fallback_action"] < 4
        card = client.get("/policies/cql").json()
        assert card["scores"]["kind"] == "q" and card["gate"]["decision"] in {"PASS", "CAUTION", "FAIL"}
        status = client.get("/status").json()
        assert status["decisions"] == {"act": 1, "defer": 1, "fallback": 0}
        assert status["defer_reasons"]["out_of_support"] == 1 and status["mode"] == "full"
    svc.close()
    lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [x["type"] for x in lines] == ["start", "act", "act"]
    assert lines[2]["reasons"] and lines[2]["observation"] == never


def test_close_calls_defer_when_the_q_gap_is_small(tiny_run, tmp_path):
    logged, _ = cells(tiny_run)
    svc = service(tiny_run, tmp_path, min_q_gap=1e9)  # no decision is ever that clear
    r = svc.act(logged)
    assert r["decision"] == "defer" and "close_call" in r["reasons"]
    svc.close()


def test_shadow_records_divergences(tiny_run, tmp_path, live_server):
    svc = service(tiny_run, tmp_path, mode="shadow")
    logged, _ = cells(tiny_run)
    with live_server(create_app(svc, auth=OPEN)) as srv, httpx.Client(base_url=srv.url) as client:
        answers = [client.post("/shadow", json={"observation": logged, "production_action": a}).json()
                   for a in range(4)]  # fmt: skip
        assert sum(a["diverged"] for a in answers) == 3  # the policy's one action matches exactly one of the four
        assert {a["policy_action"] for a in answers} == {answers[0]["policy_action"]}
        # in shadow mode the policy never controls: /act answers with the fallback
        r = client.post("/act", json={"observation": logged}).json()
        assert r["decision"] == "fallback" and r["source"] == "fallback" and r["reasons"] == ["shadow_mode_routing"]
        status = client.get("/status").json()
        assert status["shadow"] == {"requests": 4, "divergences": 3, "divergence_rate": 0.75,
                                    "would_defer": status["shadow"]["would_defer"]}  # fmt: skip
    svc.close()


def test_canary_routes_the_configured_share_reproducibly(tiny_run, tmp_path):
    logged, _ = cells(tiny_run)
    svc = service(tiny_run, tmp_path, mode="canary", canary_fraction=0.25, min_q_gap=0.0)
    sources = [svc.act(logged)["source"] for _ in range(400)]
    share = sources.count("policy") / 400
    assert 0.18 < share < 0.32
    svc.close()
    again = service(tiny_run, tmp_path / "b", mode="canary", canary_fraction=0.25, min_q_gap=0.0)
    assert [again.act(logged)["source"] for _ in range(400)] == sources  # same seed, same routing
    again.close()


def test_rollback_switches_to_fallback_and_survives_a_restart(tiny_run, tmp_path, live_server):
    logged, _ = cells(tiny_run)
    svc = service(tiny_run, tmp_path, min_q_gap=0.0, rollback_per_1000=10.0, rollback_min_decisions=100)
    with live_server(create_app(svc, auth=OPEN)) as srv, httpx.Client(base_url=srv.url) as client:
        ids = [client.post("/act", json={"observation": logged}).json()["decision_id"] for _ in range(5)]
        first = client.post("/outcome", json={"decision_id": ids[0], "hazard": True}).json()
        assert first == {"decision_id": ids[0], "counted": True, "rolled_back": False, "tripped_now": False}
        second = client.post("/outcome", json={"decision_id": ids[1], "hazard": True}).json()
        assert second["rolled_back"] and second["tripped_now"]  # 2 events > 10 per 1,000 of at least 100
        status = client.get("/status").json()
        assert status["mode"] == "rolled_back" and "2 hazard events in 5 policy decisions" in status["rollback_reason"]
        r = client.post("/act", json={"observation": logged}).json()
        assert r["decision"] == "fallback" and r["reasons"] == ["rolled_back"] and r["source"] == "fallback"
        late = client.post("/outcome", json={"decision_id": r["decision_id"], "hazard": True}).json()
        assert late["counted"] is False  # the fallback's own hazards do not count against the policy
    svc.close()
    restarted = service(tiny_run, tmp_path, min_q_gap=0.0, rollback_per_1000=10.0, rollback_min_decisions=100)
    s = restarted.status()
    assert s["rolled_back"] and s["rollback"]["policy_decisions"] == 5 and s["rollback"]["hazard_events"] == 2
    assert s["decisions"] == {"act": 5, "defer": 0, "fallback": 1}
    assert restarted.act(logged)["decision_id"] == 6  # ids continue where the log stopped
    restarted.close()


def test_a_cut_off_last_log_line_is_skipped_but_a_corrupt_one_is_refused(tiny_run, tmp_path):
    logged, _ = cells(tiny_run)
    svc = service(tiny_run, tmp_path)
    svc.act(logged)
    svc.close()
    log = tmp_path / "audit.jsonl"
    log.write_text(log.read_text() + '{"type": "act", "id": 9')
    again = service(tiny_run, tmp_path)
    assert again.status()["requests"]["act"] == 1
    again.close()
    log.write_text('{"broken\n' + log.read_text())
    with pytest.raises(ServeError, match="line 1 is not JSON"):
        service(tiny_run, tmp_path)


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/act", {"observation": [1.0, 2.0, 3.0]}, 422, "expected 2 numbers, got 3"),
        ("/act", {"observation": ["a", 1.0]}, 422, "every entry must be a number"),
        ("/act", {"observation": 5}, 422, "expected a list of numbers"),
        ("/act", {"observation": [1.0, 2.0], "policy": "dqn"}, 404, "unknown policy 'dqn'; serving: cql, bc"),
        ("/act", {"obs": [1.0, 2.0]}, 422, "missing field(s): observation"),
        ("/act", {"observation": [1.0, 2.0], "extra": 1}, 422, "unknown field(s): 'extra'"),
        ("/act", [1, 2], 422, "body must be a JSON object"),
        ("/shadow", {"observation": [1.0, 2.0], "production_action": 7}, 422, "outside [0, 4)"),
        ("/shadow", {"observation": [1.0, 2.0], "production_action": "up"}, 422, "expected an integer"),
        ("/outcome", {"decision_id": 10_000, "hazard": True}, 404, "no such decision"),
        ("/outcome", {"decision_id": 0, "hazard": "yes"}, 422, "expected true or false"),
        ("/policies/nope", None, 404, "unknown policy 'nope'"),
    ],
)
def test_bad_requests_get_clear_4xx(tiny_run, tmp_path, live_server, path, body, status, message):
    svc = service(tiny_run, tmp_path)
    with live_server(create_app(svc, auth=OPEN)) as srv, httpx.Client(base_url=srv.url) as client:
        r = client.get(path) if body is None else client.post(path, json=body)
        assert r.status_code == status and message in r.json()["detail"]
        assert client.get("/healthz").json()["ok"]  # still serving
    svc.close()


def test_nan_and_broken_json_bodies(tiny_run, tmp_path, live_server):
    svc = service(tiny_run, tmp_path)
    with live_server(create_app(svc, auth=OPEN)) as srv, httpx.Client(base_url=srv.url) as client:
        headers = {"content-type": "application/json"}
        r = client.post("/act", content=b'{"observation": [NaN, 1.0]}', headers=headers)
        assert r.status_code == 422 and "NaN or infinite" in r.json()["detail"]
        r = client.post("/act", content=b'{"observation": [1.0,', headers=headers)
        assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
        assert client.get("/status").json()["requests"]["act"] == 0  # nothing refused was logged as a decision
    svc.close()


def test_a_policy_the_gate_failed_decides_only_when_allowed(tiny_run, tmp_path):
    gate = json.loads((tiny_run / "gate.json").read_text())["decisions"]
    assert gate["bc"]["decision"] == "FAIL"  # 40 gradient steps: far from safe
    with pytest.raises(ServeError, match="the gate FAILed bc"):
        PolicyService(tiny_run, ["bc"], mode="canary", audit_log=tmp_path / "a.jsonl")
    shadow = PolicyService(tiny_run, ["bc"], mode="shadow", audit_log=tmp_path / "a.jsonl")
    assert shadow.status()["policies"]["bc"]["gate"] == "FAIL"
    shadow.close()


def test_serve_command_errors_without_starting(tiny_run, tmp_path):
    from typer.testing import CliRunner

    from guardrl.cli import app

    result = CliRunner().invoke(app, ["serve", str(tiny_run), "--policy", "nope", "--port", "1"])
    assert result.exit_code == 1 and "no exported policy 'nope'" in result.output
