"""The run folder: the one place where an artifact's file name is spelled.

Layout::

    config.yaml            the full RunConfig (every stage reads it from here)
    dataset/               transitions.parquet + metadata.json (guardrl dataset format)
    audit.json             dataset audit: coverage, distributions, sanity findings, verdict
    world_model/           the world model learned from the logs: weights.npz + model.json (with its accuracy)
    policies/<name>.pt     TorchScript greedy policy; .onnx the same as ONNX; .scores.pt its action scores
    policies/<name>.json   model card: learner config, dataset hash, versions, input/output
    training.json          learning curves, wall time and gradient steps/s per learner
    metrics.json           evaluation: per-policy rollouts with CIs, exact values, mismatch, support
    ope.json               off-policy estimates of return and cost, the truth, and their validation
    gate.json              PASS / CAUTION / FAIL per candidate with reasons
    portfolio.json         the candidates trained, and those skipped with the reason
    recommendation.json    the recommended policy, or none with the reason
    report.html            everything above in one self-contained page, ending with the deployment memo
    memo.md                the deployment memo alone (what, evidence, verdict, risks, rollout plan)
    plots/<name>.png       visitation, rewards, returns, safety, learning curves, OPE vs truth
    serve/audit.jsonl      the policy server's decision log (a hash chain)
    serve/keys.json        the policy server's role tokens (mode 0600)
    rollout_sim/<policy>.json|.md   a staged-rollout replay
    dagger/<policy>.json   how a DAgger policy was trained: expert, label budget, rounds (exact values on SafeGrid)
    gail/<policy>.json     how a GAIL policy was trained: demonstrations, config, history (exact values)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardrl.errors import RunError

if TYPE_CHECKING:
    from guardrl.config import RunConfig
    from guardrl.data.dataset import Dataset


@dataclass(frozen=True)
class RunFolder:
    """Paths of one run's artifacts, and readers that say which command makes a missing one."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def dataset(self) -> Path:
        return self.root / "dataset"

    @property
    def audit(self) -> Path:
        return self.root / "audit.json"

    @property
    def world_model(self) -> Path:
        return self.root / "world_model"

    @property
    def policies(self) -> Path:
        return self.root / "policies"

    def policy(self, name: str) -> Path:
        """The TorchScript greedy policy ``name``."""
        return self.policies / f"{name}.pt"

    def card(self, name: str) -> Path:
        """The model card of policy ``name``."""
        return self.policies / f"{name}.json"

    @property
    def training(self) -> Path:
        return self.root / "training.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def ope(self) -> Path:
        return self.root / "ope.json"

    @property
    def gate(self) -> Path:
        return self.root / "gate.json"

    @property
    def portfolio(self) -> Path:
        return self.root / "portfolio.json"

    @property
    def recommendation(self) -> Path:
        return self.root / "recommendation.json"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def memo(self) -> Path:
        return self.root / "memo.md"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    def plot(self, name: str) -> Path:
        return self.plots / f"{name}.png"

    @property
    def serve_log(self) -> Path:
        return self.root / "serve" / "audit.jsonl"

    @property
    def serve_keys(self) -> Path:
        return self.root / "serve" / "keys.json"

    @property
    def rollout_sims(self) -> Path:
        return self.root / "rollout_sim"

    def rollout_sim(self, policy: str, suffix: str) -> Path:
        return self.rollout_sims / f"{policy}{suffix}"

    def dagger(self, policy: str) -> Path:
        return self.root / "dagger" / f"{policy}.json"

    def gail(self, policy: str) -> Path:
        return self.root / "gail" / f"{policy}.json"

    def imitation_policies(self) -> list[str]:
        """Policies ``guardrl dagger`` and ``guardrl gail`` exported into the run (a record and a model card each),
        sorted by name: evaluation, OPE and the gate judge them beside the run's learners."""
        names = {p.stem for kind in ("dagger", "gail") for p in (self.root / kind).glob("*.json")}
        return sorted(n for n in names if self.card(n).is_file())

    def is_run(self) -> bool:
        return self.config.is_file()

    # ------------------------------------------------------------ readers

    def require(self, path: Path, command: str) -> Path:
        """``path`` if it exists, else a RunError naming the command that writes it."""
        if not path.exists():
            raise RunError(f"{path}: missing; run `guardrl {command} {self.root}` first")
        return path

    def read_config(self) -> RunConfig:
        from guardrl.config import load_config

        if not self.config.is_file():
            raise RunError(f"{self.config}: missing; run `guardrl collect` (or `guardrl run`) first")
        return load_config(self.config)

    def load_dataset(self) -> Dataset:
        from guardrl.data.dataset import load_dataset

        return load_dataset(self.require(self.dataset, "collect"))

    def read_json(self, path: Path, command: str) -> Any:
        """A JSON artifact, or a RunError naming the command that writes it."""
        return json.loads(self.require(path, command).read_text(encoding="utf-8"))

    def read_optional(self, path: Path) -> Any:
        """A JSON artifact, or None when the stage that writes it has not run."""
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
