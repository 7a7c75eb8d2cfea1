"""Who may call the server: role tokens on every endpoint, the key file, loopback-only --no-auth, HTTPS, the rate
limit, DAgger's labeller-only labels, and an audit log whose edits are found on restart."""

import json
import os
import shutil
import stat
import subprocess

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from guardrl.cli import app as cli
from guardrl.serve.app import create_app
from guardrl.serve.auth import ROLES, Authenticator, Caller, RateLimiter, is_loopback, load_tokens, token_id
from guardrl.serve.labels import read_labels
from guardrl.serve.service import ServeError
from tests.serve.test_server import cells, service

ENDPOINTS = [  # (method, path, body, the role it needs)
    ("POST", "/act", {"observation": [0.0, 0.0]}, "client"),
    ("POST", "/shadow", {"observation": [0.0, 0.0], "production_action": 1}, "client"),
    ("POST", "/outcome", {"decision_id": 0, "hazard": False}, "operator"),
    ("GET", "/status", None, "operator"),
    ("GET", "/policies/cql", None, "operator"),
    ("GET", "/labels/pending", None, "labeller"),
    ("POST", "/labels", {"decision_id": 1, "action": 0}, "labeller"),
]


@pytest.fixture
def tokens(tmp_path):
    found, _ = load_tokens(tmp_path / "keys.json", environ={})
    return found


def _call(client, method, path, body, token):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.request(method, path, json=body, headers=headers)


def test_every_endpoint_needs_its_role(tiny_run, tmp_path, tokens):
    logged, never = cells(tiny_run)
    svc = service(tiny_run, tmp_path, mode="shadow", min_q_gap=0.0)
    svc.act(logged)  # decision 0, for the outcome
    svc.shadow(never, 0)  # decision 1, waiting for a label
    with TestClient(create_app(svc, auth=Authenticator(tokens))) as client:
        assert client.get("/healthz").status_code == 200  # open
        for method, path, body, role in ENDPOINTS:
            missing = _call(client, method, path, body, None)
            assert missing.status_code == 401 and "Bearer" in missing.headers["www-authenticate"], path
            assert _call(client, method, path, body, "not-a-token").status_code == 401, path
            for other in ROLES:
                if other != role:
                    wrong = _call(client, method, path, body, tokens[other])
                    assert wrong.status_code == 403 and f"needs the {role} role" in wrong.json()["detail"], path
            right = _call(client, method, path, body, tokens[role])
            assert right.status_code == 200, (path, right.text)
    svc.close()
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    by_type = {r["type"]: r for r in records}
    assert by_type["outcome"]["role"] == "operator" and by_type["outcome"]["token"] == token_id(tokens["operator"])
    assert by_type["label"]["role"] == "labeller" and by_type["label"]["token"] == token_id(tokens["labeller"])
    text = (tmp_path / "audit.jsonl").read_text()
    assert not any(token in text for token in tokens.values())  # ids only, never a token


def test_the_key_file_is_private_reused_and_rotated_by_deleting_it(tmp_path):
    keys = tmp_path / "serve" / "keys.json"
    first, source = load_tokens(keys, environ={})
    assert source == str(keys) and set(first) == set(ROLES) and len(set(first.values())) == 3
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    again, _ = load_tokens(keys, environ={})
    assert again == first  # a restart keeps the tokens
    keys.unlink()
    rotated, _ = load_tokens(keys, environ={})
    assert set(rotated.values()).isdisjoint(first.values())
    os.chmod(keys, 0o644)
    with pytest.raises(ServeError, match="readable by others"):
        load_tokens(keys, environ={})
    env = {f"GUARDRL_{r.upper()}_TOKEN": f"{r}-token-from-the-environment" for r in ROLES}
    from_env, source = load_tokens(tmp_path / "unused.json", environ=env)
    assert from_env["client"] == "client-token-from-the-environment" and "GUARDRL_CLIENT_TOKEN" in source
    assert not (tmp_path / "unused.json").exists()
    with pytest.raises(ServeError, match="missing GUARDRL_LABELLER_TOKEN"):
        load_tokens(keys, environ={k: v for k, v in env.items() if "LABELLER" not in k})


def test_no_auth_only_on_loopback(tiny_run, tmp_path):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("example.org")
    res = CliRunner().invoke(cli, ["serve", str(tiny_run), "--policy", "cql", "--mode", "shadow", "--no-auth",
                                   "--host", "0.0.0.0", "--audit-log", str(tmp_path / "a.jsonl")])  # fmt: skip
    assert res.exit_code == 1 and "only on a loopback address" in res.output
    assert not (tmp_path / "a.jsonl").exists()  # refused before anything started
    res = CliRunner().invoke(cli, ["serve", str(tiny_run), "--print-client-example", "--port", "8123"])
    assert res.exit_code == 0 and "Authorization: Bearer $TOKEN" in res.output and "localhost" not in res.output
    assert "http://127.0.0.1:8123/act" in res.output and str(tiny_run / "serve" / "keys.json") in res.output


