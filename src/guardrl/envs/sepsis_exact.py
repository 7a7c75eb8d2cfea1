"""Exact answers on the sepsis simulator: any observed-state policy's return, death and discharge probabilities
and mean episode length by dynamic programming on the full-state model (diabetes included), the optimal
full-state and observed-state policies, and the physicians' behaviour policy of Oberst & Sontag (2019)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from guardrl.envs.sepsis import HORIZON, N_ACTIONS, N_OBS_STATES, P_DIABETES, SepsisTables, build_sepsis_tables
from guardrl.envs.solve import ExactValues

POLICY_DISCOUNT = 0.99
"""Discount of the optimal policies (the reference's), over an unlimited horizon; values are then measured
undiscounted over the 20-step episodes."""
PHYSICIAN_EPSILON = 0.05


def _as_full(probs: NDArray[np.floating]) -> NDArray[np.float64]:
    """Action probabilities per observed (720, 8) or full (1440, 8) state -> per full state (1440, 8)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != N_ACTIONS or p.shape[0] not in (N_OBS_STATES, 2 * N_OBS_STATES):
        raise ValueError(f"a Sepsis-v0 policy has shape (720, 8) or (1440, 8) action probabilities, got {p.shape}")
    if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
        row = int(np.flatnonzero((p < 0).any(axis=1) | ~np.isclose(p.sum(axis=1), 1.0, atol=1e-6))[0])
        raise ValueError(f"Sepsis-v0 policy: state {row}'s action probabilities {p[row].tolist()} do not sum to 1")
    return p if p.shape[0] == 2 * N_OBS_STATES else np.concatenate([p, p])


def deterministic(actions: NDArray[np.integer]) -> NDArray[np.float64]:
    """One action per state (720,) or (1440,) -> action probabilities."""
    a = np.asarray(actions, dtype=np.int64)
    probs = np.zeros((a.shape[0], N_ACTIONS))
    probs[np.arange(a.shape[0]), a] = 1.0
    return probs


def evaluate_sepsis(probs: NDArray[np.floating], tables: SepsisTables | None = None) -> ExactValues:
    """Exact undiscounted values over 20-step episodes from the start distribution, for a stationary policy
    given as action probabilities per observed state (720, 8) or per full state (1440, 8).

    ``hazard_prob`` is the death probability, ``goal_prob`` the discharge probability."""
    t = tables or build_sepsis_tables()
    pi = _as_full(probs)
    ns = t.next_state
    cont = (~t.terminal[ns]).astype(np.float64)
    immediate = np.stack(
        [t.reward[ns], t.death[ns].astype(np.float64), t.discharge[ns].astype(np.float64), np.ones(ns.shape)], axis=-1
    )
    weight = pi[:, :, None] * t.prob  # (S, A, K): probability of each outcome under the policy
    v = np.zeros((ns.shape[0], 4))
    for _ in range(HORIZON):
        v = np.einsum("sak,sakj->sj", weight, immediate + cont[..., None] * v[ns])
    ret, death, discharge, length = t.initial @ v
    return ExactValues(float(ret), float(death), float(discharge), float(length))


def _policy_iteration(
    next_state: NDArray[np.int64], prob: NDArray[np.float64], reward: NDArray[np.float64], cont: NDArray[np.float64]
) -> NDArray[np.int64]:
    """The optimal stationary policy at :data:`POLICY_DISCOUNT`; ties go to the lowest action id.

    ``reward`` and ``cont`` are per outcome (S, A, K): the reward of the transition and whether it continues."""
    n = next_state.shape[0]
    r_sa = (prob * reward).sum(-1)
    actions = np.zeros(n, dtype=np.int64)
    rows = np.arange(n)
    for _ in range(1000):
        p = np.zeros((n, n))
        np.add.at(p, (np.repeat(rows, next_state.shape[-1]), next_state[rows, actions].ravel()),
                  (prob * cont)[rows, actions].ravel())  # fmt: skip
        v = np.linalg.solve(np.eye(n) - POLICY_DISCOUNT * p, r_sa[rows, actions])
        q = r_sa + POLICY_DISCOUNT * (prob * cont * v[next_state]).sum(-1)
        best = np.argmax(q >= q.max(axis=1, keepdims=True) - 1e-10, axis=1)
        # keep the current action where it is still within the tolerance of the best, so that iteration ends
        keep = q[rows, actions] >= q.max(axis=1) - 1e-10
        new = np.where(keep, actions, best)
        if np.array_equal(new, actions):
            return actions
        actions = new
    raise RuntimeError("policy iteration did not converge")  # pragma: no cover  (finite MDP: it always does)


def optimal_full_policy(tables: SepsisTables | None = None) -> NDArray[np.int64]:
    """The optimal action in each of the 1,440 full states (diabetes known), as the physicians' policy uses."""
    t = tables or build_sepsis_tables()
    ns = t.next_state
    actions = _policy_iteration(ns, t.prob, t.reward[ns], (~t.terminal[ns]).astype(np.float64))
    actions[t.terminal] = 0  # never acted in
    return actions


def optimal_observed_policy(tables: SepsisTables | None = None) -> NDArray[np.int64]:
    """The optimal action in each of the 720 observed states of the MDP whose transitions average over diabetes
    by its prior (0.2), as the reference defines its observed-state policy (not the partially observed optimum,
    which would track the posterior of diabetes along the episode)."""
    t = tables or build_sepsis_tables()
    half = N_OBS_STATES
    ns = np.concatenate([t.next_state[:half], t.next_state[half:]], axis=-1) % half
    prob = np.concatenate([(1 - P_DIABETES) * t.prob[:half], P_DIABETES * t.prob[half:]], axis=-1)
    death, discharge = t.death[:half], t.discharge[:half]
    reward = discharge[ns].astype(np.float64) - death[ns]
    actions = _policy_iteration(ns, prob, reward, (~(death | discharge)[ns]).astype(np.float64))
    actions[death | discharge] = 0
    return actions


def physician_probs(epsilon: float = PHYSICIAN_EPSILON, tables: SepsisTables | None = None) -> NDArray[np.float64]:
    """The physicians (1440, 8): the optimal full-state action w.p. 1 - epsilon, each other action w.p.
    epsilon / 7. They see diabetes; the logs do not."""
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
    best = optimal_full_policy(tables)
    probs = np.full((best.shape[0], N_ACTIONS), epsilon / (N_ACTIONS - 1))
    probs[np.arange(best.shape[0]), best] = 1.0 - epsilon
    return probs
