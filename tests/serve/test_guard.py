import numpy as np
import pytest

from guardrl.config import ServeConfig
from guardrl.data import collect
from guardrl.data.audit import AuditConfig, Support
from guardrl.serve.guard import REASONS, Guard, RollbackMonitor


@pytest.fixture(scope="module")
def support(tables):
    return Support.from_dataset(collect(tables, "safe", 40, seed=1), AuditConfig(k=5))


def test_guard_defers_for_each_named_reason(support):
    logged = support.index.exact[np.argmax(support.counts.sum(axis=1))][None, :]  # the most logged cell
    best = int(np.argmax(support.counts[np.argmax(support.counts.sum(axis=1))]))
    never = np.array([[14.0, 0.0]], dtype=np.float32)
    assert support.index(never)[0] == -1

    def q_scores(gap):
        def scores(obs):
            s = np.zeros((len(obs), 4))
            s[:, best] = gap
            return s

        return scores

    cfg = ServeConfig(min_state_count=5, min_q_gap=0.05)
    clear = Guard(q_scores(1.0), "q", support, cfg).decide(np.vstack([logged, never]))
    assert clear.actions.tolist() == [best, best]
    assert clear.defer.tolist() == [False, True]
    assert clear.reason_names(1) == ["out_of_support", "unsupported_action"]
    assert clear.state_count[0] == support.counts.sum(axis=1).max() and clear.state_count[1] == 0
    close = Guard(q_scores(0.01), "q", support, cfg).decide(logged)
    assert close.reason_names(0) == ["close_call"] and close.gap[0] == pytest.approx(0.01)
    # BC scores are log-probabilities: the gap is between probabilities
    probs = np.full(4, 0.2)
    probs[best] = 0.4
    bc = Guard(lambda o: np.log(np.tile(probs, (len(o), 1))), "logprob", support, ServeConfig(min_prob_gap=0.25))
    d = bc.decide(logged)
    assert d.gap[0] == pytest.approx(0.2) and d.reason_names(0) == ["close_call"]
    assert REASONS == ("out_of_support", "close_call", "unsupported_action")


def test_rollback_trips_above_the_rate_with_a_floor_on_decisions():
    m = RollbackMonitor(per_1000=10.0, min_decisions=200)
    assert not m.record(decisions=50, hazards=2)  # limit = 10 * 200 / 1000 = 2 events
    assert m.record(hazards=1) and m.rolled_back
    assert "3 hazard events in 50 policy decisions" in m.reason
    assert not m.record(hazards=5)  # trips once
    big = RollbackMonitor(per_1000=10.0, min_decisions=200)
    assert not big.record(decisions=1000, hazards=10)  # exactly at the rate: not above it
    assert big.record(decisions=0, hazards=1)
    assert big.to_dict()["rate_per_1000"] == pytest.approx(11.0)
    with pytest.raises(ValueError, match="canary_fraction"):
        ServeConfig(canary_fraction=1.5)
