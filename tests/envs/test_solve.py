import numpy as np
import pytest

from guardrl.data import constrained_policy, uniform_policy
from guardrl.envs import (
    Layout,
    TablePolicy,
    build_tables,
    evaluate_exact,
    evaluate_greedy,
    obs_to_states,
    simulate,
    solve_optimal,
    stationary,
)


def test_value_iteration_on_default_layout_matches_the_reference(tables):
    _, values = solve_optimal(tables)
    assert values.expected_return == pytest.approx(21.69, abs=0.01)
    assert values.hazard_prob < 1e-4
    assert values.goal_prob > 0.9999


def test_tutorial_behaviour_numbers(tables):
    noise_free = evaluate_exact(constrained_policy(tables, 0.0))
    safe = evaluate_exact(constrained_policy(tables, 0.22))
    assert noise_free.expected_return == pytest.approx(16.6, abs=0.1)
    assert noise_free.hazard_prob == pytest.approx(0.036, abs=0.002)
    assert safe.expected_return == pytest.approx(-13.9, abs=0.2)
    assert safe.hazard_prob == pytest.approx(0.204, abs=0.01)


def test_exact_solution_on_a_hand_computable_corridor():
    # 1x3 strip along x, no slip: two steps right, reward -1 then +50.
    lay = Layout(size=3, start=(0, 0), goal=(2, 0), slip=0.0, max_steps=5)
    _, values = solve_optimal(build_tables(lay))
    assert values.expected_return == pytest.approx(49.0)
    assert values.mean_length == pytest.approx(2.0)
    # with a step limit of 1 the goal cannot be reached: one step of -1
    short = Layout(size=3, start=(0, 0), goal=(2, 0), slip=0.0, max_steps=1)
    assert solve_optimal(build_tables(short))[1].expected_return == pytest.approx(-1.0)


def test_exact_evaluation_agrees_with_monte_carlo(tables):
    policy = constrained_policy(tables, 0.22)
    exact = evaluate_exact(policy)
    eps = simulate(tables, policy, 20_000, np.random.default_rng(4))
    se = eps.returns.std() / np.sqrt(20_000)
    assert abs(eps.returns.mean() - exact.expected_return) < 4 * se
    assert abs(eps.hazard.mean() - exact.hazard_prob) < 4 * np.sqrt(exact.hazard_prob / 20_000)


def test_optimal_beats_every_other_policy(tables):
    opt = solve_optimal(tables)[1].expected_return
    for p in (uniform_policy(tables), constrained_policy(tables, 0.0), constrained_policy(tables, 0.22)):
        assert evaluate_exact(p).expected_return < opt


def test_table_policy_validates_shape_and_sums(tables):
    with pytest.raises(ValueError, match="sum to 1"):
        TablePolicy(tables, np.zeros((1, tables.layout.n_states, 4)))
    with pytest.raises(ValueError, match="shape"):
        TablePolicy(tables, np.full((2, tables.layout.n_states, 4), 0.25))


def test_a_greedy_function_is_evaluated_as_its_table(tables):
    optimal, _ = solve_optimal(tables)
    row0 = optimal.probs[0].argmax(axis=1)
    values = evaluate_greedy(tables, lambda obs: row0[obs_to_states(tables.layout, obs)])
    assert values == evaluate_exact(stationary(optimal))
    assert values.hazard_prob < 0.01 and values.goal_prob > 0.99
