import numpy as np
import pytest

from guardrl.data import REGIMES, greedy_safe_probs
from guardrl.data.behaviour import epsilon_mix
from guardrl.envs.layouts import DOWN, RIGHT


def test_controller_prefers_safe_moves_toward_the_goal(tables):
    probs = greedy_safe_probs(tables)
    assert np.allclose(probs.sum(axis=1), 1.0)
    # at the start both right and down lead toward the goal
    s0 = tables.start_state
    assert probs[s0, RIGHT] == pytest.approx(0.5) and probs[s0, DOWN] == pytest.approx(0.5)
    # never moves into a hazard while a safe move exists
    into_hazard = tables.hazard[tables.next_state]
    has_safe = (~into_hazard).any(axis=1)
    assert (probs[has_safe] * into_hazard[has_safe]).sum() == 0.0


def test_epsilon_mixing():
    p = np.array([[1.0, 0.0, 0.0, 0.0]])
    assert np.allclose(epsilon_mix(p, 0.2), [[0.85, 0.05, 0.05, 0.05]])
    with pytest.raises(ValueError):
        epsilon_mix(p, 1.5)


def test_regimes_fractions_sum_to_one():
    for name, comps in REGIMES.items():
        assert sum(c.fraction for c in comps) == pytest.approx(1.0), name
