"""The policy service: exported policies behind guardrails, with shadow mode, canary routing, rollback and an
append-only audit log. HTTP lives in :mod:`guardrl.serve.app`; this module holds the state and the rules.

Only exported artifacts are loaded: the TorchScript action-score graph (``policies/<name>.scores.pt``; for
continuous actions the TorchScript actor ``<name>.pt``), the model card (``<name>.json``), the gate verdict
(``gate.json``) and the logged dataset (Parquet) for the support checks. No pickle is ever read. A run with
continuous actions (``env: safenav``) is served behind :class:`~guardrl.serve.continuous.ContinuousGuard`:
actions are lists of numbers inside the logged box, in answers and in requests alike.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from guardrl.config import RunConfig, to_dict
from guardrl.run.folder import RunFolder
from guardrl.serve.audit_log import GENESIS, ChainBroken, seal, verify
from guardrl.serve.auth import NOBODY, SERVER, Caller
from guardrl.serve.continuous import ContinuousGuard, check_action
from guardrl.serve.guard import MODES, Decisions, RollbackMonitor, ServeConfig
from guardrl.serve.labels import _label_source
from guardrl.serve.served_run import LoadedPolicy, ServedRun, ServeError, _echo, _integer


def _splitmix(seed: int, n: int) -> float:
    """A uniform draw in [0, 1) determined by (seed, n): canary routing survives restarts unchanged."""
    z = (seed * 0x9E3779B97F4A7C15 + (n + 1) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return ((z ^ (z >> 31)) >> 11) / float(1 << 53)


@dataclass
class Counters:
    requests: dict[str, int] = field(default_factory=lambda: {"act": 0, "shadow": 0, "outcome": 0})
    decisions: dict[str, int] = field(default_factory=lambda: {"act": 0, "defer": 0, "fallback": 0})
    defer_reasons: dict[str, int] = field(default_factory=dict)
    shadow_divergences: int = 0
    shadow_would_defer: int = 0


class PolicyService:
    """Everything ``guardrl serve`` does, callable without HTTP."""

    def __init__(
        self,
        run_dir: Path,
        policies: list[str],
        mode: str = "canary",
        fallback: str | None = None,
        audit_log: Path | None = None,
        cfg: RunConfig | None = None,
        allow_gate_fail: bool = False,
        accept_log_from: int | None = None,
    ):
        self.run_dir = Path(run_dir)
        if mode not in MODES:
            raise ServeError(f"mode must be one of {', '.join(MODES)}, got {mode!r}", 400)
        if not policies:
            raise ServeError("name at least one policy to serve", 400)
        self.run = ServedRun.open(self.run_dir, cfg)
        self.cfg = self.run.cfg
        self.serve_cfg: ServeConfig = self.cfg.serve
        self.mode = mode
        self.obs_dim, self.n_actions = self.run.obs_dim, self.run.n_actions
        self.action_bounds = self.run.action_bounds
        self.policies = {name: self.run.load_policy(name) for name in policies}
        failed = [n for n, p in self.policies.items() if p.gate and p.gate["decision"] == "FAIL"]
        # a policy the gate has not judged (a DAgger or GAIL policy not yet evaluated, a run not gated) has no evidence
        # behind it, so it may not decide either: shadow mode, or the same explicit override
        unjudged = [n for n, p in self.policies.items() if not p.gate]
        if (failed or unjudged) and mode != "shadow" and not allow_gate_fail:
            gate = RunFolder(self.run_dir).gate
            why = [f"the gate FAILed {', '.join(failed)} ({gate})"] if failed else []
            if unjudged:
                why.append(f"the gate has no verdict for {', '.join(unjudged)} ({gate}; run `guardrl evaluate`, "
                           "`guardrl ope` and `guardrl gate` on the run to judge it)")  # fmt: skip
            raise ServeError(
                f"{'; '.join(why)}; serve in shadow mode, or pass --allow-gate-fail to let it decide anyway", 400
            )
        self.default_policy = policies[0]
        self.fallback = self.run.load_policy(fallback) if fallback else None
        self.monitor = RollbackMonitor(self.serve_cfg.rollback_per_1000, self.serve_cfg.rollback_min_decisions)
        self.counters = Counters()
        self._policy_acts: set[int] = set()  # decision ids where the policy was in control
        self._outcomes: set[int] = set()  # decision ids with a reported outcome: one each
        self._to_label: dict[int, dict[str, Any]] = {}  # deferred and shadow decisions: the DAgger label queue
        self._labels: dict[int, Any] = {}  # decision id -> the person's action (an index, or a list of numbers)
        self._next_id = 0
        self._lock = threading.Lock()
        self.audit_path = Path(audit_log) if audit_log else RunFolder(self.run_dir).serve_log
        self.audit_path.parent.mkdir(parents=True, exist_ok=True)
        self._chain = GENESIS
        self.set_aside: Path | None = None  # where --accept-log-from moved the lines it did not accept
        self._replay(accept_log_from)
        self._log: IO[str] = self.audit_path.open("a", encoding="utf-8", buffering=1)
        self._write({"type": "start", "mode": mode, "policies": policies, "fallback": fallback}, SERVER)

    # ------------------------------------------------------------ audit log

    def _write(self, record: dict[str, Any], caller: Caller) -> None:
        """Append ``record``, with who asked for it and the time, sealed into the hash chain."""
        record.update(caller.record(), ts=time.time())
        line, self._chain = seal(record, self._chain)
        self._log.write(line + "\n")

    def _replay(self, accept_from: int | None) -> None:
        """Rebuild counters, the rollback state and the decision ids from an existing audit log, verifying its
        hash chain (:mod:`guardrl.serve.audit_log`).

        A last line cut short by a crash (no newline, not a whole sealed record) was never acknowledged: it is cut
        off the file, so that the next record starts on a line of its own. Any other line that fails stops the
        start, naming it, unless ``accept_from`` is that line's number: then the lines before it are kept and the
        rest is moved to a ``.rejected`` file beside the log.
        """
        if not self.audit_path.is_file():
            return
        data = self.audit_path.read_bytes()
        lines = data.split(b"\n")
        complete, tail = lines[:-1], lines[-1]  # tail: what follows the last newline (b"" if the file is whole)
        offset = 0
        for number, line in enumerate(complete, start=1):
            try:
                checked = verify(self.audit_path, number, line, self._chain)
                self._apply_checked(number, checked.record)
            except ChainBroken as exc:
                if accept_from != number:
                    hint = (f"; to keep lines 1-{number - 1} and set the rest aside, start with "
                            f"--accept-log-from {number}") if accept_from is None else ""  # fmt: skip
                    mismatch = f" (--accept-log-from {accept_from} names another line)" if accept_from else ""
                    raise ServeError(f"{exc}{mismatch}{hint}", 400) from None
                self._set_aside(data, offset)
                return
            self._chain = checked.chain
            offset += checked.size
        if accept_from is not None:
            raise ServeError(f"{self.audit_path}: --accept-log-from {accept_from}: the whole log verifies; "
                             "start without it", 400)  # fmt: skip
        if tail:
            try:
                checked = verify(self.audit_path, len(complete) + 1, tail, self._chain)
                self._apply_checked(len(complete) + 1, checked.record)
                self._chain = checked.chain
                whole = True
            except ServeError:
                whole = False
            with self.audit_path.open("r+b") as f:
                if whole:  # a whole record, only its newline lost: end the line
                    f.seek(0, 2)
                    f.write(b"\n")
                else:  # a torn record: cut it off
                    f.truncate(offset)
                f.flush()
                os.fsync(f.fileno())

    def _set_aside(self, data: bytes, offset: int) -> None:
        """Keep the log's first ``offset`` bytes (the verified prefix); move the rest to a ``.rejected`` file."""
        self.set_aside = self.audit_path.with_name(f"{self.audit_path.name}.rejected-{int(time.time())}")
        self.set_aside.write_bytes(data[offset:])
        with self.audit_path.open("r+b") as f:
            f.truncate(offset)
            f.flush()
            os.fsync(f.fileno())

    def _apply_checked(self, number: int, rec: dict[str, Any]) -> None:
        try:
            self._apply(rec)
        except (KeyError, TypeError, ValueError) as exc:
            raise ChainBroken(self.audit_path, number, f"is not a guardrl audit record ({exc.__class__.__name__}: "
                              f"{exc})") from None  # fmt: skip

    def _apply(self, rec: dict[str, Any]) -> None:
        kind = rec.get("type")
        if "id" in rec and kind in ("act", "shadow"):
            self._next_id = max(self._next_id, int(rec["id"]) + 1)
        source = _label_source(rec)
        if source is not None:
            self._to_label[int(rec["id"])] = {
                "decision_id": int(rec["id"]), "kind": source,
                "observation": rec["observation"], "policy": rec["policy"], "reasons": rec.get("reasons", []),
            }  # fmt: skip
        if kind == "act":
            self.counters.requests["act"] += 1
            self.counters.decisions[rec["decision"]] += 1
            for reason in rec.get("reasons", []):
                self.counters.defer_reasons[reason] = self.counters.defer_reasons.get(reason, 0) + 1
            if rec["decision"] == "act" and rec["source"] == "policy":
                self._policy_acts.add(int(rec["id"]))
                self.monitor.record(decisions=1)
        elif kind == "shadow":
            self.counters.requests["shadow"] += 1
            self.counters.shadow_divergences += int(rec["diverged"])
            self.counters.shadow_would_defer += int(rec["decision"] == "defer")
        elif kind == "outcome":
            self.counters.requests["outcome"] += 1
            self._outcomes.add(int(rec["id"]))
            if rec.get("counted") and rec.get("hazard"):
                self.monitor.record(hazards=1)
        elif kind == "rollback":
            self.monitor.rolled_back, self.monitor.reason = True, rec["reason"]
        elif kind == "label":
            action = rec["action"]
            self._labels[int(rec["id"])] = [float(v) for v in action] if isinstance(action, list) else int(action)

    def close(self) -> None:
        self._log.close()

    # ------------------------------------------------------------ requests

    def _observation(self, observation: Any) -> np.ndarray:
        if not isinstance(observation, (list, tuple)):
            raise ServeError("observation: expected a list of numbers")
        if len(observation) != self.obs_dim:
            raise ServeError(f"observation: expected {self.obs_dim} numbers, got {len(observation)}")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in observation):
            raise ServeError("observation: every entry must be a number")
        try:
            values = [float(v) for v in observation]
        except OverflowError:
            raise ServeError("observation: an integer entry is too large for a number") from None
        with np.errstate(over="ignore"):
            obs = np.asarray([values], dtype=np.float32)  # NaN and inf stay; beyond float32 becomes inf
        if not np.isfinite(obs).all():
            raise ServeError("observation: NaN or infinite values (or beyond the float32 range) are not allowed")
        return obs

    def _action(self, value: Any, name: str) -> Any:
        """An action a client sent (field ``name``): an integer inside the action space, or for continuous
        actions a list of numbers inside the box; returns it."""
        if self.action_bounds is not None:
            return check_action(value, name, self.action_bounds, ServeError)
        _integer(value, name)
        if not 0 <= value < self.n_actions:
            raise ServeError(f"{name}: {_echo(value)} is outside [0, {self.n_actions})")
        return value

    def _plain(self, action: Any) -> Any:
        """A policy's action as JSON: an index, or a list of numbers."""
        if self.action_bounds is not None:
            return [float(v) for v in np.asarray(action).reshape(-1)]
        return int(action)

    def _policy(self, name: str | None) -> LoadedPolicy:
        """``None`` is the default policy; a name must be one of the served ones."""
        if name is None:
            return self.policies[self.default_policy]
        if not isinstance(name, str) or name not in self.policies:
            raise ServeError(f"unknown policy {_echo(name)}; serving: {', '.join(self.policies)}", 404)
        return self.policies[name]

    def _fallback_action(self, obs: np.ndarray) -> Any:
        return None if self.fallback is None else self._plain(self.fallback.guard.greedy(obs)[0])

    def act(self, observation: Any, policy: str | None = None, caller: Caller = NOBODY) -> dict[str, Any]:
        """Route one decision: to the policy (canary draw, full mode) behind its guard, or to the fallback."""
        pol = self._policy(policy)
        obs = self._observation(observation)
        with self._lock:
            decision_id = self._next_id
            self._next_id += 1
            routed = not self.monitor.rolled_back and (
                self.mode == "full"
                or (
                    self.mode == "canary"
                    and _splitmix(self.serve_cfg.seed, decision_id) < self.serve_cfg.canary_fraction
                )
            )
            reasons: list[str] = []
            if routed:
                d: Decisions = pol.guard.decide(obs)
                reasons = d.reason_names(0)
                decision = "defer" if d.defer[0] else "act"
                action = None if d.defer[0] else self._plain(d.actions[0])
                source = "policy" if decision == "act" else "none"
            else:
                decision, source = "fallback", "fallback" if self.fallback else "none"
                action = self._fallback_action(obs)
                reasons = ["rolled_back"] if self.monitor.rolled_back else [f"{self.mode}_mode_routing"]
            rec = {"type": "act", "id": decision_id, "policy": pol.name, "mode": self.mode, "decision": decision,
                   "source": source, "action": action, "reasons": reasons if decision == "defer" else [],
                   "observation": observation}  # fmt: skip
            self._write(rec, caller)
            self._apply(rec)
        out = {"decision_id": decision_id, "policy": pol.name, "decision": decision, "action": action,
               "source": source, "reasons": reasons, "mode": self.current_mode}  # fmt: skip
        if decision == "defer" and self.fallback is not None:
            out["fallback_action"] = self._fallback_action(obs)
        return out

    def shadow(
        self, observation: Any, production_action: Any, policy: str | None = None, caller: Caller = NOBODY
    ) -> dict[str, Any]:
        """What the policy would have done next to the production controller's action; records divergence."""
        pol = self._policy(policy)
        obs = self._observation(observation)
        production_action = self._action(production_action, "production_action")
        d = pol.guard.decide(obs)
        action = self._plain(d.actions[0])
        if isinstance(pol.guard, ContinuousGuard):
            diverged = pol.guard.diverged(np.asarray(action), np.asarray(production_action))
        else:
            diverged = action != production_action
        with self._lock:
            decision_id = self._next_id
            self._next_id += 1
            rec = {"type": "shadow", "id": decision_id, "policy": pol.name, "policy_action": action,
                   "production_action": production_action, "diverged": diverged,
                   "decision": "defer" if d.defer[0] else "act", "reasons": d.reason_names(0),
                   "observation": observation}  # fmt: skip
            self._write(rec, caller)
            self._apply(rec)
        return {k: rec[k] for k in ("policy", "policy_action", "production_action", "diverged", "decision",
                                    "reasons")} | {"decision_id": decision_id}  # fmt: skip

    def outcome(self, decision_id: Any, hazard: Any, caller: Caller = NOBODY) -> dict[str, Any]:
        """A reported outcome; a hazard after a policy decision counts against the rollback threshold."""
        _integer(decision_id, "decision_id")
        if not isinstance(hazard, bool):
            raise ServeError("hazard: expected true or false")
        with self._lock:
            if not 0 <= decision_id < self._next_id:
                raise ServeError(f"decision_id {_echo(decision_id)}: no such decision", 404)
            if decision_id in self._outcomes:  # a retried report must not count twice towards a rollback
                raise ServeError(f"decision_id {decision_id}: its outcome was already reported", 409)
            counted = decision_id in self._policy_acts
            was = self.monitor.rolled_back
            rec = {"type": "outcome", "id": decision_id, "hazard": hazard, "counted": counted}
            self._write(rec, caller)
            self._apply(rec)
            tripped = self.monitor.rolled_back and not was
            if tripped:
                self._write({"type": "rollback", "reason": self.monitor.reason}, SERVER)
        return {"decision_id": decision_id, "counted": counted, "rolled_back": self.monitor.rolled_back,
                "tripped_now": tripped}  # fmt: skip

    # ------------------------------------------------------------ labels (DAgger)

    def pending_labels(self, limit: Any = 100) -> dict[str, Any]:
        """The oldest deferred or shadowed decisions no person has labelled yet (at most ``limit``)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise ServeError(f"limit: expected an integer in [1, 10000], got {_echo(limit)}")
        with self._lock:
            pending = [v for k, v in self._to_label.items() if k not in self._labels]
        return {"pending": len(pending), "labelled": len(self._labels), "decisions": pending[:limit]}

    def label(self, decision_id: Any, action: Any, labeller: Any = None, caller: Caller = NOBODY) -> dict[str, Any]:
        """A person's action for a deferred or shadowed decision. Acknowledged only once it is on disk (written,
        flushed and fsynced), so a crash after the answer loses no label; one label per decision."""
        _integer(decision_id, "decision_id")
        action = self._action(action, "action")
        if labeller is not None and (not isinstance(labeller, str) or not 0 < len(labeller) <= 200):
            raise ServeError("labeller: expected a name of 1 to 200 characters")
        with self._lock:
            if decision_id not in self._to_label:
                known = 0 <= decision_id < self._next_id
                why = "was neither deferred nor shadowed: nothing to label" if known else "no such decision"
                raise ServeError(f"decision_id {_echo(decision_id)}: {why}", 409 if known else 404)
            if decision_id in self._labels:
                raise ServeError(
                    f"decision_id {decision_id}: already labelled (action {self._labels[decision_id]})", 409
                )
            rec = {"type": "label", "id": decision_id, "action": action, "labeller": labeller}
            self._write(rec, caller)
            self._log.flush()
            os.fsync(self._log.fileno())
            self._apply(rec)
        return {"decision_id": decision_id, "action": action, "stored": True}

    @property
    def current_mode(self) -> str:
        return "rolled_back" if self.monitor.rolled_back else self.mode

    def status(self) -> dict[str, Any]:
        c = self.counters
        shadow = c.requests["shadow"]
        return {
            "mode": self.current_mode,
            "configured_mode": self.mode,
            "rolled_back": self.monitor.rolled_back,
            "rollback_reason": self.monitor.reason,
            "rollback": self.monitor.to_dict(),
            "policies": {
                name: {
                    "gate": p.gate["decision"] if p.gate else None,
                    "scores": p.card["scores"]["kind"],
                    "dataset_sha256": p.card["dataset_sha256"],
                }
                for name, p in self.policies.items()
            },  # fmt: skip
            "fallback": self.fallback.name if self.fallback else None,
            "requests": dict(c.requests),
            "decisions": dict(c.decisions),
            "defer_reasons": dict(c.defer_reasons),
            "shadow": {
                "requests": shadow,
                "divergences": c.shadow_divergences,
                "divergence_rate": c.shadow_divergences / shadow if shadow else None,
                "would_defer": c.shadow_would_defer,
            },
            "labels": {"pending": len(set(self._to_label) - set(self._labels)), "labelled": len(self._labels)},
            "serve_config": to_dict(self.serve_cfg),
            "audit_log": str(self.audit_path),
        }

    def model_card(self, name: str) -> dict[str, Any]:
        """The model card and gate verdict of a served policy or of the fallback."""
        if self.fallback is not None and name == self.fallback.name and name not in self.policies:
            pol = self.fallback
        else:
            pol = self._policy(name)
        return {**pol.card, "gate": pol.gate, "role": "fallback" if pol is self.fallback else "served"}
