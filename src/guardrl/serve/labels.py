"""People's labels for DAgger, read back from a server's audit log: each labelled decision's observation (from
the deferred or shadowed decision it answers) and the person's action."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from guardrl.serve.served_run import ServeError


def _label_source(rec: dict[str, Any]) -> str | None:
    """``defer`` or ``shadow`` for an audit record whose state waits for a person's label, else None."""
    kind = rec.get("type")
    if kind == "shadow":
        return "shadow"
    return "defer" if kind == "act" and rec.get("decision") == "defer" else None


@dataclass(frozen=True)
class Labels:
    """People's labels from a server's audit log: the observation of each labelled decision and the action."""

    observations: np.ndarray
    actions: np.ndarray
    decision_ids: list[int]
    kinds: list[str]
    """``defer`` or ``shadow``: where each labelled state came from."""


def read_labels(audit_log: Path, obs_dim: int, n_actions: int) -> Labels:
    """Every labelled decision in ``audit_log`` (read only; a last line cut short by a crash was never
    acknowledged and is skipped). A label whose decision is missing, or whose observation or action does not fit
    the run, is an error naming the line."""
    path = Path(audit_log)
    if not path.is_file():
        raise ServeError(f"{path}: no audit log; serve the policy and post labels first", 400)
    lines = path.read_bytes().split(b"\n")
    states: dict[int, tuple[list[float], str]] = {}
    labels: dict[int, tuple[int, int]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            if number == len(lines):  # the torn last line of a crash
                continue
            raise ServeError(f"{path}: line {number} is not JSON; refusing to guess", 400) from None
        if not isinstance(rec, dict):
            continue
        source = _label_source(rec)
        if source is not None:
            states[int(rec["id"])] = (rec["observation"], source)
        elif rec.get("type") == "label":
            labels[int(rec["id"])] = (int(rec["action"]), number)
    obs, actions, ids, kinds = [], [], [], []
    for decision_id, (action, number) in sorted(labels.items()):
        where = f"{path}: line {number} (decision {decision_id})"
        if decision_id not in states:
            raise ServeError(f"{where}: labels a decision that was neither deferred nor shadowed", 400)
        observation, kind = states[decision_id]
        if len(observation) != obs_dim or not 0 <= action < n_actions:
            raise ServeError(f"{where}: observation of width {len(observation)} or action {action} does not fit "
                             f"this run ({obs_dim} numbers, {n_actions} actions)", 400)  # fmt: skip
        obs.append(observation)
        actions.append(action)
        ids.append(decision_id)
        kinds.append(kind)
    return Labels(
        np.asarray(obs, dtype=np.float32).reshape(-1, obs_dim), np.asarray(actions, dtype=np.int64), ids, kinds
    )
