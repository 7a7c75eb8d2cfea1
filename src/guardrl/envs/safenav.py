"""SafeNav: SafeGrid's role with continuous actions. A point mass in a square arena steers with a velocity in a
box toward a goal disc; entering a circular hazard costs 1 and ends the episode.

Everything here is arrays: :func:`nav_step` is the one dynamics function, shared by the gymnasium env
(``SafeNav-v0``), the vectorized simulator :func:`simulate_nav` and the fine-grid planner :func:`solve_nav`
that gives the reference value of the normalized score, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numpy.typing import NDArray

from guardrl.envs.vector import Episodes

ACTION_DIM = 2
Circle = tuple[float, float, float]  # centre x, centre y, radius


@dataclass(frozen=True)
class NavLayout:
    """The arena ``[0, size]^2``, its goal and hazards, and the actuator."""

    size: float = 10.0
    start: tuple[float, float] = (1.0, 1.0)
    start_jitter: float = 0.5
    """The start position is drawn uniformly within ``start ± start_jitter`` on each axis."""
    goal: Circle = (9.0, 9.0, 0.75)
    hazards: tuple[Circle, ...] = ((5.0, 5.0, 1.5), (2.6, 6.6, 1.0), (6.6, 2.6, 1.0))
    """Two narrow gaps beside the centre hazard shorten the way; the wide way round is safe but longer."""
    max_speed: float = 0.5
    """Displacement per step per axis at action 1 (the action box is [-1, 1]^2)."""
    action_noise: float = 0.15
    """Standard deviation of the Gaussian noise added to the action before it is executed (clipped to the box)."""
    max_steps: int = 100
    step_reward: float = -1.0
    hazard_reward: float = -100.0
    goal_reward: float = 50.0

    def __post_init__(self) -> None:
        if self.size <= 0 or self.max_speed <= 0 or self.action_noise < 0 or self.max_steps < 1:
            raise ValueError("SafeNav layout: size, max_speed and max_steps must be positive, action_noise >= 0")
        for name, (x, y, r) in [("goal", self.goal), *(("hazard", h) for h in self.hazards)]:
            if r <= 0 or not (0 <= x <= self.size and 0 <= y <= self.size):
                raise ValueError(f"SafeNav layout: {name} {(x, y, r)} must have r > 0 and its centre in the arena")
        if self.hazards and np.any(in_circles(np.array([self.start]), self.hazards)):
            raise ValueError(f"SafeNav layout: the start {self.start} lies in a hazard")
        if self.hazards and min(r for _, _, r in self.hazards) <= self.max_speed * np.sqrt(2):
            # a step could cross a hazard without landing in it: entry is tested at the landing point
            raise ValueError("SafeNav layout: every hazard radius must exceed one step (max_speed * sqrt(2))")

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(map(list, v)) if k == "hazards" else v) for k, v in vars(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NavLayout:
        data = dict(data)
        for key in ("start", "goal"):
            if key in data:
                data[key] = tuple(float(v) for v in data[key])
        if "hazards" in data:
            data["hazards"] = tuple(tuple(float(v) for v in h) for h in data["hazards"])
        return cls(**data)


def in_circles(pos: NDArray[np.floating], circles: tuple[Circle, ...]) -> NDArray[np.bool_]:
    """(N,) whether each position (N, 2) lies strictly inside any of ``circles``."""
    if not circles:
        return np.zeros(pos.shape[:-1], dtype=bool)
    c = np.asarray(circles, dtype=np.float64)
    d2 = ((pos[..., None, :] - c[:, :2]) ** 2).sum(axis=-1)
    return np.asarray((d2 < c[:, 2] ** 2).any(axis=-1))


@dataclass(frozen=True)
class NavStep:
    """Outcome of one vectorized step (arrays over the batch)."""

    position: NDArray[np.float64]
    reward: NDArray[np.float64]
    cost: NDArray[np.float64]
    terminated: NDArray[np.bool_]
    success: NDArray[np.bool_]


def nav_step(
    layout: NavLayout, pos: NDArray[np.floating], actions: NDArray[np.floating], noise: NDArray[np.floating]
) -> NavStep:
    """The dynamics: execute ``clip(action + action_noise * noise, -1, 1)`` (``noise`` standard normal, same shape
    as ``actions``), move by ``max_speed`` times it, stay inside the arena. Landing in a hazard: cost 1, hazard
    reward, termination. Landing in the goal disc: goal reward, termination, success."""
    executed = np.clip(np.asarray(actions, dtype=np.float64) + layout.action_noise * noise, -1.0, 1.0)
    new = np.clip(np.asarray(pos, dtype=np.float64) + layout.max_speed * executed, 0.0, layout.size)
    hazard = in_circles(new, layout.hazards)
    success = in_circles(new, (layout.goal,)) & ~hazard
    reward = np.where(hazard, layout.hazard_reward, np.where(success, layout.goal_reward, layout.step_reward))
    return NavStep(new, reward, hazard.astype(np.float64), hazard | success, success)


def start_positions(layout: NavLayout, n: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """(n, 2) start positions, uniform within ``start ± start_jitter``."""
    offset = rng.uniform(-layout.start_jitter, layout.start_jitter, size=(n, 2))
    return np.clip(np.asarray(layout.start) + offset, 0.0, layout.size)


# ---------------------------------------------------------------- the gymnasium env


class SafeNav(gym.Env[np.ndarray, np.ndarray]):
    """A point mass steering around circular hazards to a goal disc.

    ## Action Space
    ``Box(-1, 1, (2,), float32)``: the velocity on x and y, as a share of ``layout.max_speed`` per step. Gaussian
    noise of standard deviation ``layout.action_noise`` is added before the action is executed (then clipped).

    ## Observation Space
    ``Box(0, size, (2,), float32)``: the (x, y) position.

    ## Rewards
    ``-1`` per step, ``-100`` on the step landing in a hazard, ``+50`` on the step landing in the goal disc.

    ## Episode End
    Termination on landing in a hazard (``info["cost"] == 1.0``) or the goal (``info["is_success"]``).
    Truncation after ``layout.max_steps`` steps (100) through gymnasium's ``TimeLimit``.

    ## Arguments
    ``layout``: a :class:`NavLayout` or a dict of its fields.

    ## Version History
    * v0: first version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 10}

    def __init__(self, layout: NavLayout | dict[str, Any] | None = None, render_mode: str | None = None):
        self.layout = NavLayout.from_dict(layout) if isinstance(layout, dict) else (layout or NavLayout())
        self.render_mode = render_mode
        self.action_space = spaces.Box(-1.0, 1.0, shape=(ACTION_DIM,), dtype=np.float32)
        self.observation_space = spaces.Box(0.0, self.layout.size, shape=(2,), dtype=np.float32)
        self._pos = np.asarray(self.layout.start, dtype=np.float64)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):  # type: ignore[override]
        super().reset(seed=seed)
        self._pos = start_positions(self.layout, 1, self.np_random)[0]
        return self._pos.astype(np.float32), {}

    def step(self, action):  # type: ignore[override]
        a = np.asarray(action, dtype=np.float64).reshape(ACTION_DIM)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"SafeNav: action {a.tolist()} is not finite")
        out = nav_step(self.layout, self._pos[None], a[None], self.np_random.standard_normal((1, ACTION_DIM)))
        self._pos = out.position[0]
        info = {"cost": float(out.cost[0]), "is_success": bool(out.success[0])}
        return self._pos.astype(np.float32), float(out.reward[0]), bool(out.terminated[0]), False, info

    def render(self) -> str | None:  # type: ignore[override]
        if self.render_mode != "ansi":
            return None
        return f"SafeNav at ({self._pos[0]:.2f}, {self._pos[1]:.2f})\n"


