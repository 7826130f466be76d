"""The admin pages in a browser: `GET /` and below, server-rendered with Jinja2 (aiohttp-jinja2).

Login with the admin token or the password of `tgtrunk admin password`; the session is an encrypted cookie
(aiohttp-session, HttpOnly, SameSite=Strict) bound to the current token and password, so changing either logs
every browser out. Every form carries the session's CSRF token. Bad input is shown on the page with a 400, never
a 500."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import aiohttp_session
import jinja2
from aiohttp import web
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from sqlmodel import select

from app.sip import lines
from app.sip.line import LineError, LineRequest
from app.sip.lines import LineNotFound
from app.store.account import TelegramAccountRow
from app.store.adminpassword import check_password, fingerprint
from app.store.ban import Ban
from app.store.callrecord import CallRecord, recording_where
from app.store.db import Database
from app.store.line import Line, LineStatus

log = logging.getLogger(__name__)

SESSION_HOURS = 12
# Failed logins from one address before it is refused for the rest of the window. The password is a human one
# (10 characters at least); the token alone would not need this.
LOGIN_FAILURES = 5
LOGIN_WINDOW_S = 600.0
ACCOUNT_SWITCHES = ("dtmf_in", "dtmf_out", "redial", "lines", "messages")
CALL_PAGE_ROWS = 200


@dataclass
class PageContext:
    """What the pages read from the running gateway."""

    db: Database
    token: str
    password_path: Path
    status: Callable[[], dict[str, Any]]
    live_calls: Callable[[], list[dict[str, Any]]]
    extra_sections: tuple[Callable[[web.Application], None], ...] = ()


PAGES = web.AppKey("pages", PageContext)


class LoginGuard:
    """Counts failed logins per address; after LOGIN_FAILURES within LOGIN_WINDOW_S that address is refused until
    the oldest of them is out of the window, without its secret being checked."""

    MAX_ADDRESSES = 10_000  # an address spray can cost this many entries at most

    def __init__(self, failures: int = LOGIN_FAILURES, window_s: float = LOGIN_WINDOW_S) -> None:
        self.failures = failures
        self.window_s = window_s
        self._failed: dict[str, list[float]] = {}

    def retry_after(self, address: str) -> float:
        """Seconds until `address` may try again; 0 when it may now."""
        now = time.monotonic()
        recent = [t for t in self._failed.get(address, ()) if now - t < self.window_s]
        if recent:
            self._failed[address] = recent
        else:
            self._failed.pop(address, None)
        return self.window_s - (now - recent[0]) if len(recent) >= self.failures else 0.0

    def failed(self, address: str) -> None:
        if address not in self._failed and len(self._failed) >= self.MAX_ADDRESSES:
            self._failed.pop(next(iter(self._failed)))
        self._failed.setdefault(address, []).append(time.monotonic())

    def succeeded(self, address: str) -> None:
        self._failed.pop(address, None)


def _epoch(ctx: PageContext) -> str:
    return hashlib.sha256(f"{ctx.token}:{fingerprint(ctx.password_path)}".encode()).hexdigest()[:24]


def add_pages(app: web.Application, ctx: PageContext, session_key: bytes) -> None:
    aiohttp_session.setup(app, EncryptedCookieStorage(
        hashlib.sha256(session_key).digest(), cookie_name="tgtrunk_admin", httponly=True, samesite="Strict",
        max_age=SESSION_HOURS * 3600))
    # after the session middleware: the template context reads the session
    aiohttp_jinja2.setup(app, loader=jinja2.PackageLoader("app.web", "templates"), autoescape=True,
                         context_processors=[_common_context])
    app[PAGES] = ctx
    routes = web.RouteTableDef()

    @routes.get("/login")
    async def login_form(request: web.Request) -> web.StreamResponse:
        return aiohttp_jinja2.render_template("login.html", request, {})

    guard = LoginGuard()

    @routes.post("/login")
    async def login(request: web.Request) -> web.StreamResponse:
        address = request.remote or "-"
        if wait := guard.retry_after(address):
            log.warning("admin pages: login from %s refused: %d failed logins within %.0f s", address,
                        guard.failures, guard.window_s)
            response = aiohttp_jinja2.render_template(
                "login.html", request, {"error": f"too many failed logins; try again in {wait:.0f} s"}, status=429)
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        form = await request.post()
        given = str(form.get("secret", ""))
        # scrypt takes tens of milliseconds: off the event loop, which carries the calls' RTP from Asterisk.
        ok = bool(given) and (hmac.compare_digest(given.encode(), ctx.token.encode())
                              or await asyncio.to_thread(check_password, ctx.password_path, given))
        if not ok:
            guard.failed(address)
            log.warning("admin pages: failed login from %s", address)
            return aiohttp_jinja2.render_template("login.html", request, {"error": "wrong token or password"},
                                                  status=401)
        guard.succeeded(address)
        session = await aiohttp_session.new_session(request)
        session["epoch"] = _epoch(ctx)
        session["csrf"] = secrets.token_urlsafe(24)
        log.info("admin pages: login from %s", request.remote)
        raise web.HTTPSeeOther("/")

    @routes.post("/logout")
    async def logout(request: web.Request) -> web.StreamResponse:
        await _checked_form(request)
        (await aiohttp_session.get_session(request)).invalidate()
        raise web.HTTPSeeOther("/login")

    @routes.get("/")
    async def status_page(request: web.Request) -> web.StreamResponse:
        await _logged_in(request)
        with ctx.db.session() as session:
            states = {s.name: s for s in session.exec(select(LineStatus))}
            bans = list(session.exec(select(Ban).where(Ban.until > datetime.now(timezone.utc))))
        return aiohttp_jinja2.render_template("status.html", request, {
            "status": ctx.status(), "states": states, "bans": bans, "calls": ctx.live_calls()})

    @routes.get("/lines")
    async def lines_page(request: web.Request) -> web.StreamResponse:
        await _logged_in(request)
        return _lines(request, {})

    @routes.post("/lines")
    async def add_line(request: web.Request) -> web.StreamResponse:
        form = await _checked_form(request)
        try:
            request_ = LineRequest(
                name=_text(form, "name") or "", mode=_text(form, "mode") or "register",
                username=_text(form, "username"), password=_text(form, "password"), server=_text(form, "server"),
                host=_text(form, "host"), **_line_settings(form))
            line, generated = await asyncio.to_thread(lines.add_line, ctx.db, request_)
        except LineError as exc:
            return _lines(request, {"error": str(exc), "form": dict(form)}, status=400)
        log.info("admin pages: line %s added (%s)", line.name, line.mode.value)
        return _lines(request, {"message": f"line {line.name} added", "shown_once": (line.name, generated)})

    @routes.post("/lines/{name}/edit")
    async def edit_line(request: web.Request) -> web.StreamResponse:
        form = await _checked_form(request)
        name = request.match_info["name"]
        try:
            await asyncio.to_thread(lines.update_line, ctx.db, name, _line_settings(form))
        except LineNotFound as exc:
            return _lines(request, {"error": str(exc)}, status=404)
        except LineError as exc:
            return _lines(request, {"error": f"line {name}: {exc}"}, status=400)
        log.info("admin pages: line %s changed", name)
        return _lines(request, {"message": f"line {name} saved; the gateway applies it within a second"})

    @routes.post("/lines/{name}/remove")
    async def remove_line(request: web.Request) -> web.StreamResponse:
        await _checked_form(request)
        name = request.match_info["name"]
        try:
            await asyncio.to_thread(lines.remove_line, ctx.db, name)
        except LineError as exc:
            return _lines(request, {"error": str(exc)}, status=404)
        log.info("admin pages: line %s removed", name)
        return _lines(request, {"message": f"line {name} removed"})

    @routes.post("/lines/{name}/reset-password")
    async def reset_password(request: web.Request) -> web.StreamResponse:
        await _checked_form(request)
        name = request.match_info["name"]
        try:
            password = await asyncio.to_thread(lines.reset_password, ctx.db, name)
        except LineNotFound as exc:
            return _lines(request, {"error": str(exc)}, status=404)
        except LineError as exc:
            return _lines(request, {"error": str(exc)}, status=400)
        log.info("admin pages: password of line %s reset", name)
        return _lines(request, {"message": f"new password for line {name}", "shown_once": (name, password)})

    @routes.get("/accounts")
    async def accounts_page(request: web.Request) -> web.StreamResponse:
        await _logged_in(request)
        return _accounts(request, {})

    @routes.post("/accounts/{name}/settings")
    async def account_settings(request: web.Request) -> web.StreamResponse:
        form = await _checked_form(request)
        name = request.match_info["name"]
        try:
            max_calls = _number(form, "max_calls")
            if max_calls is not None and max_calls < 0:
                raise LineError("max calls must be 0 (no limit) or more")
            with ctx.db.session() as session:
                row = session.exec(select(TelegramAccountRow).where(TelegramAccountRow.name == name)).first()
                if row is None:
                    raise LineError(f"no stored account named {name!r}")
                for switch in ACCOUNT_SWITCHES:
                    setattr(row, switch, form.get(switch) == "on")
                row.max_calls = max_calls or None
                session.add(row)
        except LineError as exc:
            return _accounts(request, {"error": str(exc)}, status=400)
        log.info("admin pages: session settings of account %s changed", name)
        return _accounts(request, {"message": f"settings of {name} saved; the next call uses them"})

    @routes.get("/calls")
    async def calls_page(request: web.Request) -> web.StreamResponse:
        await _logged_in(request)
        query = select(CallRecord).order_by(CallRecord.id.desc()).limit(CALL_PAGE_ROWS)
        filters = {key: request.query.get(key, "").strip()
                   for key in ("line", "direction", "code", "peer", "recorded")}
        if filters["recorded"]:
            query = query.where(CallRecord.recording_state.is_not(None))  # type: ignore[union-attr]
        if filters["line"]:
            query = query.where(CallRecord.line == filters["line"])
        if filters["direction"] in ("sip-to-telegram", "telegram-to-sip"):
            query = query.where(CallRecord.direction == filters["direction"])
        if filters["code"]:
            if not filters["code"].isdigit():
                return aiohttp_jinja2.render_template("calls.html", request, {
                    "records": [], "filters": filters, "recording_where": recording_where, "error": "the SIP code is a number such as 200 or 486"},
                    status=400)
            query = query.where(CallRecord.result_code == int(filters["code"]))
        if filters["peer"]:
            needle = filters["peer"].lstrip("@")
            query = query.where((CallRecord.peer_username == needle) | (CallRecord.peer_phone == needle)
                                | (CallRecord.dialled == filters["peer"]))
        with ctx.db.session() as session:
            records = list(session.exec(query))
        return aiohttp_jinja2.render_template("calls.html", request, {"records": records, "filters": filters,
                                                                         "recording_where": recording_where})

    def _lines(request: web.Request, extra: dict[str, Any], status: int = 200) -> web.Response:
        with ctx.db.session() as session:
            lines = list(session.exec(select(Line).order_by(Line.name)))
            states = {s.name: s for s in session.exec(select(LineStatus))}
        return aiohttp_jinja2.render_template("lines.html", request, {
            "lines": lines, "states": states, "form": {}, **extra}, status=status)

    def _accounts(request: web.Request, extra: dict[str, Any], status: int = 200) -> web.Response:
        with ctx.db.session() as session:
            rows = list(session.exec(select(TelegramAccountRow).order_by(TelegramAccountRow.name)))
        running = ctx.status().get("accounts", [])
        return aiohttp_jinja2.render_template("accounts.html", request, {
            "rows": rows, "running": running, "switches": ACCOUNT_SWITCHES, **extra}, status=status)

    app.add_routes(routes)
    for section in ctx.extra_sections:
        section(app)


async def _common_context(request: web.Request) -> dict[str, Any]:
    session = await aiohttp_session.get_session(request)
    return {"csrf": session.get("csrf", ""), "path": request.path}


async def _logged_in(request: web.Request) -> aiohttp_session.Session:
    """The session of a logged-in browser, or a redirect to the login form."""
    session = await aiohttp_session.get_session(request)
    if session.get("epoch") != _epoch(request.app[PAGES]):
        raise web.HTTPSeeOther("/login")
    return session


async def _checked_form(request: web.Request) -> Any:
    """A POSTed form of a logged-in browser whose CSRF token is the session's (403 otherwise)."""
    session = await _logged_in(request)
    form = await request.post()
    given = str(form.get("csrf", ""))
    if not given or not hmac.compare_digest(given.encode(), str(session.get("csrf", "")).encode()):
        log.warning("admin pages: form without the session's CSRF token from %s refused", request.remote)
        raise web.HTTPForbidden(text="this form is stale or was not sent by the admin pages: reload the page\n")
    return form


def _text(form: Any, key: str) -> str | None:
    value = str(form.get(key, "")).strip()
    return value or None


def _number(form: Any, key: str) -> int | None:
    value = _text(form, key)
    if value is None:
        return None
    if not value.lstrip("-").isdigit() or len(value) > 8:
        raise LineError(f"{key.replace('_', ' ')}: {value!r} is not a whole number")
    return int(value)


def _line_settings(form: Any) -> dict[str, Any]:
    """The line settings the add and edit forms both carry, as LineRequest fields."""
    return {"pbx_number": _text(form, "pbx_number"), "codecs": _text(form, "codecs") or "alaw,ulaw",
            "dtmf": _text(form, "dtmf") or "rfc4733", "priority": _number(form, "priority") or 0,
            "max_calls": _number(form, "max_calls"), "account": _text(form, "account"),
            **({"originate": _text(form, "originate")} if "originate" in form else {})}
