"""SafeGrid's MDP is known: exact optimal control and exact policy evaluation by backward induction over
(state, steps-to-go). These are the references every learner is scored against."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from guardrl.envs.dynamics import Tables, obs_to_states, states_to_obs


@dataclass(frozen=True)
class TablePolicy:
    """A policy given as action probabilities per (step, state): ``probs`` has shape (T, S, A).

    T is 1 for a stationary policy, else the layout's ``max_steps`` (row t is used at step t).
    """

    tables: Tables
    probs: NDArray[np.float64]
    name: str = "table"

    def __post_init__(self) -> None:
        T, S, A = self.probs.shape
        if S != self.tables.layout.n_states or T not in (1, self.tables.layout.max_steps):
            raise ValueError(f"TablePolicy: probs shape {self.probs.shape} does not fit the layout")
        if not np.allclose(self.probs.sum(axis=-1), 1.0):
            raise ValueError("TablePolicy: action probabilities must sum to 1 in every state")

    @classmethod
    def deterministic(cls, tables: Tables, actions: NDArray[np.int64], name: str = "table") -> TablePolicy:
        """From greedy actions of shape (S,) or (T, S)."""
        actions = np.atleast_2d(actions)
        probs = np.zeros(actions.shape + (tables.next_state.shape[1],))
        np.put_along_axis(probs, actions[..., None], 1.0, axis=-1)
        return cls(tables, probs, name)

    def state_probs(self, states: NDArray[np.int64], steps: NDArray[np.int64]) -> NDArray[np.float64]:
        """(N, A) action probabilities in the given states at the given steps."""
        t = np.zeros_like(steps) if self.probs.shape[0] == 1 else np.minimum(steps, self.probs.shape[0] - 1)
        return self.probs[t, states]

    def action_probs(self, obs: NDArray[np.floating], steps: NDArray[np.int64]) -> NDArray[np.float64]:
        """(N, A) action probabilities for observations (x, y) at the given steps."""
        return self.state_probs(obs_to_states(self.tables.layout, obs), steps)

    def __call__(
        self, obs: NDArray[np.floating], steps: NDArray[np.int64], rng: np.random.Generator
    ) -> NDArray[np.int64]:
        return sample_actions(self.action_probs(obs, steps), rng)


def sample_actions(probs: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.int64]:
    """One categorical draw per row of ``probs`` (N, A), by inverse CDF with one uniform per row.

    The one sampler of guardrl (behaviour logging, rollouts, FQE's stochastic targets): action ``a`` is drawn
    when ``cdf[a-1] <= u < cdf[a]``; a ``u`` past a total just under 1 (rounding) takes the last action.
    """
    u = rng.random((probs.shape[0],))
    cum = np.cumsum(probs, axis=1)
    return (cum[:, :-1] <= u[:, None]).sum(axis=1).astype(np.int64)


@dataclass(frozen=True)
class ExactValues:
    """Exact expectations from the start state over one episode (undiscounted)."""

    expected_return: float
    hazard_prob: float
    goal_prob: float
    mean_length: float

    def to_dict(self) -> dict[str, float]:
        return {
            "expected_return": self.expected_return,
            "hazard_prob": self.hazard_prob,
            "goal_prob": self.goal_prob,
            "mean_length": self.mean_length,
        }


def _outcome_terms(tables: Tables) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    ns = tables.next_state  # (S, B): state reached by executed action b
    return ns, tables.reward[ns], (~tables.terminal[ns]).astype(np.float64)


def evaluate_exact(policy: TablePolicy) -> ExactValues:
    """Exact return, hazard and goal probabilities and mean length of ``policy`` from the start state."""
    tables = policy.tables
    T = tables.layout.max_steps
    ns, r, cont = _outcome_terms(tables)
    P = tables.effective_action_probs()
    hazard_step = tables.hazard[ns].astype(np.float64)
    goal_step = tables.goal[ns].astype(np.float64)
    S = tables.layout.n_states
    v_ret, v_haz, v_goal, v_len = (np.zeros(S) for _ in range(4))
    for t in range(T - 1, -1, -1):
        pi = policy.probs[0 if policy.probs.shape[0] == 1 else t]
        m = pi @ P  # (S, B): probability that b is executed in s
        v_ret, v_haz, v_goal, v_len = (
            (m * (r + cont * v_ret[ns])).sum(1),
            (m * (hazard_step + cont * v_haz[ns])).sum(1),
            (m * (goal_step + cont * v_goal[ns])).sum(1),
            (m * (1.0 + cont * v_len[ns])).sum(1),
        )
    s0 = tables.start_state
    return ExactValues(float(v_ret[s0]), float(v_haz[s0]), float(v_goal[s0]), float(v_len[s0]))


def evaluate_greedy(tables: Tables, greedy: Callable[[NDArray[np.float32]], NDArray[np.integer]]) -> ExactValues:
    """Exact values of a greedy policy given as a function of observations: its action in every cell, then
    :func:`evaluate_exact`."""
    cells = states_to_obs(tables.layout, np.arange(tables.layout.n_states))
    return evaluate_exact(TablePolicy.deterministic(tables, np.asarray(greedy(cells))))


def solve_optimal(tables: Tables) -> tuple[TablePolicy, ExactValues]:
    """Value iteration over (state, steps-to-go): the optimal non-stationary policy and its exact values.

    Maximizes the undiscounted expected return within the step limit; ties go to the lowest action id.
    """
    T = tables.layout.max_steps
    ns, r, cont = _outcome_terms(tables)
    P = tables.effective_action_probs()
    v = np.zeros(tables.layout.n_states)
    actions = np.empty((T, tables.layout.n_states), dtype=np.int64)
    for t in range(T - 1, -1, -1):
        w = r + cont * v[ns]  # (S, B): value of executing b now
        q = w @ P.T  # (S, A): expectation over slips
        actions[t] = np.argmax(q, axis=1)
        v = q.max(axis=1)
    policy = TablePolicy.deterministic(tables, actions, name="optimal")
    return policy, evaluate_exact(policy)


def hazard_seeking_policy(tables: Tables) -> TablePolicy:
    """The stationary policy that enters a hazard as surely as it can: a deliberately unsafe reference."""
    seek = dataclasses.replace(tables, reward=tables.hazard.astype(np.float64))
    policy, _ = solve_optimal(seek)
    return TablePolicy.deterministic(tables, policy.probs[0].argmax(axis=1), name="hazard-seeking")


def stationary(policy: TablePolicy, t: int = 0, name: str | None = None) -> TablePolicy:
    """Row ``t`` of a (possibly step-dependent) policy, used at every step."""
    return TablePolicy(policy.tables, policy.probs[[0 if policy.probs.shape[0] == 1 else t]], name or policy.name)