def make_safenav(layout: NavLayout | dict[str, Any] | None = None, **kwargs: Any) -> gym.Env:
    """``gymnasium.make("SafeNav-v0", ...)`` with the layout's step limit."""
    lay = NavLayout.from_dict(layout) if isinstance(layout, dict) else (layout or NavLayout())
    return gym.make("SafeNav-v0", layout=lay, max_episode_steps=lay.max_steps, **kwargs)


# ---------------------------------------------------------------- vectorized simulation

NavPolicy = Callable[[NDArray[np.float64], NDArray[np.int64], np.random.Generator], NDArray[np.float64]]
"""Maps positions (N, 2) at steps (N,) to actions (N, 2) in the box."""


def simulate_nav(
    layout: NavLayout, policy: NavPolicy, n_episodes: int, rng: np.random.Generator
) -> tuple[Episodes, NDArray[np.float64]]:
    """Run ``n_episodes`` episodes of ``policy`` in lockstep; returns them time-major and, per step, the
    policy's log density of its action when the policy exposes one (``policy.log_density``), else NaN."""
    pos = start_positions(layout, n_episodes, rng)
    steps = np.zeros(n_episodes, dtype=np.int64)
    active = np.ones(n_episodes, dtype=bool)
    rec: dict[str, list[NDArray[Any]]] = {k: [] for k in Episodes.__dataclass_fields__}
    log_density: list[NDArray[np.float64]] = []
    density = getattr(policy, "log_density", None)
    for _ in range(layout.max_steps):
        if not active.any():
            break
        # the policy sees only the running episodes (the finished ones would cost a planner its time)
        acting = np.asarray(policy(pos[active], steps[active], rng), dtype=np.float64)
        if acting.shape != (int(active.sum()), ACTION_DIM) or not np.all(np.abs(acting) <= 1.0):
            raise ValueError(f"SafeNav: a policy returned actions outside [-1, 1]^2 (shape {acting.shape})")
        actions = np.zeros((n_episodes, ACTION_DIM))
        actions[active] = acting
        out = nav_step(layout, pos, actions, rng.standard_normal(actions.shape))
        valid = active.copy()
        truncated = valid & ~out.terminated & (steps + 1 >= layout.max_steps)
        moved = np.where(valid[:, None], out.position, pos)
        for key, value in (
            ("obs", pos.astype(np.float32)), ("next_obs", moved.astype(np.float32)),
            ("steps", steps.copy()), ("actions", actions.astype(np.float32)), ("rewards", out.reward * valid),
            ("costs", out.cost * valid), ("terminated", out.terminated & valid), ("truncated", truncated),
            ("success", out.success & valid), ("valid", valid),
        ):  # fmt: skip
            rec[key].append(value)
        logged = np.full(n_episodes, np.nan)
        if density is not None:
            logged[active] = density(pos[active], acting)
        log_density.append(logged)
        pos = moved
        steps = steps + valid
        active = valid & ~out.terminated & ~truncated
    return Episodes(**{k: np.stack(v) for k, v in rec.items()}), np.stack(log_density)


