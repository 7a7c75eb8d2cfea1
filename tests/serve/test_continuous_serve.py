"""Serving a policy with continuous actions (a SafeNav run): actions as lists inside the box, deferral out of
support, out-of-box actions refused in every request that carries one."""

import json

import httpx
import numpy as np
import pytest

from guardrl.data import load_dataset
from guardrl.serve.app import create_app
from guardrl.serve.auth import Authenticator
from guardrl.serve.service import PolicyService, ServeError

OPEN = Authenticator(None)  # these tests call the service without tokens (tests/serve/test_auth.py checks them)


def nav_service(run_dir, tmp_path, mode="full"):
    return PolicyService(run_dir, ["td3bc"], mode=mode, fallback="bc", audit_log=tmp_path / "audit.jsonl",
                         allow_gate_fail=True)  # fmt: skip


def test_a_continuous_policy_acts_in_support_and_defers_far_from_the_logs(nav_run, tmp_path, live_server):
    svc = nav_service(nav_run, tmp_path)
    ds = load_dataset(nav_run / "dataset")
    logged = ds.observations[0].tolist()  # a logged start: the support holds pairs right here
    with live_server(create_app(svc, auth=OPEN)) as srv, httpx.Client(base_url=srv.url) as client:
        r = client.post("/act", json={"observation": logged}).json()
        support = svc.policies["td3bc"].guard.support
        action = np.asarray([svc.policies["td3bc"].guard.greedy(np.asarray([logged]))[0]])
        inside = bool(support.supported(np.asarray([logged]), action)[0])
        assert r["decision"] == ("act" if inside else "defer")
        if inside:
            assert len(r["action"]) == 2 and all(-1.0 <= a <= 1.0 for a in r["action"])
        # far outside the arena the logs never went: whatever the policy proposes is out of support
        r = client.post("/act", json={"observation": [60.0, -40.0]}).json()
        assert r["decision"] == "defer" and r["reasons"] == ["out_of_support"] and r["action"] is None
        assert len(r["fallback_action"]) == 2
        assert client.get("/status").json()["policies"]["td3bc"]["scores"] == "continuous"
    svc.close()
    lines = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [x["type"] for x in lines] == ["start", "act", "act"]


@pytest.mark.parametrize(
    "body, message",
    [
        ({"production_action": [1.5, 0.0]}, "production_action[0]: 1.5 is outside its bounds [-1, 1]"),
        ({"production_action": [0.0]}, "production_action: expected a list of 2 numbers"),
        ({"production_action": 2}, "production_action: expected a list of 2 numbers"),
        ({"production_action": [0.0, "up"]}, "production_action[1]: expected a number"),
    ],
)
def test_out_of_box_production_actions_are_refused(nav_run, tmp_path, live_server, body, message):
    svc = nav_service(nav_run, tmp_path, mode="shadow")
    with live_server(create_app(svc, auth=OPEN)) as srv, httpx.Client(base_url=srv.url) as client:
        r = client.post("/shadow", json={"observation": [1.0, 1.0], **body})
        assert r.status_code == 422 and message in r.json()["detail"]
        assert client.get("/healthz").json()["ok"]
    svc.close()


def test_shadow_divergence_and_labels_take_continuous_actions_and_survive_a_restart(nav_run, tmp_path):
    svc = nav_service(nav_run, tmp_path, mode="shadow")
    obs = [1.0, 1.0]
    proposed = svc.policies["td3bc"].guard.greedy(np.asarray([obs]))[0]
    same = svc.shadow(obs, [float(v) for v in proposed])
    assert same["diverged"] is False and same["policy_action"] == pytest.approx(proposed.tolist())
    opposite = [float(-np.sign(proposed[0]) or 1.0), float(proposed[1])]
    assert svc.shadow(obs, opposite)["diverged"] is True  # a whole box width apart on the first dimension
    with pytest.raises(ServeError, match=r"action\[1\]: -3 is outside its bounds \[-1, 1\]"):
        svc.label(same["decision_id"], [0.0, -3])
    assert svc.label(same["decision_id"], [0.25, -0.5])["stored"] is True
    svc.close()
    again = nav_service(nav_run, tmp_path, mode="shadow")  # replays the log, continuous label included
    assert again.status()["labels"]["labelled"] == 1 and again.status()["shadow"]["divergences"] == 1
    again.close()
