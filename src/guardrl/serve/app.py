"""HTTP front of the policy service (FastAPI): ``guardrl serve RUN --policy cql``.

Endpoints (JSON in, JSON out):

* ``POST /act`` ``{"observation": [..], "policy": "cql"?}`` -> ``{"decision_id", "decision": act|defer|fallback,
  "action", "source", "reasons", "mode"}``. ``action`` is null when the caller's own controller (or a person)
  must decide: a deferral, or a fallback with no ``--fallback`` policy loaded.
* ``POST /shadow`` ``{"observation": [..], "production_action": 2}`` -> what the policy would have done, and
  whether it diverges from production.
* ``POST /outcome`` ``{"decision_id": 17, "hazard": true}`` -> counts a hazard after a policy decision against
  the rollback threshold; crossing it switches the server to the fallback. One outcome per decision: a second
  report for the same id is refused with 409 and changes nothing.
* ``GET /labels/pending?limit=100``: deferred and shadowed decisions that no person has labelled yet, oldest
  first, each with its observation: the states DAgger wants an expert to label.
* ``POST /labels`` ``{"decision_id": 17, "action": 2, "labeller": "dr-lee"?}`` -> stores a person's action for
  one of those decisions, durably (fsynced before the answer). An unknown id is a 404, a decision that was
  neither deferred nor shadowed or one already labelled a 409, an action outside the action space a 422.
  ``guardrl dagger RUN --from-labels`` trains on the stored labels.
* ``GET /status``: mode (``shadow``, ``canary``, ``full`` or ``rolled_back``), counters, rollback state.
* ``GET /policies/{name}``: the model card with the gate verdict (served policies and the fallback).
  ``GET /healthz``.

Every endpoint but ``/healthz`` needs a bearer token of its role (:mod:`guardrl.serve.auth`): ``client`` for
``/act`` and ``/shadow``, ``operator`` for ``/outcome``, ``/status`` and ``/policies``, ``labeller`` for
``/labels``; without one the answer is 401, with another role's 403. ``/outcome`` and ``/labels`` are limited per
token (429 past ``serve.rate_limit_per_minute``). Every record in the audit log names the caller's role and token
id.

Bodies are parsed and checked by the service itself, so every malformed request gets a 4xx naming the field,
and nothing a client sends can take the server down: a body must be ``application/json`` (else 415) of at most
``serve.max_body_bytes`` (else 413, refused from its Content-Length before it is read, or as soon as a chunked
body passes the limit); JSON nested too deeply or with numbers too long to parse is a 400. Error messages echo
at most 200 characters of what was sent, with characters that cannot travel as UTF-8 escaped.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from guardrl.serve.auth import Authenticator, Caller, RateLimiter
from guardrl.serve.service import PolicyService, ServeError

MAX_ECHO = 200


def safe_text(text: str, limit: int = MAX_ECHO) -> str:
    """``text`` cut to ``limit`` characters, with what UTF-8 cannot carry (lone surrogates) escaped."""
    clipped = text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"
    return clipped.encode("utf-8", "backslashreplace").decode("utf-8")


async def _body(request: Request, limit: int) -> dict[str, Any]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ServeError(f"Content-Type must be application/json, got {ctype or 'none'!r}", 415)
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise ServeError(f"body of {declared} bytes is over the limit of {limit} (serve.max_body_bytes)", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # a chunked body declares no length: stop reading at the limit
            raise ServeError(f"body is over the limit of {limit} bytes (serve.max_body_bytes)", 413)
        chunks.append(chunk)
    try:
        data = json.loads(b"".join(chunks))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ServeError(f"body is not valid JSON ({exc.__class__.__name__}: {exc})", 400) from None
    except RecursionError:
        raise ServeError("body is not usable JSON: nested too deeply", 400) from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise ServeError(f"body is not usable JSON ({exc})", 400) from None
    if not isinstance(data, dict):
        raise ServeError("body must be a JSON object")
    return data


def _fields(data: dict[str, Any], required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    missing = [k for k in required if k not in data]
    if missing:
        raise ServeError(f"missing field(s): {', '.join(missing)}")
    unknown = sorted(set(data) - set(required) - set(optional))
    if unknown:
        raise ServeError(f"unknown field(s): {', '.join(repr(k) for k in unknown)}")


def _policy_field(data: dict[str, Any]) -> str | None:
    """The requested policy: absent means the default; anything but a non-empty name is refused."""
    if "policy" not in data:
        return None
    name = data["policy"]
    if not isinstance(name, str) or not name:
        raise ServeError(f"policy: expected the name of a served policy, got {json.dumps(name)[:MAX_ECHO]}")
    return name


def create_app(service: PolicyService, *, auth: Authenticator) -> FastAPI:
    """The FastAPI application around ``service``; ``auth`` checks every request's token
    (``Authenticator(None)`` lets everyone in: only for a server on a loopback address)."""
    app = FastAPI(title="guardrl policy server", version="1")

    limit = service.serve_cfg.max_body_bytes
    limiter = RateLimiter(service.serve_cfg.rate_limit_per_minute)

    def caller(request: Request, role: str) -> Caller:
        return auth.caller(request.headers.get("authorization"), role)

    @app.exception_handler(ServeError)
    async def serve_error(request: Request, exc: ServeError) -> JSONResponse:
        headers = {"connection": "close"} if exc.status == 413 else None  # the rest of the body is never read
        if exc.status == 401:
            headers = {"www-authenticate": 'Bearer realm="guardrl"'}
        elif exc.status == 429:
            headers = {"retry-after": "60"}
        return JSONResponse({"detail": safe_text(str(exc))}, status_code=exc.status, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # never let a request kill the server
        detail = safe_text(f"internal error: {exc.__class__.__name__}: {exc}")
        return JSONResponse({"detail": detail}, status_code=500)

    @app.post("/act")
    async def act(request: Request) -> JSONResponse:
        who = caller(request, "client")
        data = await _body(request, limit)
        _fields(data, ("observation",), ("policy",))
        return JSONResponse(service.act(data["observation"], _policy_field(data), who))

    @app.post("/shadow")
    async def shadow(request: Request) -> JSONResponse:
        who = caller(request, "client")
        data = await _body(request, limit)
        _fields(data, ("observation", "production_action"), ("policy",))
        return JSONResponse(service.shadow(data["observation"], data["production_action"], _policy_field(data), who))

    @app.post("/outcome")
    async def outcome(request: Request) -> JSONResponse:
        who = caller(request, "operator")
        limiter.check(who, "outcome")
        data = await _body(request, limit)
        _fields(data, ("decision_id", "hazard"))
        return JSONResponse(service.outcome(data["decision_id"], data["hazard"], who))

    @app.get("/labels/pending")
    async def pending(request: Request) -> JSONResponse:
        caller(request, "labeller")
        raw = request.query_params.get("limit", "100")
        if not raw.isdigit() or len(raw) > 6:
            raise ServeError(f"limit: expected an integer in [1, 10000], got {safe_text(raw, 40)!r}")
        return JSONResponse(service.pending_labels(int(raw)))

    @app.post("/labels")
    async def labels(request: Request) -> JSONResponse:
        who = caller(request, "labeller")
        limiter.check(who, "labels")
        data = await _body(request, limit)
        _fields(data, ("decision_id", "action"), ("labeller",))
        return JSONResponse(service.label(data["decision_id"], data["action"], data.get("labeller"), who))

    @app.get("/status")
    async def status(request: Request) -> JSONResponse:
        caller(request, "operator")
        return JSONResponse(service.status())

    @app.get("/policies/{name}")
    async def card(request: Request, name: str) -> JSONResponse:
        caller(request, "operator")
        return JSONResponse(service.model_card(name))

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"ok": True, "mode": service.current_mode})

    return app
