"""Who may call the policy server: one bearer token per role, checked in constant time, and a per-token rate limit.

Three roles, each with its own endpoints:

* ``client``: ``POST /act``, ``POST /shadow`` (the system that asks for decisions);
* ``operator``: ``POST /outcome``, ``GET /status``, ``GET /policies/{name}`` (who reports outcomes and watches);
* ``labeller``: ``GET /labels/pending``, ``POST /labels`` (the people whose labels DAgger trains on).

``GET /healthz`` needs no token. The tokens come from the environment (``GUARDRL_CLIENT_TOKEN``,
``GUARDRL_OPERATOR_TOKEN``, ``GUARDRL_LABELLER_TOKEN``: all three or none) or from a key file, JSON
``{"client": ..., "operator": ..., "labeller": ...}``, created with mode 0600 on the first start and reused after
(delete it to rotate the tokens). A token never appears in a log or a message: records carry its id, the first 12
hex digits of its SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from guardrl.serve.served_run import ServeError

ROLES = ("client", "operator", "labeller")
ENV_VARS = {role: f"GUARDRL_{role.upper()}_TOKEN" for role in ROLES}
ANONYMOUS = "anonymous"
"""The role recorded for every request when authentication is off (``--no-auth``)."""


def token_id(token: str) -> str:
    """A token's public name: the first 12 hex digits of its SHA-256 (the token itself is never logged)."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Caller:
    """Who made a request: a role and the id of the token it presented (``None`` without authentication)."""

    role: str
    token: str | None = None

    def record(self) -> dict[str, str | None]:
        """The fields every audit-log record carries."""
        return {"role": self.role, "token": self.token}


NOBODY = Caller(ANONYMOUS)
"""Every caller when authentication is off."""
SERVER = Caller("server")
"""The server itself: its start and rollback records."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` binds only this machine (``127.0.0.0/8``, ``::1`` or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _valid(tokens: object, where: str) -> dict[str, str]:
    if not isinstance(tokens, dict) or set(tokens) != set(ROLES):
        raise ServeError(f"{where}: expected one token for each of {', '.join(ROLES)}", 400)
    for role, token in tokens.items():
        if not isinstance(token, str) or len(token) < 16:
            raise ServeError(f"{where}: the {role} token must be a string of at least 16 characters", 400)
    if len(set(tokens.values())) != len(ROLES):
        raise ServeError(f"{where}: every role needs its own token", 400)
    return dict(tokens)


def load_tokens(key_file: Path, environ: dict[str, str] | None = None) -> tuple[dict[str, str], str]:
    """The role tokens and where they came from: the environment when it sets them, else ``key_file``, created
    (mode 0600, one random token per role) when it does not exist."""
    env = os.environ if environ is None else environ
    given = {role: env[var] for role, var in ENV_VARS.items() if env.get(var)}
    if given:
        if len(given) != len(ROLES):
            missing = [ENV_VARS[r] for r in ROLES if r not in given]
            raise ServeError(f"tokens from the environment: set all three, missing {', '.join(missing)}", 400)
        return _valid(given, "the environment"), "the environment (" + ", ".join(ENV_VARS.values()) + ")"
    key_file = Path(key_file)
    if key_file.exists():
        if key_file.stat().st_mode & 0o077:
            raise ServeError(f"{key_file}: readable by others (mode {key_file.stat().st_mode & 0o777:o}); "
                             f"run `chmod 600 {key_file}` or delete it to make new tokens", 400)  # fmt: skip
        try:
            tokens = json.loads(key_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ServeError(f"{key_file}: not a key file ({exc}); delete it to make new tokens", 400) from None
        return _valid(tokens, str(key_file)), str(key_file)
    tokens = {role: secrets.token_urlsafe(32) for role in ROLES}
    key_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = key_file.with_name(f".{key_file.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never world-readable, not even briefly
    with os.fdopen(fd, "w") as f:
        json.dump(tokens, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, key_file)
    return tokens, str(key_file)


class Authenticator:
    """Checks ``Authorization: Bearer <token>`` against the role an endpoint needs.

    Every token is compared with :func:`hmac.compare_digest`, all of them on every request, so the time taken
    tells nothing about which token, or how much of one, matched."""

    def __init__(self, tokens: dict[str, str] | None):
        self.enabled = tokens is not None
        self._tokens = [(role, token.encode(), token_id(token)) for role, token in (tokens or {}).items()]

    def caller(self, header: str | None, needs: str) -> Caller:
        """The caller for a request whose ``Authorization`` header is ``header``, on an endpoint of role
        ``needs``; a 401 without a valid token, a 403 for a valid token of another role."""
        if not self.enabled:
            return NOBODY
        scheme, _, presented = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise ServeError("missing credentials: send `Authorization: Bearer <token>`", 401)
        given = presented.strip().encode()
        found = None
        for role, token, tid in self._tokens:
            if hmac.compare_digest(given, token):
                found = Caller(role, tid)
        if found is None:
            raise ServeError("invalid token", 401)
        if found.role != needs:
            raise ServeError(f"a {found.role} token may not call this endpoint; it needs the {needs} role", 403)
        return found


class RateLimiter:
    """At most ``per_minute`` requests per token in any 60 seconds (a sliding window); ``None``: no limit."""

    def __init__(self, per_minute: int | None, clock: object = time.monotonic):
        self.per_minute = per_minute
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, caller: Caller, what: str) -> None:
        """Count one request of ``caller``; a 429 past the limit."""
        if self.per_minute is None:
            return
        now = self._clock()  # type: ignore[operator]
        key = f"{caller.role}:{caller.token}"
        with self._lock:
            window = self._seen.setdefault(key, deque())
            while window and window[0] <= now - 60.0:
                window.popleft()
            if len(window) >= self.per_minute:
                raise ServeError(
                    f"{what}: more than {self.per_minute} requests per minute from this token "
                    "(serve.rate_limit_per_minute); retry later",
                    429,
                )
            window.append(now)
