import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from guardrl.envs.sepsis import (
    N_OBS_STATES,
    build_sepsis_tables,
    obs_index,
    obs_vectors,
    simulate_sepsis,
)
from guardrl.envs.sepsis_exact import (
    deterministic,
    evaluate_sepsis,
    optimal_full_policy,
    optimal_observed_policy,
    physician_probs,
)

# Measured once on the reference simulator (sepsisSimDiabetes, clinicalml/gumbel-max-scm d62995de) with
# bench/sepsis_reference.py, 100,000 episodes each: bench/results/sepsis-reference-2026-12-05.json.
# policy: (death rate, discharge rate, mean length, sd of length)
REFERENCE = {
    "0": (0.90181, 0.09071, 4.72103, 3.92584),
    "1": (0.91040, 0.00000, 6.41180, 6.22279),
    "2": (0.93227, 0.00000, 7.84850, 5.78953),
    "3": (0.49373, 0.00000, 12.01883, 8.47656),
    "4": (0.40675, 0.00000, 14.70247, 7.23174),
    "5": (0.59521, 0.00000, 11.46608, 8.08388),
    "6": (0.05589, 0.00000, 19.07732, 3.88041),
    "7": (0.12719, 0.00000, 17.62428, 6.22878),
    "uniform": (0.81308, 0.05380, 8.74002, 6.65798),
}
N_REFERENCE = 100_000


@pytest.fixture(scope="module")
def tables():
    return build_sepsis_tables()


@pytest.mark.parametrize("policy", sorted(REFERENCE))
def test_exact_values_match_the_reference_simulator(tables, policy):
    if policy == "uniform":
        probs = np.full((N_OBS_STATES, 8), 1 / 8)
    else:
        probs = deterministic(np.full(N_OBS_STATES, int(policy)))
    exact = evaluate_sepsis(probs, tables)
    death, discharge, length, sd = REFERENCE[policy]
    for got, ref in ((exact.hazard_prob, death), (exact.goal_prob, discharge)):
        se = np.sqrt(ref * (1 - ref) / N_REFERENCE)
        assert abs(got - ref) <= 3 * se + 1e-12, (policy, got, ref, se)
    assert abs(exact.mean_length - length) <= 3 * sd / np.sqrt(N_REFERENCE), (policy, exact.mean_length, length)
    assert exact.expected_return == pytest.approx(exact.goal_prob - exact.hazard_prob)


