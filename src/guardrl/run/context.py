"""What every stage of one run shares: its config, its folder, and its environment built once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from guardrl._parallel import BackgroundWorker, ray_info, run_tasks
from guardrl.config import RunConfig, from_dict, to_dict
from guardrl.data import Dataset
from guardrl.data.audit import Support
from guardrl.envs import Tables, build_tables
from guardrl.envs.gym_env import GymSimulator, load_callable
from guardrl.errors import RunError
from guardrl.run.folder import RunFolder


@dataclass
class RunContext:
    """A run's config and folder, with its simulator and dataset loaded on first use and then reused."""

    cfg: RunConfig
    folder: RunFolder
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)
    final_root: Path | None = None
    """Where the run folder will live once ``guardrl run`` moves it into place (it is built in a temporary
    sibling); None when the folder already is the run's."""
    plotter: BackgroundWorker | None = None
    """Where :meth:`plot` draws: ``guardrl run`` draws in a forked child beside the stages and waits for it
    before the report; a stage run alone draws inline."""

    def plot(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Draw ``guardrl.report.plots.<name>(*args, **kwargs)`` (it writes its file), in :attr:`plotter` if set."""
        target = f"guardrl.report.plots:{name}"
        if self.plotter is None:
            BackgroundWorker.call(target, *args, **kwargs)
        else:
            self.plotter.submit(target, *args, **kwargs)

    def on_cluster(self, task: Callable[[str, dict[str, Any], str], Any], names: list[str]) -> dict[str, Any] | None:
        """``{name: task(root, cfg, name)}`` computed as one Ray task per name, when a Ray session is active and
        there are several names; None otherwise (the caller then works here). Each task reopens this run's folder
        (:meth:`reopened`), which must be on storage every node sees."""
        if ray_info() is None or len(names) < 2:
            return None
        calls = [(str(self.folder.root), to_dict(self.cfg), name) for name in names]
        return dict(zip(names, run_tasks(task, calls), strict=True))

    @classmethod
    def reopened(cls, root: str, cfg: dict[str, Any]) -> RunContext:
        """The run at ``root`` with the config ``cfg`` (as :meth:`on_cluster` sends them), where a task runs."""
        return cls.open(RunFolder(Path(root)), from_dict(RunConfig, cfg))

    @property
    def run_dir(self) -> Path:
        """The run folder as a user names it (for commands printed in the memo)."""
        return self.final_root if self.final_root is not None else self.folder.root

    @classmethod
    def open(cls, folder: RunFolder | Any, cfg: RunConfig | None = None) -> RunContext:
        """The run in ``folder``, with ``cfg`` or the folder's saved config."""
        folder = folder if isinstance(folder, RunFolder) else RunFolder(folder)
        cfg = cfg if cfg is not None else folder.read_config()
        if cfg.env.continuous:
            raise RunError(
                f"{folder.root}: a run with continuous actions (SafeNav, MuJoCo) runs as a whole with `guardrl run`; "
                "its stages are not separate commands yet"
            )
        return cls(cfg, folder)

    @property
    def is_safegrid(self) -> bool:
        return not self.cfg.env.is_gym and not self.cfg.env.logs_only and not self.cfg.env.continuous

    @property
    def logs_only(self) -> bool:
        """No simulator: every estimate comes from the logs (``env: none``)."""
        return self.cfg.env.logs_only

    @property
    def env_name(self) -> str:
        if self.cfg.env.sepsis:
            return "Sepsis-v0 (judged on its logs only)"
        if self.logs_only:
            return "none (logs only)"
        return self.cfg.env.gym_id or "SafeGrid-v0"

    @cached_property
    def tables(self) -> Tables:
        """SafeGrid's dynamics tables (SafeGrid runs only)."""
        if not self.is_safegrid:
            raise RunError(f"this run uses {self.env_name}, not SafeGrid")
        return build_tables(self.cfg.env.build())

    @cached_property
    def simulator(self) -> GymSimulator:
        """The gymnasium environment of an ``env.gym_id`` run."""
        if self.logs_only:
            raise RunError("this run has no simulator (env: none); its evidence comes from the logs")
        return GymSimulator(self.cfg.env.gym_spec())

    @property
    def simulate(self) -> Any:
        """What :func:`guardrl.evaluate.rollout` rolls policies out in: SafeGrid's tables or the gym env."""
        return self.tables if self.is_safegrid else self.simulator.simulate

    @property
    def world_model(self) -> Any:
        """The run's world model (:class:`~guardrl.train.world_model.WorldModel`), read from the folder once."""
        from guardrl.train.world_model import WorldModel

        folder = self.folder
        return self.memo("world_model", lambda: WorldModel.load(folder.require(folder.world_model, "model")))

    def behaviour_fn(self) -> Any:
        """The user's behaviour policy of a gymnasium run: ``collect.behaviour`` called with its kwargs."""
        c = self.cfg.collect
        assert c.behaviour is not None
        factory = load_callable(c.behaviour, "collect.behaviour")
        try:
            return factory(**c.behaviour_kwargs)
        except TypeError as exc:
            raise RunError(f"collect.behaviour_kwargs: {c.behaviour} rejects them ({exc})") from None

    def memo(self, key: str, build: Callable[[], Any]) -> Any:
        """``build()`` the first time ``key`` is asked for in this run, the same object after that."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    @property
    def dataset(self) -> Dataset:
        """The run's dataset, read from the folder once."""
        return self.memo("dataset", lambda: discrete_only(self.folder.load_dataset(), self.folder.dataset))

    def use_dataset(self, ds: Dataset) -> None:
        """Remember a dataset just written, so later stages do not read it back."""
        self._cache["dataset"] = discrete_only(ds, self.folder.dataset)
        for key in ("support", "logged_episode_sums"):
            self._cache.pop(key, None)

    @property
    def support(self) -> Support:
        """Logged action counts per state of the run's dataset (the audit's state index), counted once."""
        return self.memo("support", lambda: Support.from_dataset(self.dataset, self.cfg.audit))

    @property
    def grid_size(self) -> int | None:
        """The grid side for the one-hot cell encoder, or None for raw observations (``train.encoder``)."""
        return None if self.cfg.train.encoder == "mlp" or not self.is_safegrid else self.tables.layout.size

    @property
    def state_table(self) -> np.ndarray | None:
        """The distinct logged observations the network learners embed (``train.encoder: index``, or ``auto``
        off SafeGrid where the audit indexes the observations exactly); None for the grid or the MLP encoder."""
        encoder = self.cfg.train.encoder
        if encoder in ("mlp", "grid") or (encoder == "auto" and self.is_safegrid):
            return None
        table = self.support.index.exact
        if table is None and encoder == "index":
            raise RunError(
                f"train.encoder: index needs observations the audit indexes exactly (at most "
                f"audit.max_exact_states = {self.cfg.audit.max_exact_states} distinct ones); use auto or mlp"
            )
        return table

    def obs_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Input scaling bounds: SafeGrid's grid, or the logged range of each feature."""
        if self.is_safegrid:
            return np.zeros(2), np.full(2, float(self.tables.layout.size - 1))
        return self.dataset.observation_range()


def discrete_only(ds: Dataset, where: Path | str) -> Dataset:
    """``ds``, if a run's stages can use it: they handle discrete actions only so far."""
    if ds.is_continuous:
        raise RunError(
            f"{where}: the logs have continuous actions ({ds.action_dim} dimensions); this run's stages handle "
            "discrete actions. Runs with continuous actions exist for SafeNav and MuJoCo tasks (env: safenav, "
            "configs/safenav.yaml; env: {mujoco: hopper}, configs/hopper-medium.yaml); other continuous logs can "
            "be imported, exported and inspected"
        )
    return ds
