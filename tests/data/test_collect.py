import numpy as np
import pytest

from guardrl.data.collect import collect_sepsis
from guardrl.envs.sepsis import obs_index


def test_sepsis_logs_are_reproducible_and_carry_the_physicians_propensities():
    a = collect_sepsis("physician", 200, 3)
    b = collect_sepsis("physician", 200, 3)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.observations, b.observations)
    assert a.n_actions == 8 and a.obs_dim == 7 and len(np.unique(a.episode_ids)) == 200
    assert set(np.unique(a.propensities)) == {0.95, 0.05 / 7}
    assert a.provenance["environment"] == "Sepsis-v0" and a.provenance["propensities"] == "logged"
    obs_index(a.observations)  # every logged observation is one of the 720 states
    # an episode ends in death (cost 1, reward -1), discharge (reward +1) or at the 20-step limit
    last = np.r_[a.episode_starts[1:], len(a)] - 1
    ends = a.terminations[last] | a.truncations[last]
    assert ends.all() and (a.steps[last][a.truncations[last]] == 19).all()
    assert ((a.costs == 1.0) == (a.rewards == -1.0)).all()
    hidden = collect_sepsis("physician-hidden", 200, 3)
    assert np.isnan(hidden.propensities).all() and hidden.provenance["propensities"] == "hidden"
    np.testing.assert_array_equal(hidden.actions, a.actions)  # the same patients and treatments
    with pytest.raises(ValueError, match="unknown sepsis regime"):
        collect_sepsis("safe", 10, 0)
