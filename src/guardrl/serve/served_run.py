"""What serving loads from a run folder, exported artifacts only (no pickle): the config, the dataset's identity
and support, the gate verdicts, and each policy's action scores behind its guard; and the service's error type."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardrl.config import RunConfig, load_config
from guardrl.data import load_dataset
from guardrl.data.audit import Support
from guardrl.data.continuous_support import ContinuousSupport
from guardrl.errors import GuardrlError
from guardrl.run.folder import RunFolder
from guardrl.serve.continuous import Box, ContinuousGuard
from guardrl.serve.guard import Guard
from guardrl.train import ScoresModel


class ServeError(GuardrlError, ValueError):
    """A request or a setup the service refuses; ``status`` is the HTTP status it maps to."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


def _echo(value: Any, limit: int = 40) -> str:
    """A client's value for an error message, cut short: a message must not echo a huge input."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _integer(value: Any, name: str) -> None:
    """A JSON integer (not a boolean) in field ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ServeError(f"{name}: expected an integer")


@dataclass
class LoadedPolicy:
    name: str
    guard: Guard | ContinuousGuard
    card: dict[str, Any]
    gate: dict[str, Any] | None


@dataclass
class ServedRun:
    """What serving reads from a run folder: its config, the dataset's identity and support, gate verdicts."""

    run_dir: Path
    cfg: RunConfig
    dataset_sha256: str
    obs_dim: int
    n_actions: int
    support: Support | ContinuousSupport
    gate: dict[str, Any]
    action_bounds: Box | None = None
    """The action box of a run with continuous actions; None for discrete ones."""

    @classmethod
    def open(cls, run_dir: Path, cfg: RunConfig | None = None) -> ServedRun:
        run_dir = Path(run_dir)
        folder = RunFolder(run_dir)
        if not folder.is_run():
            raise ServeError(f"{folder.config}: missing; is {run_dir} a guardrl run folder?", 400)
        cfg = cfg or load_config(folder.config)
        ds = load_dataset(folder.dataset)
        gate = (folder.read_optional(folder.gate) or {}).get("decisions", {})
        if ds.is_continuous:
            continuous = ContinuousSupport(ds)
            return cls(run_dir, cfg, ds.content_hash(), ds.obs_dim, 0, continuous, gate, ds.action_bounds)
        support = Support.from_dataset(ds, cfg.audit)
        return cls(run_dir, cfg, ds.content_hash(), ds.obs_dim, ds.n_actions, support, gate)

    def load_policy(self, name: str) -> LoadedPolicy:
        """An exported policy's action scores behind the guard, with its model card and gate verdict."""
        card_path = RunFolder(self.run_dir).card(name)
        if not card_path.is_file():
            raise ServeError(f"{card_path}: no exported policy {name!r} in this run", 404)
        card = json.loads(card_path.read_text())
        scores = card.get("scores")
        if not scores:
            raise ServeError(f"{card_path}: no action-score export; retrain with this guardrl version", 400)
        if card.get("dataset_sha256") != self.dataset_sha256:
            raise ServeError(f"{card_path}: the model card's dataset hash does not match {self.run_dir}/dataset", 400)
        if (scores["kind"] == "continuous") != (self.action_bounds is not None):
            raise ServeError(f"{card_path}: a {scores['kind']} policy does not fit this run's actions", 400)
        if self.action_bounds is not None:
            from guardrl.train.export import TorchScriptActor

            assert isinstance(self.support, ContinuousSupport)
            actor = TorchScriptActor(card_path.parent / scores["file"], self.action_bounds)
            return LoadedPolicy(name, ContinuousGuard(actor.act, self.support, self.action_bounds), card,
                                self.gate.get(name))  # fmt: skip
        assert isinstance(self.support, Support)
        model = ScoresModel(card_path.parent / scores["file"], scores["kind"])
        guard = Guard(model, scores["kind"], self.support, self.cfg.serve)
        return LoadedPolicy(name, guard, card, self.gate.get(name))
