import numpy as np
import pytest

from guardrl.evaluate import MismatchThresholds, bootstrap, mismatch_rate, normalized_score


def test_bootstrap_of_a_constant_is_the_constant(rng):
    est = bootstrap({"return": np.full(50, 3.0)}, 500, 0.95, rng)
    assert (est["return"].mean, est["return"].low, est["return"].high) == (3.0, 3.0, 3.0)
    assert est["return_std"].mean == 0.0


def test_bootstrap_interval_matches_the_normal_approximation(rng):
    x = np.zeros(1000)
    x[:100] = 1.0  # rate 0.1; standard error sqrt(0.1 * 0.9 / 1000) = 0.0095
    est = bootstrap({"hazard_rate": x}, 4000, 0.95, rng)["hazard_rate"]
    assert est.mean == pytest.approx(0.1)
    assert est.low == pytest.approx(0.1 - 1.96 * 0.0095, abs=0.003)
    assert est.high == pytest.approx(0.1 + 1.96 * 0.0095, abs=0.003)


def test_bootstrap_is_seeded():
    x = np.arange(30.0)
    a = bootstrap({"return": x}, 300, 0.9, np.random.default_rng(1))
    b = bootstrap({"return": x}, 300, 0.9, np.random.default_rng(1))
    assert a == b
    with pytest.raises(ValueError):
        bootstrap({"return": x}, 300, 1.5, np.random.default_rng(1))


def test_normalized_score():
    assert normalized_score(21.69, -114.55, 21.69) == pytest.approx(100.0)
    assert normalized_score(-114.55, -114.55, 21.69) == pytest.approx(0.0)
    assert normalized_score(0.0, -100.0, 100.0) == pytest.approx(50.0)
    with pytest.raises(ValueError):
        normalized_score(0.0, 1.0, 1.0)


def test_mismatch_rate_and_traffic_light():
    assert mismatch_rate(np.array([0, 1, 2, 3]), np.array([0, 1, 0, 0])) == 0.5
    t = MismatchThresholds()
    assert [t.flag(r) for r in (0.05, 0.10, 0.15, 0.20, 0.21)] == ["ok", "caution", "caution", "caution", "red"]
    with pytest.raises(ValueError):
        mismatch_rate(np.array([0]), np.array([0, 1]))
