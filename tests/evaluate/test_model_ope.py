"""Model-based OPE's interval: the members' spread plus each member's Monte Carlo error."""

import numpy as np

from guardrl.evaluate.model_ope import member_interval


def test_interval_spans_the_members_and_their_sampling_error():
    rng = np.random.default_rng(0)
    values = np.stack([rng.normal(10.0, 1.0, 400), rng.normal(12.0, 1.0, 400)])
    est = member_interval(values, 0.95)
    assert abs(est.mean - 11.0) < 0.2
    assert est.low < values[0].mean() - 0.05 and est.high > values[1].mean() + 0.05


def test_no_simulated_event_still_has_a_positive_upper_bound():
    zeros = np.zeros((3, 1000))
    est = member_interval(zeros, 0.95, binary=True)
    assert est.mean == 0.0 and abs(est.low) < 1e-12
    # Wilson's upper bound for 0 of 1000 at 95%: z^2 / (n + z^2) = 0.38%
    assert abs(est.high - 1.96**2 / (1000 + 1.96**2)) < 1e-4
    normal = member_interval(zeros, 0.95, binary=False)
    assert normal.high == 0.0  # what a normal interval would claim
