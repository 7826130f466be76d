"""Admin API for the chat side: an account's session settings (GET/PATCH), and the simulator's people writing
to the gateway and pressing buttons (demo mode)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlmodel import select

from app.sip.line import validation_message
from app.store.account import SessionSettingsPatch, TelegramAccountRow, session_settings
from app.store.db import Database

SimAction = Callable[..., Awaitable[Any]]


class SimMessageBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    user: str
    text: str


class SimPressBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    user: str
    button: str


def add_chat_routes(app: web.Application, db: Database, demo: Callable[[], Any]) -> None:
    """`demo()`: the running DemoTelegram, or None when the gateway does not simulate Telegram."""
    routes = web.RouteTableDef()

    def row_of(session: Any, name: str) -> TelegramAccountRow:
        row = session.exec(select(TelegramAccountRow).where(TelegramAccountRow.name == name)).first()
        if row is None:
            raise web.HTTPNotFound(text=f"no Telegram account named {name!r}\n")
        return row

    @routes.get("/api/accounts/{name}/settings")
    async def get_settings(request: web.Request) -> web.Response:
        with db.session() as session:
            return web.json_response(session_settings(row_of(session, request.match_info["name"])))

    @routes.patch("/api/accounts/{name}/settings")
    async def patch_settings(request: web.Request) -> web.Response:
        try:
            changes = SessionSettingsPatch.model_validate_json(await request.read()).changes()
        except ValidationError as exc:
            raise web.HTTPBadRequest(text=f"{validation_message(exc)}\n") from None
        with db.session() as session:
            row = row_of(session, request.match_info["name"])
            for key, value in changes.items():
                setattr(row, key, value)
            session.add(row)
            return web.json_response(session_settings(row))

    def running_demo() -> Any:
        sim = demo()
        if sim is None:
            raise web.HTTPConflict(text="the gateway is not running with --simulate-telegram\n")
        return sim

    async def body(request: web.Request, model: type[BaseModel]) -> Any:
        try:
            return model.model_validate_json(await request.read())
        except ValidationError as exc:
            raise web.HTTPBadRequest(text=f"{validation_message(exc)}\n") from None

    @routes.post("/api/sim/message")
    async def sim_message(request: web.Request) -> web.Response:
        sim, message = running_demo(), await body(request, SimMessageBody)
        try:
            await sim.message_gateway(message.user, message.text)
        except KeyError:
            raise web.HTTPNotFound(text=f"no simulated user {message.user!r}\n") from None
        return web.json_response({"sent": message.text}, status=202)

    @routes.post("/api/sim/press")
    async def sim_press(request: web.Request) -> web.Response:
        sim, press = running_demo(), await body(request, SimPressBody)
        try:
            toast = await sim.press(press.user, press.button)
        except KeyError:
            raise web.HTTPNotFound(text=f"no simulated user {press.user!r}\n") from None
        except LookupError as exc:
            raise web.HTTPNotFound(text=f"{exc}\n") from None
        except Exception as exc:  # noqa: BLE001 - e.g. the bot did not answer in time
            raise web.HTTPBadGateway(text=f"the press was not answered: {exc}\n") from None
        return web.json_response({"toast": toast})

    @routes.get("/api/sim/chat")
    async def sim_chat(request: web.Request) -> web.Response:
        sim = running_demo()
        try:
            return web.json_response(sim.chat(request.query.get("user", "")))
        except KeyError:
            raise web.HTTPNotFound(text=f"no simulated user {request.query.get('user', '')!r}\n") from None

    app.add_routes(routes)
