"""Admin API: status, lines, call records, and the simulator's "call the gateway" button.

Every /api/ request needs `Authorization: Bearer <token>`; the token is generated on first start into
`<data dir>/admin-token` (0600), which the CLI reads. A bad request is answered 4xx with a one-line reason;
bodies are validated in full before anything is stored.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlmodel import select

from app.sip.line import LineError, line_request_from_json, validation_message
from app.sip.lines import LineNotFound, add_line, remove_line
from app.store.callrecord import CallRecord
from app.store.db import Database
from app.store.line import Line, LineStatus

log = logging.getLogger(__name__)

SimCall = Callable[[str], Awaitable[None]]
MAX_LAST = 1000  # call records one request may ask for


class SimCallBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    user: str


def build_app(db: Database, token: str, status: Callable[[], dict[str, Any]], sim_call: SimCall,
              health: Callable[[], dict[str, Any]] = lambda: {"ok": True}) -> web.Application:
    if not token:
        raise ValueError("the admin API needs a non-empty token")
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def auth(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if request.path == "/healthz":  # for monitors and `tgtrunk status`: says which part fails, no secrets
            return await handler(request)
        if not request.path.startswith("/api/"):  # the admin pages (app/web/pages.py) log browsers in themselves
            return await handler(request)
        # Compared as bytes: compare_digest refuses non-ASCII text, and a header may hold anything.
        given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, expected):
            raise web.HTTPUnauthorized(text="missing or wrong admin token: send 'Authorization: Bearer <token>' "
                                            "(the token is in <data dir>/admin-token)\n",
                                       headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    app = web.Application(middlewares=[auth])
    routes = web.RouteTableDef()

    @routes.get("/healthz")
    async def get_health(_request: web.Request) -> web.Response:
        body = health()
        return web.json_response(body, status=200 if body["ok"] else 503)

    @routes.get("/api/status")
    async def get_status(_request: web.Request) -> web.Response:
        return web.json_response(status())

    @routes.get("/api/lines")
    async def get_lines(_request: web.Request) -> web.Response:
        def read() -> list[dict[str, Any]]:
            with db.session() as session:
                lines = list(session.exec(select(Line).order_by(Line.name)))
                states = {s.name: s.state for s in session.exec(select(LineStatus))}
            return [{**line.model_dump(mode="json", exclude={"password_digest", "id"}), "state": states.get(line.name)}
                    for line in lines]
        return web.json_response(await asyncio.to_thread(read))

    @routes.post("/api/lines")
    async def post_line(request: web.Request) -> web.Response:
        try:
            line, generated = await asyncio.to_thread(add_line, db, line_request_from_json(await request.read()))
        except LineError as exc:
            raise web.HTTPBadRequest(text=f"{exc}\n") from None
        return web.json_response({"name": line.name, "password": generated}, status=201)

    @routes.delete("/api/lines/{name}")
    async def delete_line(request: web.Request) -> web.Response:
        try:
            await asyncio.to_thread(remove_line, db, request.match_info["name"])
        except LineNotFound as exc:
            raise web.HTTPNotFound(text=f"{exc}\n") from None
        return web.Response(status=204)

    @routes.get("/api/calls")
    async def get_calls(request: web.Request) -> web.Response:
        raw = request.query.get("last", "20")
        last = int(raw) if raw.isascii() and raw.isdigit() else 0
        if not 1 <= last <= MAX_LAST:
            raise web.HTTPBadRequest(text=f"last={raw!r}: give a whole number from 1 to {MAX_LAST}\n")
        def read() -> list[dict[str, Any]]:
            with db.session() as session:
                records = session.exec(select(CallRecord).order_by(CallRecord.id.desc()).limit(last))
                return [r.model_dump(mode="json") for r in records]
        return web.json_response(await asyncio.to_thread(read))

    @routes.post("/api/sim/call")
    async def post_sim_call(request: web.Request) -> web.Response:
        try:
            user = SimCallBody.model_validate_json(await request.read()).user
        except ValidationError as exc:
            raise web.HTTPBadRequest(text=f"body must be {{\"user\": NAME}}: {validation_message(exc)}\n") from None
        try:
            await sim_call(user)
        except KeyError:
            raise web.HTTPNotFound(text=f"no simulated user {user!r}\n") from None
        except LookupError as exc:
            raise web.HTTPConflict(text=f"{exc}\n") from None
        return web.json_response({"calling": user}, status=202)

    app.add_routes(routes)
    return app

