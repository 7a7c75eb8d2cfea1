"""The server's audit log as a hash chain: every record seals the one before it.

Each line is a JSON object whose last field is ``"chain"``: the SHA-256 of the previous line's chain (64 zeros
before the first line) followed by the line's own bytes up to that field. Editing, inserting or removing a line
breaks the chain from there on, and a restart names the first line that does not verify. (Cutting records off
the end of the log leaves a valid, shorter chain; the log cannot detect that alone.)

A line is written by :func:`seal` and checked by :func:`read_records`, which the server's replay and
``guardrl dagger --from-labels`` both use.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardrl.serve.served_run import ServeError

GENESIS = "0" * 64
_SEAL = re.compile(rb',"chain":"([0-9a-f]{64})"\}$')


class ChainBroken(ServeError):
    """A log line that is not JSON, not a record, or does not verify against the chain; ``line`` is its number."""

    def __init__(self, path: Path, line: int, why: str):
        super().__init__(f"{path}: line {line} {why}", 400)
        self.line = line


def _digest(prev: str, body: bytes) -> str:
    return hashlib.sha256(prev.encode() + body).hexdigest()


def seal(record: dict[str, Any], prev: str) -> tuple[str, str]:
    """The log line for ``record`` after the line whose chain is ``prev``, and the line's own chain."""
    body = json.dumps(record, separators=(",", ":")).encode()
    chain = _digest(prev, body[:-1])
    return body[:-1].decode() + f',"chain":"{chain}"}}', chain


@dataclass(frozen=True)
class Line:
    """One verified record: its line number, its fields (without the chain), its byte length and its chain."""

    number: int
    record: dict[str, Any]
    size: int
    chain: str


def verify(path: Path, number: int, line: bytes, prev: str) -> Line:
    """Line ``number`` checked against the chain so far (``prev``), or :class:`ChainBroken`."""
    try:
        rec = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError):
        raise ChainBroken(path, number, "is not JSON; refusing to guess") from None
    if not isinstance(rec, dict):
        raise ChainBroken(path, number, "is JSON but not a record (an object); refusing to guess")
    match = _SEAL.search(line.rstrip(b"\r"))
    if match is None:
        raise ChainBroken(path, number, "carries no hash chain: it was not written by this server")
    body = line[: match.start()]
    if _digest(prev, body) != match.group(1).decode():
        raise ChainBroken(
            path, number, "does not verify against the hash chain: a record was edited, inserted or removed there"
        )
    del rec["chain"]
    return Line(number, rec, len(line) + 1, match.group(1).decode())


def read_records(path: Path, data: bytes | None = None) -> Iterator[Line]:
    """Every complete line of the log at ``path``, verified in order. A last line without its newline was never
    acknowledged (a crash cut it) and is skipped; the first line that fails raises :class:`ChainBroken`."""
    data = Path(path).read_bytes() if data is None else data
    lines = data.split(b"\n")
    prev = GENESIS
    for number, line in enumerate(lines[:-1], start=1):
        if not line.strip():
            raise ChainBroken(path, number, "is empty: the log was edited")
        checked = verify(path, number, line, prev)
        prev = checked.chain
        yield checked