def test_transition_table_is_a_distribution_that_keeps_diabetes_and_sets_treatments(tables):
    assert tables.prob.shape[:2] == (1440, 8)
    np.testing.assert_allclose(tables.prob.sum(-1), 1.0, atol=1e-12)
    live = tables.prob > 0
    ns = tables.next_state
    s = np.broadcast_to(np.arange(1440)[:, None, None], ns.shape)
    assert (ns[live] // N_OBS_STATES == s[live] // N_OBS_STATES).all()  # diabetes never changes
    a = np.broadcast_to(np.arange(8)[None, :, None], ns.shape)
    treat = ns % 8  # antibiotic*4 + vasopressor*2 + ventilation
    assert ((treat >> 2 & 1)[live] == (a >> 2 & 1)[live]).all()
    assert ((treat & 1)[live] == (a >> 1 & 1)[live]).all()
    assert ((treat >> 1 & 1)[live] == (a & 1)[live]).all()
    assert tables.initial.sum() == pytest.approx(1.0)
    assert tables.initial[tables.terminal].sum() == 0.0
    assert tables.initial[tables.initial > 0].size > 0 and (np.arange(1440)[tables.initial > 0] % 8 == 0).all()


def test_one_transition_by_hand(tables):
    # non-diabetic, heart rate high, everything else normal, no treatment; antibiotics (action 4):
    # heart rate high -> normal w.p. 0.5; blood pressure held (no fluctuation under antibiotics); O2 normal w.p.
    # 0.9; glucose normal w.p. 0.8 (down 0.1, and the reference's capped upward fluctuation to level 1 0.1)
    s = int(obs_index(np.array([[2, 1, 1, 2, 0, 0, 0]]))[0])
    to = int(obs_index(np.array([[1, 1, 1, 2, 1, 0, 0]]))[0])
    p = tables.prob[s, 4][tables.next_state[s, 4] == to].sum()
    assert p == pytest.approx(0.5 * 0.9 * 0.8)
    low_glucose = int(obs_index(np.array([[1, 1, 1, 1, 1, 0, 0]]))[0])
    assert tables.prob[s, 4][tables.next_state[s, 4] == low_glucose].sum() == pytest.approx(0.5 * 0.9 * 0.2)
    assert not tables.discharge[to] and not tables.death[to]  # antibiotics still on: not discharged


def test_observation_index_round_trip_and_bad_rows():
    idx = np.arange(N_OBS_STATES)
    np.testing.assert_array_equal(obs_index(obs_vectors(idx)), idx)
    with pytest.raises(ValueError, match="row 1"):
        obs_index(np.array([[0, 0, 0, 0, 0, 0, 0], [3, 0, 0, 0, 0, 0, 0]], dtype=np.float32))


def test_optimal_policies_and_physicians(tables):
    full = optimal_full_policy(tables)
    observed = optimal_observed_policy(tables)
    v_full = evaluate_sepsis(deterministic(full), tables)
    v_obs = evaluate_sepsis(deterministic(observed), tables)
    phys = physician_probs(tables=tables)
    v_phys = evaluate_sepsis(phys, tables)
    assert v_full.expected_return > max(v_obs.expected_return, v_phys.expected_return)
    assert v_full.hazard_prob < v_obs.hazard_prob < v_phys.hazard_prob
    # measured: 2.03 %, 3.68 %, 8.73 % mortality; the physicians (who see diabetes) discharge more (42.1 % vs
    # 33.9 %), so their return (0.333) beats the observed-state optimum's (0.303)
    assert v_full.hazard_prob == pytest.approx(0.0203, abs=5e-4)
    assert v_phys.hazard_prob == pytest.approx(0.0873, abs=5e-4)
    np.testing.assert_allclose(phys.sum(axis=1), 1.0)
    assert (phys.max(axis=1) == 0.95).all()
    best = evaluate_sepsis(deterministic(np.full(N_OBS_STATES, 6)), tables).expected_return
    assert v_obs.expected_return > best  # better than any one fixed treatment


def test_vectorized_twin_matches_exact_values(tables):
    phys = physician_probs(tables=tables)
    episodes, propensities, start = simulate_sepsis(lambda s, t: phys[s], 20_000, np.random.default_rng(5), tables)
    exact = evaluate_sepsis(phys, tables)
    death = episodes.hazard.mean()
    assert abs(death - exact.hazard_prob) < 4 * np.sqrt(exact.hazard_prob * (1 - exact.hazard_prob) / 20_000)
    assert abs(episodes.goal.mean() - exact.goal_prob) < 4 * np.sqrt(exact.goal_prob * (1 - exact.goal_prob) / 20_000)
    assert episodes.lengths.max() == 20
    assert set(np.unique(propensities[episodes.valid])) == {0.95, 0.05 / 7}
    assert (episodes.returns == episodes.goal.astype(float) - episodes.hazard).all()
    assert (start // N_OBS_STATES == 1).mean() == pytest.approx(0.2, abs=0.02)


def test_vectorized_twin_is_reproducible(tables):
    uniform = lambda s, t: np.full((len(s), 8), 1 / 8)  # noqa: E731
    a, _, _ = simulate_sepsis(uniform, 300, np.random.default_rng(1), tables)
    b, _, _ = simulate_sepsis(uniform, 300, np.random.default_rng(1), tables)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.obs, b.obs)


def test_registered_env_passes_gymnasium_checker_and_ends_episodes():
    env = gym.make("Sepsis-v0")
    check_env(env.unwrapped)
    assert env.spec.max_episode_steps == 20
    obs, _ = env.reset(seed=0)
    assert obs.shape == (7,)
    ends = []
    for seed in range(50):
        env.reset(seed=seed)
        for _ in range(25):
            obs, r, term, trunc, info = env.step(6)
            if term or trunc:
                ends.append((r, term, trunc, info["cost"]))
                break
    assert len(ends) == 50
    assert all((r == -1.0) == (c == 1.0) for r, _, _, c in ends)
    assert any(trunc for _, _, trunc, _ in ends)  # antibiotics + ventilation mostly survive 20 steps
    with pytest.raises(ValueError, match="not in"):
        env.unwrapped.step(8)
