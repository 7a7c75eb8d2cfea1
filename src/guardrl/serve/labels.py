"""People's labels for DAgger, read back from a server's audit log: each labelled decision's observation (from
the deferred or shadowed decision it answers) and the person's action. Only labels posted with a labeller token
count, and the log's hash chain must verify."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from guardrl.serve.audit_log import read_records
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
    tokens: list[str]
    """The id of the labeller token each label was posted with."""
    ignored: int = 0
    """Labels in the log that were not posted with a labeller token (an unauthenticated server's), left out."""


def read_labels(audit_log: Path, obs_dim: int, n_actions: int) -> Labels:
    """Every label posted with a labeller token in ``audit_log``, whose hash chain must verify (a last line cut
    short by a crash was never acknowledged and is skipped). A label whose decision is missing, or whose
    observation or action does not fit the run, is an error naming the line."""
    path = Path(audit_log)
    if not path.is_file():
        raise ServeError(f"{path}: no audit log; serve the policy and post labels first", 400)
    states: dict[int, tuple[list[float], str]] = {}
    labels: dict[int, tuple[int, int, str]] = {}
    ignored = 0
    for line in read_records(path):
        rec = line.record
        source = _label_source(rec)
        if source is not None:
            states[int(rec["id"])] = (rec["observation"], source)
        elif rec.get("type") == "label":
            if rec.get("role") != "labeller":
                ignored += 1
                continue
            labels[int(rec["id"])] = (int(rec["action"]), line.number, str(rec.get("token")))
    obs, actions, ids, kinds, tokens = [], [], [], [], []
    for decision_id, (action, number, token) in sorted(labels.items()):
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
        tokens.append(token)
    return Labels(
        np.asarray(obs, dtype=np.float32).reshape(-1, obs_dim), np.asarray(actions, dtype=np.int64), ids, kinds,
        tokens, ignored,
    )  # fmt: skip
