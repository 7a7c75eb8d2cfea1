"""The sepsis treatment simulator (``Sepsis-v0``) of Oberst & Sontag (ICML 2019), the clinical testbed of the
offline-RL-in-healthcare literature, written here from its published specification, with its exact model.

**Patients.** Four vitals, each a level: heart rate (0 low, 1 normal, 2 high), systolic blood pressure (same
three), O2 saturation (0 low, 1 normal), glucose (0-4: very low, low, normal, high, very high); three treatments
on or off (antibiotics, vasopressors, ventilation); and a hidden diabetes flag (probability 0.2). A vital away
from its normal level is *abnormal*. The 720 observable states leave diabetes out; the 1,440 full states hold it.

**Actions.** 8, one per treatment combination: ``id = 4*antibiotic + 2*ventilation + vasopressors``.

**One step.** The chosen treatments take effect in this order, each with its stated probability:

1. antibiotics on: a high heart rate or blood pressure returns to normal w.p. 0.5 each; stopping them (they
   were on): a normal heart rate or blood pressure turns high w.p. 0.1 each;
2. ventilation on: a low O2 saturation returns to normal w.p. 0.7; stopping it: a normal one turns low w.p. 0.1;
3. vasopressors on: non-diabetic, blood pressure rises one level w.p. 0.7 (low -> normal, normal -> high);
   diabetic, normal -> high w.p. 0.9, low -> normal w.p. 0.5 and low -> high w.p. 0.4, and glucose rises one
   level w.p. 0.5; stopping them: blood pressure falls one level w.p. 0.1 (0.05 if diabetic);
4. fluctuations, for each vital no treatment acted on in this step (continuing or stopping a treatment counts
   as acting): one level down w.p. 0.1, one level up w.p. 0.1; glucose fluctuates unless vasopressors are on,
   w.p. 0.3 each way for a diabetic. As in the reference implementation (``sepsisSimDiabetes``), a
   non-diabetic's upward glucose fluctuation sets the level to ``min(1, level + 1)``; it is kept so that the
   values here are the literature's.

**Outcomes.** Three or more abnormal vitals: death, reward -1, cost 1 (the hazard). No abnormal vital and no
treatment on: discharge, reward +1 (success). Both end the episode; otherwise the reward is 0. Episodes start in
a random state that is neither (every treatment off) and are truncated after 20 steps.

Every branch has an explicit probability and the four vitals move independently given the state and the
action, so the full-state transition table is built exactly by enumeration (:func:`build_sepsis_tables`).
Exact values by dynamic programming and the optimal policies live in :mod:`guardrl.envs.sepsis_exact`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from guardrl.envs.solve import sample_actions
from guardrl.envs.vector import Episodes

N_ACTIONS = 8
N_OBS_STATES = 720
N_FULL_STATES = 1440
HORIZON = 20
P_DIABETES = 0.2
OBS_NAMES = ("heart_rate", "sys_bp", "o2_sat", "glucose", "antibiotic", "vasopressor", "ventilation")
OBS_LEVELS = (3, 3, 2, 5, 2, 2, 2)
"""Levels of each observed variable, in the observation's order (also the order of the observed-state index)."""
NORMAL = (1, 1, 1, 2)
"""The normal level of each vital (heart rate, blood pressure, O2 saturation, glucose)."""
ACTION_NAMES = tuple(
    "+".join(n for n, on in (("antibiotic", a >> 2 & 1), ("ventilation", a >> 1 & 1), ("vasopressors", a & 1)) if on)
    or "none"
    for a in range(N_ACTIONS)
)

_STRIDES = np.array([240, 80, 40, 8, 4, 2, 1], dtype=np.int64)
_VITALS = 90  # 3 * 3 * 2 * 5 combinations of the four vitals


def action_bits(action: NDArray[np.integer] | int) -> tuple[Any, Any, Any]:
    """(antibiotic, ventilation, vasopressors) of action ids."""
    a = np.asarray(action)
    return a >> 2 & 1, a >> 1 & 1, a & 1


