"""HTTP front of the policy service (FastAPI): ``guardrl serve RUN --policy cql``.

Endpoints (JSON in, JSON out):

* ``POST /act`` ``{"observation": [..], "policy": "cql"?}`` -> ``{"decision_id", "decision": act|defer|fallback,
  "action", "source", "reasons", "mode"}``. ``action`` is null when the caller's own controller (or a person)
  must decide: a deferral, or a fallback with no ``--fallback`` policy loaded.
* ``POST /shadow`` ``{"observation": [..], "production_action": 2}`` -> what the policy would have done, and
  whether it diverges from production.
* ``POST /outcome`` ``{"decision_id": 17, "hazard": true}`` -> counts a hazard after a policy decision against
  the rollback threshold; crossing it switches the server to the fallback.
* ``GET /status``: mode (``shadow``, ``canary``, ``full`` or ``rolled_back``), counters, rollback state.
* ``GET /policies/{name}``: the model card with the gate verdict. ``GET /healthz``.

Bodies are parsed and checked by the service itself, so every malformed request gets a 4xx naming the field,
and nothing a client sends can take the server down.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from guardrl.serve.service import PolicyService, ServeError


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ServeError(f"body is not valid JSON ({exc.__class__.__name__}: {exc})", 400) from None
    if not isinstance(data, dict):
        raise ServeError("body must be a JSON object")
    return data


def _fields(data: dict[str, Any], required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    missing = [k for k in required if k not in data]
    if missing:
        raise ServeError(f"missing field(s): {', '.join(missing)}")
    unknown = sorted(set(data) - set(required) - set(optional))
    if unknown:
        raise ServeError(f"unknown field(s): {', '.join(unknown)}")


def create_app(service: PolicyService) -> FastAPI:
    """The FastAPI application around ``service``."""
    app = FastAPI(title="guardrl policy server", version="1")

    @app.exception_handler(ServeError)
    async def serve_error(request: Request, exc: ServeError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # never let a request kill the server
        return JSONResponse({"detail": f"internal error: {exc.__class__.__name__}: {exc}"}, status_code=500)

    @app.post("/act")
    async def act(request: Request) -> JSONResponse:
        data = await _body(request)
        _fields(data, ("observation",), ("policy",))
        return JSONResponse(service.act(data["observation"], data.get("policy")))

    @app.post("/shadow")
    async def shadow(request: Request) -> JSONResponse:
        data = await _body(request)
        _fields(data, ("observation", "production_action"), ("policy",))
        return JSONResponse(service.shadow(data["observation"], data["production_action"], data.get("policy")))

    @app.post("/outcome")
    async def outcome(request: Request) -> JSONResponse:
        data = await _body(request)
        _fields(data, ("decision_id", "hazard"))
        return JSONResponse(service.outcome(data["decision_id"], data["hazard"]))

    @app.get("/status")
    async def status() -> JSONResponse:
        return JSONResponse(service.status())

    @app.get("/policies/{name}")
    async def card(name: str) -> JSONResponse:
        return JSONResponse(service.model_card(name))

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"ok": True, "mode": service.current_mode})

    return app