def test_the_rate_limit_answers_429(tiny_run, tmp_path, tokens):
    svc = service(tiny_run, tmp_path, rate_limit_per_minute=3)
    logged, _ = cells(tiny_run)
    ids = [svc.act(logged)["decision_id"] for _ in range(5)]
    with TestClient(create_app(svc, auth=Authenticator(tokens))) as client:
        op = {"Authorization": f"Bearer {tokens['operator']}"}
        codes = [client.post("/outcome", json={"decision_id": i, "hazard": False}, headers=op).status_code for i in ids]
        assert codes == [200, 200, 200, 429, 429]
        limited = client.post("/outcome", json={"decision_id": ids[4], "hazard": False}, headers=op)
        assert "more than 3 requests per minute" in limited.json()["detail"] and limited.headers["retry-after"]
        assert client.get("/status", headers=op).json()["requests"]["outcome"] == 3  # nothing past it counted
    svc.close()
    clock = [0.0]
    limiter = RateLimiter(2, clock=lambda: clock[0])
    who = Caller("operator", "abc")
    limiter.check(who, "outcome")
    limiter.check(who, "outcome")
    with pytest.raises(ServeError, match="per minute"):
        limiter.check(who, "outcome")
    clock[0] = 60.5  # the window slides
    limiter.check(who, "outcome")


def test_a_forged_decision_id_is_refused(tiny_run, tmp_path, tokens):
    svc = service(tiny_run, tmp_path)
    with TestClient(create_app(svc, auth=Authenticator(tokens))) as client:
        op = {"Authorization": f"Bearer {tokens['operator']}"}
        r = client.post("/outcome", json={"decision_id": 41, "hazard": True}, headers=op)  # never issued
        assert r.status_code == 404 and "no such decision" in r.json()["detail"]
        lab = {"Authorization": f"Bearer {tokens['labeller']}"}
        assert client.post("/labels", json={"decision_id": 41, "action": 0}, headers=lab).status_code == 404
        assert client.get("/status", headers=op).json()["rollback"]["hazard_events"] == 0
    svc.close()


def test_dagger_ignores_labels_that_no_labeller_token_posted(tiny_run, tmp_path, tokens):
    _, never = cells(tiny_run)
    svc = service(tiny_run, tmp_path, min_q_gap=0.0)
    ids = [svc.act(never)["decision_id"] for _ in range(3)]  # three deferrals to label
    with TestClient(create_app(svc, auth=Authenticator(tokens))) as client:
        as_client = client.post("/labels", json={"decision_id": ids[0], "action": 1},
                                headers={"Authorization": f"Bearer {tokens['client']}"})  # fmt: skip
        assert as_client.status_code == 403
        ok = client.post("/labels", json={"decision_id": ids[1], "action": 2},
                         headers={"Authorization": f"Bearer {tokens['labeller']}"})  # fmt: skip
        assert ok.status_code == 200
    svc.label(ids[2], 3, caller=Caller("client", token_id(tokens["client"])))  # a label some other way let in
    svc.close()
    found = read_labels(tmp_path / "audit.jsonl", 2, 4)
    assert found.decision_ids == [ids[1]] and found.actions.tolist() == [2] and found.ignored == 1
    assert found.tokens == [token_id(tokens["labeller"])]


def test_an_edited_record_is_found_on_restart_with_its_line(tiny_run, tmp_path):
    logged, _ = cells(tiny_run)
    svc = service(tiny_run, tmp_path, min_q_gap=0.0)
    ids = [svc.act(logged)["decision_id"] for _ in range(4)]
    svc.outcome(ids[0], True)
    svc.close()
    log = tmp_path / "audit.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    assert len(lines) == 6  # start, 4 decisions, 1 outcome
    lines[5] = lines[5].replace('"hazard":true', '"hazard":false')  # someone hides the hazard
    log.write_text("".join(lines))
    with pytest.raises(ServeError, match=r"line 6 does not verify against the hash chain.*--accept-log-from 6"):
        service(tiny_run, tmp_path)
    with pytest.raises(ServeError, match="names another line"):
        service(tiny_run, tmp_path, accept_log_from=3)
    kept = service(tiny_run, tmp_path, accept_log_from=6)  # keep lines 1-5, set the edited rest aside
    assert kept.status()["requests"] == {"act": 4, "shadow": 0, "outcome": 0}
    assert kept.set_aside is not None and '"hazard":false' in kept.set_aside.read_text()
    kept.close()
    again = service(tiny_run, tmp_path)  # the recovered log verifies, with the new start record chained on
    assert again.status()["requests"]["act"] == 4
    again.close()
    lines = log.read_text().splitlines(keepends=True)
    del lines[2]  # a removed record breaks the chain too
    log.write_text("".join(lines))
    with pytest.raises(ServeError, match="line 3 does not verify"):
        service(tiny_run, tmp_path)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_the_server_speaks_https_with_a_self_signed_certificate(tiny_run, tmp_path, tokens, live_server):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)  # fmt: skip
    svc = service(tiny_run, tmp_path)
    logged, _ = cells(tiny_run)
    server = live_server(create_app(svc, auth=Authenticator(tokens)), ssl_certfile=cert, ssl_keyfile=key)
    with server as srv, httpx.Client(base_url=srv.url, verify=str(cert)) as client:
        assert srv.url.startswith("https://")
        r = client.post("/act", json={"observation": logged}, headers={"Authorization": f"Bearer {tokens['client']}"})
        assert r.status_code == 200 and r.json()["decision_id"] == 0
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the certificate is refused
            httpx.get(f"{srv.url}/healthz", timeout=5)
    svc.close()