def obs_vectors(obs_index: NDArray[np.integer]) -> NDArray[np.float32]:
    """Observed-state indices (N,) -> observations (N, 7): the level of each variable in ``OBS_NAMES``."""
    idx = np.asarray(obs_index, dtype=np.int64)
    levels = np.asarray(OBS_LEVELS, dtype=np.int64)
    return ((idx[..., None] // _STRIDES) % levels).astype(np.float32)


def obs_index(obs: NDArray[np.floating]) -> NDArray[np.int64]:
    """Observations (N, 7) -> observed-state indices (N,); an observation off the levels is an error."""
    arr = np.asarray(obs, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(OBS_LEVELS):
        raise ValueError(f"Sepsis-v0 observations have shape (N, 7), got {arr.shape}")
    levels = np.rint(arr).astype(np.int64)
    bad = (np.abs(arr - levels) > 1e-6) | (levels < 0) | (levels >= np.asarray(OBS_LEVELS))
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        raise ValueError(f"Sepsis-v0: observation row {row} {arr[row].tolist()} is not a state (levels {OBS_LEVELS})")
    return levels @ _STRIDES


def _abnormal_count(vitals: NDArray[np.int64]) -> NDArray[np.int64]:
    """Abnormal vitals per vitals index (hr*30 + bp*10 + o2*5 + glucose)."""
    hr, bp, o2, glu = vitals // 30, vitals // 10 % 3, vitals // 5 % 2, vitals % 5
    return (hr != 1).astype(np.int64) + (bp != 1) + (o2 != 1) + (glu != 2)


# -------------------------------------------------------------- one vital's kernel per (state, action)


def _shift(n: int, by: int) -> NDArray[np.float64]:
    """The n x n matrix moving every level by ``by``, clamped to the range."""
    m = np.zeros((n, n))
    m[np.arange(n), np.clip(np.arange(n) + by, 0, n - 1)] = 1.0
    return m


def _fluctuate(n: int, p: float = 0.1) -> NDArray[np.float64]:
    return (1 - 2 * p) * np.eye(n) + p * _shift(n, -1) + p * _shift(n, 1)


def _move(n: int, src: int, dst: int, p: float) -> NDArray[np.float64]:
    """Level ``src`` becomes ``dst`` with probability p; every other level stays."""
    m = np.eye(n)
    m[src, src] -= p
    m[src, dst] += p
    return m


def _heart_rate(abx_was: int, abx: int) -> NDArray[np.float64]:
    if abx:
        return _move(3, 2, 1, 0.5)
    if abx_was:
        return _move(3, 1, 2, 0.1)
    return _fluctuate(3)


def _blood_pressure(abx_was: int, abx: int, vaso_was: int, vaso: int, diabetic: int) -> NDArray[np.float64]:
    m = _heart_rate(abx_was, abx) if (abx or abx_was) else np.eye(3)  # antibiotics act on it as on heart rate
    if vaso:
        if diabetic:
            up = _move(3, 1, 2, 0.9)
            up[0] = [0.1, 0.5, 0.4]
        else:
            up = 0.3 * np.eye(3) + 0.7 * _shift(3, 1)
        return m @ up
    if vaso_was:
        p = 0.05 if diabetic else 0.1
        return m @ ((1 - p) * np.eye(3) + p * _shift(3, -1))
    return m if (abx or abx_was) else _fluctuate(3)


def _o2(vent_was: int, vent: int) -> NDArray[np.float64]:
    if vent:
        return _move(2, 0, 1, 0.7)
    if vent_was:
        return _move(2, 1, 0, 0.1)
    return _fluctuate(2)


def _glucose(vaso: int, diabetic: int) -> NDArray[np.float64]:
    if vaso:
        return 0.5 * np.eye(5) + 0.5 * _shift(5, 1) if diabetic else np.eye(5)
    if diabetic:
        return _fluctuate(5, 0.3)
    down = 0.8 * np.eye(5) + 0.1 * _shift(5, -1)
    down[np.arange(5), np.minimum(1, np.arange(5) + 1)] += 0.1  # the reference's cap at level 1 (see above)
    return down


@dataclass(frozen=True)
class SepsisTables:
    """The exact full-state model: each (state, action) pair's possible next states and their probabilities.

    ``next_state`` and ``prob`` have shape (1440, 8, K) (K outcomes at most, padded with probability 0);
    full state ``s`` is ``diabetic * 720 + observed index``. ``death`` / ``discharge`` mark the absorbing states
    (entered, they end the episode) and ``initial`` is the start distribution over full states."""

    next_state: NDArray[np.int64]
    prob: NDArray[np.float64]
    death: NDArray[np.bool_]
    discharge: NDArray[np.bool_]
    initial: NDArray[np.float64]

    @property
    def terminal(self) -> NDArray[np.bool_]:
        return self.death | self.discharge

    @property
    def reward(self) -> NDArray[np.float64]:
        """Reward of entering each full state."""
        return self.discharge.astype(np.float64) - self.death.astype(np.float64)


@lru_cache(maxsize=1)
def build_sepsis_tables() -> SepsisTables:
    """Enumerate every branch of the simulator: the exact transition table (built once per process)."""
    vitals = np.arange(_VITALS)
    rows: list[NDArray[np.float64]] = []  # (1440 * 8) rows over 90 vital outcomes, state-major then action
    for diabetic in (0, 1):
        kernels = {}
        for treat in range(8):  # the observed index's order: antibiotic, vasopressor, ventilation
            abx_was, vaso_was, vent_was = treat >> 2 & 1, treat >> 1 & 1, treat & 1
            for a in range(N_ACTIONS):
                abx, vent, vaso = (int(b) for b in action_bits(a))
                kernels[treat, a] = np.kron(
                    np.kron(_heart_rate(abx_was, abx), _blood_pressure(abx_was, abx, vaso_was, vaso, diabetic)),
                    np.kron(_o2(vent_was, vent), _glucose(vaso, diabetic)),
                )
        for obs in range(N_OBS_STATES):
            v, treat = obs // 8, obs % 8
            rows.extend(kernels[treat, a][v] for a in range(N_ACTIONS))
    dense = np.stack(rows).reshape(N_FULL_STATES, N_ACTIONS, _VITALS)
    k = int((dense > 0).sum(axis=-1).max())
    order = np.argsort(-dense, axis=-1, kind="stable")[..., :k]
    prob = np.take_along_axis(dense, order, axis=-1)
    # next full state: same diabetes, the outcome's vitals, the chosen treatments (antibiotic, vaso, vent bits)
    s = np.arange(N_FULL_STATES)[:, None, None]
    abx, vent, vaso = action_bits(np.arange(N_ACTIONS))
    treat_next = (4 * abx + 2 * vaso + vent)[None, :, None]
    next_state = (s // N_OBS_STATES) * N_OBS_STATES + order * 8 + treat_next
    full = np.arange(N_FULL_STATES)
    abnormal = _abnormal_count(full % N_OBS_STATES // 8)
    death = abnormal >= 3
    discharge = (abnormal == 0) & (full % 8 == 0)
    initial = _initial_distribution(vitals)
    initial[death | discharge] = 0.0
    initial /= initial.sum()
    return SepsisTables(next_state.astype(np.int64), prob, death, discharge, initial)


def _initial_distribution(vitals: NDArray[np.int64]) -> NDArray[np.float64]:
    """Unconditioned start probabilities over full states: every treatment off."""
    hr = np.array([0.25, 0.5, 0.25])
    o2 = np.array([0.2, 0.8])
    glucose = {0: np.array([0.05, 0.15, 0.6, 0.15, 0.05]), 1: np.array([0.01, 0.05, 0.15, 0.6, 0.19])}
    out = np.zeros(N_FULL_STATES)
    for diabetic, prior in ((0, 1 - P_DIABETES), (1, P_DIABETES)):
        p = prior * np.kron(np.kron(hr, hr), np.kron(o2, glucose[diabetic]))
        out[diabetic * N_OBS_STATES + vitals * 8] = p
    return out


def step_states(
    tables: SepsisTables, states: NDArray[np.int64], actions: NDArray[np.int64], u: NDArray[np.float64]
) -> NDArray[np.int64]:
    """Next full states of a batch, one uniform draw each (inverse CDF over the pair's outcomes)."""
    cum = np.cumsum(tables.prob[states, actions], axis=-1)
    # u scaled by the total, so that rounding never reaches the padding past the last real outcome
    pick = (cum <= (u * cum[:, -1])[:, None]).sum(axis=-1)
    return tables.next_state[states, actions, pick]


def initial_states(tables: SepsisTables, n: int, rng: np.random.Generator) -> NDArray[np.int64]:
    cum = np.cumsum(tables.initial)
    return np.minimum(np.searchsorted(cum, rng.random(n), side="right"), N_FULL_STATES - 1).astype(np.int64)


def simulate_sepsis(
    probs: Any, n_episodes: int, rng: np.random.Generator, tables: SepsisTables | None = None
) -> tuple[Episodes, NDArray[np.float64], NDArray[np.int64]]:
    """``n_episodes`` patients in lockstep, to discharge, death or the 20-step limit.

    ``probs(full_states, steps) -> (N, 8)`` gives the action probabilities (a policy may read the hidden
    diabetes flag, as the physicians do). Returns the time-major episodes, the propensity of every logged action
    (T, N), and each patient's full start state (diabetes included, for analysis only)."""
    tables = tables or build_sepsis_tables()
    states = initial_states(tables, n_episodes, rng)
    start = states.copy()
    active = np.ones(n_episodes, dtype=bool)
    rec: dict[str, list[NDArray[Any]]] = {k: [] for k in Episodes.__dataclass_fields__}
    props: list[NDArray[np.float64]] = []
    for t in range(HORIZON):
        if not active.any():
            break
        steps = np.full(n_episodes, t, dtype=np.int64)
        p = np.asarray(probs(states, steps), dtype=np.float64)
        actions = sample_actions(p, rng)
        nxt = step_states(tables, states, actions, rng.random(n_episodes))
        death, discharge = tables.death[nxt] & active, tables.discharge[nxt] & active
        terminated = death | discharge
        truncated = active & ~terminated & (t + 1 >= HORIZON)
        for key, value in (
            ("obs", obs_vectors(states % N_OBS_STATES)), ("next_obs", obs_vectors(nxt % N_OBS_STATES)),
            ("steps", steps), ("actions", actions), ("rewards", discharge.astype(np.float64) - death),
            ("costs", death.astype(np.float64)), ("terminated", terminated), ("truncated", truncated),
            ("success", discharge), ("valid", active.copy()),
        ):  # fmt: skip
            rec[key].append(value)
        props.append(p[np.arange(n_episodes), actions])
        states = np.where(active, nxt, states)
        active = active & ~terminated & ~truncated
    episodes = Episodes(**{k: np.stack(v) for k, v in rec.items()})
    return episodes, np.stack(props), start


class Sepsis(gym.Env[np.ndarray, np.int64]):
    """The sepsis treatment simulator (Oberst & Sontag, 2019); see :mod:`guardrl.envs.sepsis`.

    ## Action Space
    ``Discrete(8)``: ``4*antibiotic + 2*ventilation + vasopressors``.

    ## Observation Space
    ``Box(0, levels-1, (7,), float32)``: heart rate, systolic BP, O2 saturation, glucose, antibiotic,
    vasopressor, ventilation, each as its level (one of the 720 observable states); diabetes stays hidden.

    ## Rewards
    ``-1`` on death (3 or more abnormal vitals), ``+1`` on discharge (no abnormal vital, no treatment), else 0.

    ## Episode End
    Termination on death (``info["cost"] == 1.0``) or discharge (``info["is_success"]``); truncation after 20
    steps through ``max_episode_steps``.

    ## Version History
    * v0: first version.
    """

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        self.tables = build_sepsis_tables()
        self.action_space = spaces.Discrete(N_ACTIONS)
        self.observation_space = spaces.Box(
            0.0, np.asarray(OBS_LEVELS, dtype=np.float32) - 1, shape=(len(OBS_LEVELS),), dtype=np.float32
        )
        self._state = 0

    def _obs(self) -> np.ndarray:
        return obs_vectors(np.array([self._state % N_OBS_STATES]))[0]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):  # type: ignore[override]
        super().reset(seed=seed)
        self._state = int(initial_states(self.tables, 1, self.np_random)[0])
        return self._obs(), {"cost": 0.0, "is_success": False}

    def step(self, action):  # type: ignore[override]
        if not self.action_space.contains(action):
            raise ValueError(f"Sepsis: action {action!r} is not in {self.action_space}")
        nxt = step_states(self.tables, np.array([self._state]), np.array([int(action)]), self.np_random.random(1))
        self._state = int(nxt[0])
        death, discharge = bool(self.tables.death[self._state]), bool(self.tables.discharge[self._state])
        info = {"cost": float(death), "is_success": discharge}
        return self._obs(), float(discharge) - float(death), death or discharge, False, info
