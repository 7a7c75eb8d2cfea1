"""The DAgger label queue: deferred and shadowed decisions wait for a person's action; labels are checked,
stored durably, survive restarts, and `guardrl dagger --from-labels` trains a policy on them."""

import json
import shutil

import httpx
import pytest
from typer.testing import CliRunner

from guardrl.cli import app
from guardrl.serve.app import create_app
from guardrl.serve.audit_log import GENESIS, seal
from guardrl.serve.auth import Authenticator, Caller
from guardrl.serve.labels import read_labels
from guardrl.serve.service import PolicyService, ServeError
from tests.serve.test_server import cells, service

OPEN = Authenticator(None)  # these tests call the service without tokens (tests/serve/test_auth.py checks them)
LABELLER = Caller("labeller", "0123456789ab")  # DAgger trains on labels posted with a labeller token only


def chained(*records: dict) -> str:
    """Audit-log lines sealed into a hash chain, as the server writes them."""
    lines, prev = [], GENESIS
    for rec in records:
        line, prev = seal(rec, prev)
        lines.append(line + "\n")
    return "".join(lines)


runner = CliRunner()


def test_deferred_and_shadowed_states_wait_for_labels(tiny_run, tmp_path, live_server):
    logged, never = cells(tiny_run)
    svc = service(tiny_run, tmp_path, min_q_gap=0.0)
    with live_server(create_app(svc, auth=OPEN)) as srv, httpx.Client(base_url=srv.url) as client:
        acted = client.post("/act", json={"observation": logged}).json()
        deferred = client.post("/act", json={"observation": never}).json()
        shadow = client.post("/shadow", json={"observation": logged, "production_action": 1}).json()
        assert acted["decision"] == "act" and deferred["decision"] == "defer"
        queue = client.get("/labels/pending").json()
        assert queue["pending"] == 2 and queue["labelled"] == 0
        assert [(d["decision_id"], d["kind"], d["observation"]) for d in queue["decisions"]] == [
            (deferred["decision_id"], "defer", never), (shadow["decision_id"], "shadow", logged)
        ]  # fmt: skip
        assert "out_of_support" in queue["decisions"][0]["reasons"]
        ok = client.post("/labels", json={"decision_id": deferred["decision_id"], "action": 2, "labeller": "dr-lee"})
        assert ok.status_code == 200 and ok.json() == {
            "decision_id": deferred["decision_id"],
            "action": 2,
            "stored": True,
        }
        cases = [
            ({"decision_id": deferred["decision_id"], "action": 3}, 409, "already labelled (action 2)"),
            ({"decision_id": acted["decision_id"], "action": 0}, 409, "neither deferred nor shadowed"),
            ({"decision_id": 999, "action": 0}, 404, "no such decision"),
            ({"decision_id": shadow["decision_id"], "action": 4}, 422, "outside [0, 4)"),
            ({"decision_id": shadow["decision_id"], "action": -1}, 422, "outside [0, 4)"),
            ({"decision_id": shadow["decision_id"], "action": True}, 422, "action: expected an integer"),
            ({"decision_id": "1", "action": 0}, 422, "decision_id: expected an integer"),
            ({"decision_id": shadow["decision_id"]}, 422, "missing field(s): action"),
            ({"decision_id": shadow["decision_id"], "action": 0, "who": "x"}, 422, "unknown field(s): 'who'"),
        ]
        for body, status, message in cases:
            r = client.post("/labels", json=body)
            assert r.status_code == status and message in r.json()["detail"], (body, r.text)
        assert client.get("/labels/pending?limit=abc").status_code == 422
        assert client.get("/labels/pending").json()["pending"] == 1  # refused posts changed nothing
        assert client.get("/status").json()["labels"] == {"pending": 1, "labelled": 1}
    svc.close()
    again = service(tiny_run, tmp_path, min_q_gap=0.0)  # a restart replays the log: the label is kept
    assert again.pending_labels()["pending"] == 1 and again.status()["labels"]["labelled"] == 1
    with pytest.raises(ServeError, match="already labelled"):
        again.label(deferred["decision_id"], 1)
    again.close()