# ---------------------------------------------------------------- behaviour policies with densities


@dataclass(frozen=True)
class SquashedGaussian:
    """``a = tanh(u)``, ``u ~ N(atanh(mean(pos)), std^2)`` per axis: a stochastic controller around a
    deterministic one, with an exact density (logged as the propensity). ``std = inf`` is uniform on the box."""

    mean: Callable[[NDArray[np.float64]], NDArray[np.float64]]
    std: float
    name: str = "squashed-gaussian"

    def _centre(self, pos: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.arctanh(np.clip(self.mean(pos), -0.95, 0.95))

    def __call__(self, pos: NDArray[np.float64], steps: NDArray[np.int64], rng: np.random.Generator) -> NDArray:
        if np.isinf(self.std):
            return rng.uniform(-1.0, 1.0, size=(len(pos), ACTION_DIM))
        return np.tanh(self._centre(pos) + self.std * rng.standard_normal((len(pos), ACTION_DIM)))

    def log_density(self, pos: NDArray[np.float64], actions: NDArray[np.floating]) -> NDArray[np.float64]:
        """Log density of ``actions`` (N, 2) at ``pos`` (N, 2) with respect to Lebesgue measure on the box."""
        if np.isinf(self.std):
            return np.full(len(pos), -np.log(4.0))
        return squashed_gaussian_log_density(actions, self._centre(pos), self.std)


def squashed_gaussian_log_density(
    actions: NDArray[np.floating], centre: NDArray[np.floating], std: float
) -> NDArray[np.float64]:
    """Log density on the box [-1, 1]^k of ``a = tanh(u)``, ``u ~ N(centre, std^2)`` per axis, at ``actions``
    (N, k); ``centre`` (N, k) is in the pre-tanh coordinates. Summed over the k axes."""
    a = np.clip(np.asarray(actions, dtype=np.float64), -1 + 1e-7, 1 - 1e-7)
    z = (np.arctanh(a) - np.asarray(centre, dtype=np.float64)) / std
    per_axis = -0.5 * z**2 - np.log(std * np.sqrt(2 * np.pi)) - np.log1p(-(a**2))
    return np.asarray(per_axis.sum(axis=-1))


def _zero_mean(pos: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.zeros_like(pos, dtype=np.float64)


UNIFORM_ACTIONS = SquashedGaussian(_zero_mean, np.inf, name="uniform")
"""Actions uniform on the box (density 1/4): the normalized score's zero, and mixed logs' random episodes."""

DEFAULT_WAYPOINTS: tuple[tuple[float, float], ...] = ((9.0, 1.0),)
"""The scripted controller's way round the default layout: along the bottom edge, then up to the goal."""
SHORTCUT_WAYPOINTS: tuple[tuple[float, float], ...] = ((5.94, 3.59),)
"""A hurried operator's way on the default layout: through the 0.38-wide gap between the centre hazard and the
lower-right one (the gap's midpoint), then straight to the goal."""


def _clear(
    pos: NDArray[np.float64], target: NDArray[np.float64], hazards: NDArray[np.float64], margin: float
) -> NDArray:
    """(N,) whether the segment from each position to ``target`` (N, 2) keeps ``margin`` off every hazard."""
    seg = target - pos
    length2 = np.maximum((seg**2).sum(-1), 1e-12)
    ok = np.ones(len(pos), dtype=bool)
    for cx, cy, r in hazards:
        t = np.clip(((np.array([cx, cy]) - pos) * seg).sum(-1) / length2, 0.0, 1.0)
        closest = pos + t[:, None] * seg
        ok &= np.linalg.norm(closest - (cx, cy), axis=-1) >= r + margin
    return ok


def steering_mean(
    layout: NavLayout, waypoints: tuple[tuple[float, float], ...] = DEFAULT_WAYPOINTS, margin: float = 0.5
) -> Callable[[NDArray[np.float64]], NDArray[np.float64]]:
    """A scripted controller without memory: aim at the goal when the straight way there keeps ``margin`` off
    every hazard, else at the last of ``waypoints`` that can be reached that way (else the first); within
    ``margin`` of a hazard's edge, also push away from it. Returns the deterministic action (N, 2)."""
    goal = np.asarray(layout.goal[:2], dtype=np.float64)
    hazards = np.asarray(layout.hazards, dtype=np.float64).reshape(-1, 3)
    points = [np.asarray(w, dtype=np.float64) for w in waypoints]

    def mean(pos: NDArray[np.float64]) -> NDArray[np.float64]:
        pos = np.asarray(pos, dtype=np.float64)
        target = np.broadcast_to(points[0] if points else goal, pos.shape).copy()
        for w in points[1:]:
            target = np.where(_clear(pos, np.broadcast_to(w, pos.shape), hazards, margin)[:, None], w, target)
        target = np.where(_clear(pos, np.broadcast_to(goal, pos.shape), hazards, margin)[:, None], goal, target)
        heading = target - pos
        heading /= np.maximum(np.linalg.norm(heading, axis=-1, keepdims=True), 1e-9)
        for cx, cy, r in hazards:
            away = pos - (cx, cy)
            dist = np.maximum(np.linalg.norm(away, axis=-1, keepdims=True), 1e-9)
            heading += 2.0 * np.clip((margin - (dist - r)) / margin, 0.0, 1.0) * away / dist
        return np.asarray(heading / np.maximum(np.abs(heading).max(axis=-1, keepdims=True), 1e-9))

    return mean


# ---------------------------------------------------------------- the fine-grid planner (reference value)


@dataclass(frozen=True)
class NavPlan:
    """Values of a fine grid over the arena solved by value iteration, and the greedy policy they give."""

    layout: NavLayout
    grid: NDArray[np.float64]
    """(G,) grid coordinates on each axis."""
    values: NDArray[np.float64]
    """(G, G) indexed [ix, iy]: the value of standing there (terminal regions hold their entry reward)."""
    headings: NDArray[np.float64]
    """(H, 2) the candidate actions: H directions pushed out to the edge of the box."""
    iterations: int
    residual: float
    nodes: NDArray[np.float64] = field(repr=False)
    """(K, 2) the quadrature nodes of the action noise, with their weights ``node_weights`` (K,)."""
    node_weights: NDArray[np.float64] = field(repr=False)

    def action_values(self, pos: NDArray[np.float64]) -> NDArray[np.float64]:
        """(N, H) expected reward plus value of each heading at positions (N, 2)."""
        return _Backup.at(self.layout, self.grid, pos, self.headings, self.nodes, self.node_weights)(self.values)

    def mean(self, pos: NDArray[np.float64]) -> NDArray[np.float64]:
        """The greedy heading (N, 2) at positions (N, 2)."""
        return self.headings[self.action_values(np.asarray(pos, dtype=np.float64)).argmax(axis=1)]

    def __call__(self, pos: NDArray[np.float64], steps: NDArray[np.int64], rng: np.random.Generator) -> NDArray:
        """The greedy planner as a policy (deterministic)."""
        return self.mean(pos)


def _quadrature() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Gauss-Hermite nodes (K, 2) and weights (K,) for the 2-D standard normal action noise (3 per axis)."""
    x = np.array([-np.sqrt(3.0), 0.0, np.sqrt(3.0)])
    w = np.array([1 / 6, 2 / 3, 1 / 6])
    nodes = np.stack(np.meshgrid(x, x, indexing="ij"), axis=-1).reshape(-1, 2)
    return nodes, np.outer(w, w).ravel()


def _corners(grid: NDArray[np.float64], pos: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Bilinear interpolation on the (G, G) grid at ``pos`` (..., 2): flat indices and weights (..., 4)."""
    g = len(grid)
    f = np.clip((pos - grid[0]) / (grid[1] - grid[0]), 0.0, g - 1 - 1e-9)
    i = f.astype(np.int64)
    t = f - i
    ix, iy, tx, ty = i[..., 0], i[..., 1], t[..., 0], t[..., 1]
    index = np.stack([ix * g + iy, (ix + 1) * g + iy, ix * g + iy + 1, (ix + 1) * g + iy + 1], axis=-1)
    weight = np.stack([(1 - tx) * (1 - ty), tx * (1 - ty), (1 - tx) * ty, tx * ty], axis=-1)
    return index, weight


@dataclass(frozen=True)
class _Backup:
    """One Bellman backup's fixed parts at positions (N, 2) for every heading and noise node: the reward and
    termination of each outcome, and where its continuation value is read on the grid."""

    reward: NDArray[np.float64]  # (N, H, K)
    index: NDArray[np.int64]  # (N, H, K, 4)
    weight: NDArray[np.float64]  # (N, H, K, 4), zero where the outcome terminates
    node_weights: NDArray[np.float64]  # (K,)

    @classmethod
    def at(
        cls,
        layout: NavLayout,
        grid: NDArray[np.float64],
        pos: NDArray[np.float64],
        headings: NDArray,
        nodes: NDArray,
        node_weights: NDArray,
    ) -> _Backup:
        out = nav_step(layout, pos[:, None, None, :], headings[None, :, None, :], nodes[None, None, :, :])
        index, weight = _corners(grid, out.position)
        return cls(out.reward, index, np.where(out.terminated[..., None], 0.0, weight), node_weights)

    def __call__(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """(N, H) expected reward plus continuation value under grid ``values`` (G, G)."""
        cont = (values.ravel()[self.index] * self.weight).sum(axis=-1)
        return np.asarray(((self.reward + cont) * self.node_weights).sum(axis=-1))


@lru_cache(maxsize=4)
def solve_nav(layout: NavLayout, resolution: int = 81, n_headings: int = 16, max_iterations: int = 300) -> NavPlan:
    """Value iteration (undiscounted, episodes end at the goal or a hazard) on a ``resolution``² grid with
    ``n_headings`` full-speed actions and a 3×3 Gauss-Hermite quadrature of the action noise; values between
    grid points are bilinear. The step limit is ignored (the plan reaches the goal long before it)."""
    grid = np.linspace(0.0, layout.size, resolution)
    gx, gy = np.meshgrid(grid, grid, indexing="ij")
    points = np.stack([gx.ravel(), gy.ravel()], axis=-1)
    angle = 2 * np.pi * np.arange(n_headings) / n_headings
    direction = np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    headings = direction / np.abs(direction).max(axis=1, keepdims=True)
    nodes, weights = _quadrature()
    hazard = in_circles(points, layout.hazards)
    goal = in_circles(points, (layout.goal,)) & ~hazard
    fixed = np.where(hazard, layout.hazard_reward, np.where(goal, layout.goal_reward, np.nan))
    values = np.where(np.isnan(fixed), 0.0, fixed).reshape(resolution, resolution)
    free = np.isnan(fixed)
    backup = _Backup.at(layout, grid, points[free], headings, nodes, weights)
    residual, iterations = np.inf, 0
    while iterations < max_iterations:
        iterations += 1
        q = backup(values)
        flat = values.ravel().copy()
        flat[free] = q.max(axis=1)
        residual = float(np.abs(flat - values.ravel()).max())
        values = flat.reshape(resolution, resolution)
        if residual < 1e-6:
            break
    return NavPlan(layout, grid, values, headings, iterations, residual, nodes, weights)


@lru_cache(maxsize=4)
def nav_reference(layout: NavLayout, n_episodes: int = 5_000, seed: int = 0) -> dict[str, float]:
    """The normalized score's two ends, by Monte Carlo on ``n_episodes`` seeded episodes: the fine-grid planner
    (:func:`solve_nav`, greedy, as ``optimal``) and actions uniform on the box (``random``); with their hazard
    rates. 100 * (R - random) / (optimal - random) is the score, as D4RL's."""
    out: dict[str, float] = {}
    for name, policy in (("optimal", solve_nav(layout)), ("random", UNIFORM_ACTIONS)):
        episodes, _ = simulate_nav(layout, policy, n_episodes, np.random.default_rng(seed))
        out[f"{name}_return"] = float(episodes.returns.mean())
        out[f"{name}_hazard_rate"] = float(episodes.hazard.mean())
    return out


# ---------------------------------------------------------------- logging regimes


@dataclass(frozen=True)
class NavComponent:
    """A share of a dataset's episodes logged by one stochastic controller."""

    fraction: float
    base: str  # "steering" | "shortcut" | "planner" | "uniform"
    std: float

    def policy(self, layout: NavLayout) -> SquashedGaussian:
        if self.base == "steering":
            return SquashedGaussian(steering_mean(layout), self.std, name=f"steering(std={self.std})")
        if self.base == "shortcut":
            mean = steering_mean(layout, SHORTCUT_WAYPOINTS, margin=0.05)
            return SquashedGaussian(mean, self.std, name=f"shortcut(std={self.std})")
        if self.base == "planner":
            return SquashedGaussian(solve_nav(layout).mean, self.std, name=f"planner(std={self.std})")
        if self.base == "uniform":
            return UNIFORM_ACTIONS
        raise ValueError(f"unknown SafeNav behaviour {self.base!r}")


NAV_REGIMES: dict[str, tuple[NavComponent, ...]] = {
    "safe": (NavComponent(1.0, "steering", 0.4),),
    "noisy": (NavComponent(0.7, "steering", 0.8), NavComponent(0.3, "shortcut", 0.4)),
    "mixed": (NavComponent(0.3, "uniform", np.inf), NavComponent(0.7, "steering", 0.4)),
    "expert": (NavComponent(1.0, "planner", 0.2),),
}
"""SafeNav's logging regimes, as SafeGrid's: the scripted steering controller with moderate noise (``safe``);
``noisy``: 70% of episodes the steering controller with large noise, 30% a hurried operator cutting through the
narrow gap (most of whose episodes end in a hazard), so that the logs' average action at the start points
between the two ways; 30% uniform-random episodes with 70% ``safe`` (``mixed``); the planner with small noise
(``expert``)."""
