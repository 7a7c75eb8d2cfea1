import numpy as np

from guardrl.data import constrained_policy
from guardrl.envs import make_safegrid, simulate


def test_vectorized_twin_agrees_with_gymnasium_env_in_distribution(tables):
    policy = constrained_policy(tables, 0.22)
    n = 1500
    eps = simulate(tables, policy, n, np.random.default_rng(0))
    env = make_safegrid()
    rng = np.random.default_rng(1)
    returns, hazards, goals, lengths = [], [], [], []
    for i in range(n):
        obs, _ = env.reset(seed=10_000 + i)
        total, steps = 0.0, 0
        while True:
            a = int(policy(obs[None], np.array([steps]), rng)[0])
            obs, r, term, trunc, info = env.step(a)
            total += r
            steps += 1
            if term or trunc:
                break
        returns.append(total)
        hazards.append(info["cost"] > 0)
        goals.append(info["is_success"])
        lengths.append(steps)
    # Two-sample z-tests at ~4 standard errors: agreement in distribution, not stream identity.
    for vec, single in ((eps.hazard, hazards), (eps.goal, goals)):
        p1, p2 = np.mean(vec), np.mean(single)
        se = np.sqrt(p1 * (1 - p1) / n + p2 * (1 - p2) / n)
        assert abs(p1 - p2) < 4 * se + 1e-9
    se = np.sqrt(np.var(eps.returns) / n + np.var(returns) / n)
    assert abs(eps.returns.mean() - np.mean(returns)) < 4 * se
    assert abs(eps.lengths.mean() - np.mean(lengths)) < 4 * np.sqrt(np.var(eps.lengths) / n + np.var(lengths) / n)


def test_episode_bookkeeping(tables):
    eps = simulate(tables, constrained_policy(tables, 0.5), 400, np.random.default_rng(2))
    ended = eps.terminated | eps.truncated
    # exactly one end flag per episode, on its last valid step, never both
    assert (ended & eps.valid).sum(axis=0).tolist() == [1] * 400
    assert not (eps.terminated & eps.truncated).any()
    last = eps.lengths - 1
    assert ended[last, np.arange(400)].all()
    assert (eps.lengths <= tables.layout.max_steps).all()
    assert np.array_equal(eps.hazard | eps.goal, eps.terminated.any(axis=0))


def test_same_seed_same_episodes(tables):
    p = constrained_policy(tables, 0.3)
    a = simulate(tables, p, 50, np.random.default_rng(9))
    b = simulate(tables, p, 50, np.random.default_rng(9))
    assert np.array_equal(a.actions, b.actions) and np.array_equal(a.returns, b.returns)