def test_an_acknowledged_label_is_on_disk_and_a_torn_one_is_not_counted(tiny_run, tmp_path):
    _, never = cells(tiny_run)
    svc = service(tiny_run, tmp_path)
    ids = [svc.act(never)["decision_id"] for _ in range(3)]
    svc.label(ids[0], 1, caller=LABELLER)
    log = tmp_path / "audit.jsonl"
    # acknowledged means written and fsynced: read the file while the service still holds it open
    last = json.loads(log.read_text().splitlines()[-1])
    assert (last["type"], last["id"], last["action"]) == ("label", ids[0], 1)
    svc.close()
    torn = '{"type": "label", "id": ' + str(ids[1]) + ', "act'
    log.write_text(log.read_text() + torn)  # a crash mid-write
    found = read_labels(log, 2, 4)
    assert found.decision_ids == [ids[0]] and found.actions.tolist() == [1] and found.observations.tolist() == [never]
    again = service(tiny_run, tmp_path)
    assert again.pending_labels()["pending"] == 2  # the torn label was never acknowledged: still pending
    again.close()


def test_read_labels_refuses_labels_that_do_not_fit(tmp_path):
    log = tmp_path / "audit.jsonl"
    deferred = {"type": "act", "id": 0, "decision": "defer", "observation": [1.0, 2.0], "policy": "bc"}
    log.write_text(chained(deferred, {"type": "label", "id": 0, "action": 7, "role": "labeller", "token": "t"}))
    with pytest.raises(ServeError, match=r"line 2 \(decision 0\).*does not fit"):
        read_labels(log, 2, 4)
    log.write_text(chained({"type": "label", "id": 5, "action": 1, "role": "labeller", "token": "t"}))
    with pytest.raises(ServeError, match="neither deferred nor shadowed"):
        read_labels(log, 2, 4)
    log.write_text('{"type":"label","id":5,"action":1,"role":"labeller"}\n')  # written by hand: no chain
    with pytest.raises(ServeError, match="line 1 carries no hash chain"):
        read_labels(log, 2, 4)
    with pytest.raises(ServeError, match="no audit log"):
        read_labels(tmp_path / "missing.jsonl", 2, 4)


def test_dagger_trains_a_served_policy_from_the_queue(tiny_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    logged, never = cells(run_dir)
    svc = service(run_dir, run_dir / "serve", min_q_gap=0.0)  # the run's own serve/audit.jsonl
    for _ in range(4):  # the person labels every state the policy deferred or was shadowed on
        svc.act(never)
        svc.shadow(logged, 0)
    for pending in svc.pending_labels()["decisions"]:
        svc.label(pending["decision_id"], 3 if pending["kind"] == "defer" else 0, caller=LABELLER)
    svc.close()
    res = runner.invoke(app, ["dagger", str(run_dir), "--from-labels", "--name", "people", "-q"])
    assert res.exit_code == 0, res.output
    assert "plus 8 labels" in res.output and "8 from token 0123456789ab" in " ".join(res.output.split())
    card = json.loads((run_dir / "policies" / "people.json").read_text())
    assert card["policy"] == "people" and card["imitation"]["labels"] == 8 and card["scores"]["kind"] == "logprob"
    record = json.loads((run_dir / "dagger" / "people.json").read_text())
    assert 0.0 <= record["exact"]["hazard_prob"] <= 1.0 and record["transitions"] > 8
    for name in ("people.pt", "people.onnx", "people.scores.pt"):
        assert (run_dir / "policies" / name).is_file()
    with pytest.raises(ServeError, match="the gate has no verdict for people"):  # no evidence: shadow only
        PolicyService(run_dir, ["people"], mode="full", audit_log=tmp_path / "refused.jsonl")
    served = PolicyService(run_dir, ["people"], mode="shadow", audit_log=tmp_path / "people.jsonl")
    assert served.shadow(logged, 0)["policy"] == "people"  # the new policy is served behind the guard
    served.close()
    served = PolicyService(run_dir, ["people"], mode="full", audit_log=tmp_path / "forced.jsonl", allow_gate_fail=True)
    assert served.act(logged)["policy"] == "people"  # or decides, when someone overrides the gate explicitly
    served.close()
    res = runner.invoke(app, ["dagger", str(run_dir), "--from-labels", "--name", "bc", "-q"])
    assert res.exit_code == 1 and "is a learner's name" in res.output
