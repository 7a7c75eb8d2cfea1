"""SafeGrid layouts: a grid world described as data, plus the named layouts that ship with guardrl."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

Cell = tuple[int, int]

# Action ids and their (dx, dy) moves are the tutorial's: 0: y+1, 1: x+1, 2: y-1, 3: x-1, so its logs and
# policies carry over. Rows are drawn with y growing downwards, so the goal (14, 14) is bottom-right.
DOWN, RIGHT, UP, LEFT = 0, 1, 2, 3
MOVES: dict[int, Cell] = {DOWN: (0, 1), RIGHT: (1, 0), UP: (0, -1), LEFT: (-1, 0)}
N_ACTIONS = len(MOVES)
ACTION_NAMES = ("down (y+1)", "right (x+1)", "up (y-1)", "left (x-1)")


@dataclass(frozen=True)
class Layout:
    """A SafeGrid world: its size, start, goal, hazard cells, slip probability, step limit and rewards."""

    size: int = 15
    """Side length of the square grid."""
    start: Cell = (0, 0)
    """(x, y) start cell."""
    goal: Cell = (14, 14)
    """(x, y) goal cell; entering it ends the episode (termination)."""
    hazards: tuple[Cell, ...] = ()
    """(x, y) hazard cells; entering one ends the episode (termination) with cost 1."""
    slip: float = 0.05
    """Probability that the chosen action is replaced by a uniformly random one (possibly the same)."""
    max_steps: int = 80
    """Step limit, applied as a truncation through gymnasium's TimeLimit."""
    step_reward: float = -1.0
    """Reward of every step that enters neither the goal nor a hazard."""
    hazard_reward: float = -100.0
    """Reward of the step that enters a hazard."""
    goal_reward: float = 50.0
    """Reward of the step that enters the goal."""

    def __post_init__(self) -> None:
        cells = [("start", self.start), ("goal", self.goal)] + [("hazard", h) for h in self.hazards]
        for name, (x, y) in cells:
            if not (0 <= x < self.size and 0 <= y < self.size):
                raise ValueError(f"layout: {name} cell {(x, y)} lies outside the {self.size}x{self.size} grid")
        if self.start == self.goal:
            raise ValueError("layout: start and goal are the same cell")
        if self.start in self.hazards or self.goal in self.hazards:
            raise ValueError("layout: start or goal is a hazard cell")
        if len(set(self.hazards)) != len(self.hazards):
            raise ValueError("layout: a hazard cell is listed twice")
        if not 0.0 <= self.slip <= 1.0:
            raise ValueError(f"layout: slip must lie in [0, 1], got {self.slip}")
        if self.max_steps < 1:
            raise ValueError(f"layout: max_steps must be at least 1, got {self.max_steps}")

    @property
    def n_states(self) -> int:
        return self.size * self.size

    def to_dict(self) -> dict[str, object]:
        return {k: _plain(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Layout:
        kwargs: dict[str, Any] = dict(data)
        for key in ("start", "goal"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        if "hazards" in kwargs:
            kwargs["hazards"] = tuple(tuple(h) for h in kwargs["hazards"])
        return cls(**kwargs)


def _plain(value: object) -> object:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def tutorial_hazards(size: int, seed: int, start: Cell, goal: Cell) -> tuple[Cell, ...]:
    """The tutorial's hazard draw, reproduced exactly.

    ``rng = default_rng(seed)``, then ``size // 2`` times an (x, y) pair of ``rng.integers(2, size - 2)``,
    collected in a set, so repeats collapse and fewer cells may result. Cells on the start or goal (only
    possible on tiny grids) are dropped, since a layout cannot start or end in a hazard.
    """
    rng = np.random.default_rng(seed)
    cells: set[Cell] = set()
    for _ in range(size // 2):
        x = int(rng.integers(2, size - 2))
        y = int(rng.integers(2, size - 2))
        cells.add((x, y))
    return tuple(sorted(cells - {start, goal}))


def draw_hazards(size: int, n_hazards: int, seed: int, start: Cell, goal: Cell) -> tuple[Cell, ...]:
    """Draw exactly ``n_hazards`` distinct interior cells from ``seed`` (the ``drawn`` layout).

    Cells are drawn as (x, y) pairs with ``default_rng(seed).integers(1, size - 1)`` (never on the border),
    rejecting the start, the goal and repeats, until ``n_hazards`` are placed.
    """
    n_interior = (size - 2) ** 2 - sum(1 for c in (start, goal) if all(1 <= v < size - 1 for v in c))
    if n_hazards > n_interior:
        raise ValueError(f"cannot place {n_hazards} hazards in {n_interior} interior cells")
    rng = np.random.default_rng(seed)
    hazards: list[Cell] = []
    while len(hazards) < n_hazards:
        cell = (int(rng.integers(1, size - 1)), int(rng.integers(1, size - 1)))
        if cell not in (start, goal) and cell not in hazards:
            hazards.append(cell)
    return tuple(sorted(hazards))


DEFAULT_LAYOUT_SEED = 42
"""The seed the tutorial builds its env with. Exact values of the resulting world: optimal return 21.69 with
hazard probability 2.4e-5, the noise-free controller 16.61 with 3.6% hazard, the eps=0.22 controller -13.85
with 20.7% hazard."""


def default_layout(layout_seed: int = DEFAULT_LAYOUT_SEED) -> Layout:
    """The tutorial's world: 15x15, start (0, 0), goal (14, 14), hazards from :func:`tutorial_hazards`."""
    return Layout(hazards=tutorial_hazards(15, layout_seed, (0, 0), (14, 14)))


def drawn_layout(layout_seed: int = 2020) -> Layout:
    """guardrl's first default world: 7 distinct interior hazards from :func:`draw_hazards` (seed 2020)."""
    return Layout(hazards=draw_hazards(15, 7, layout_seed, (0, 0), (14, 14)))


def corridor_layout() -> Layout:
    """A harder world: two hazard walls force a zig-zag through one-cell-margin corridors.

    A wall at x=5 (rows 0-10) and one at x=9 (rows 4-14): the shortest safe path goes down the left band,
    through the gap under the first wall, up the middle band, over the second wall and down to the goal,
    about 44 steps, with hazards beside most of it. A greedy walker toward the goal gets stuck at the walls.
    """
    walls = [(5, y) for y in range(0, 11)] + [(9, y) for y in range(4, 15)]
    return Layout(hazards=tuple(walls))


NAMED_LAYOUTS = {"default": default_layout, "drawn": drawn_layout, "corridor": corridor_layout}


def named_layout(name: str) -> Layout:
    """Look up a shipped layout by name (``default``, ``drawn`` or ``corridor``) with its default seed."""
    try:
        return NAMED_LAYOUTS[name]()
    except KeyError:
        raise ValueError(f"unknown layout {name!r}; choose one of {sorted(NAMED_LAYOUTS)}") from None
