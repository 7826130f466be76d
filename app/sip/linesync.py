"""The database is the source of truth: lines and bans are pushed into Asterisk and kept in sync."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import select

from app.ari.client import AriClient, AriError
from app.sip.line import endpoint_id
from app.sip.pjsip import PUSH_ORDER, PjsipObject, ban_object, objects_for_line
from app.store.ban import Ban
from app.store.db import Database
from app.store.line import Line, LineMode, LineStatus, utcnow

log = logging.getLogger(__name__)

CONFIG_CLASS = "res_pjsip"
POLL_INTERVAL_S = 0.4
STATUS_INTERVAL_S = 2.0
_REGISTRATION_ROW = re.compile(r"^\s*(\S+?)/\S+\s+\S+\s+(\w+)", re.MULTILINE)


async def _nothing() -> None:
    return None


async def _no_registrations() -> str:
    return ""


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)  # SQLite drops the zone


class LineSync:
    """`routes_only`: on the user's own Asterisk (external mode) only `stasis` lines (routes) are served and nothing
    is pushed there; on the bundled Asterisk every other mode is, and routes are not."""

    def __init__(self, ari: AriClient, db: Database, bans_file: Path | None = None,
                 reload_pjsip: Callable[[], Awaitable[None]] = _nothing,
                 show_registrations: Callable[[], Awaitable[str]] = _no_registrations,
                 memory_bans: Callable[[], Iterable[str]] = tuple, routes_only: bool = False) -> None:
        self.ari = ari
        self.routes_only = routes_only
        self.db = db
        self.bans_file = bans_file
        self.reload_pjsip = reload_pjsip
        self.show_registrations = show_registrations
        self.memory_bans = memory_bans  # bans in force that the database may not hold (it could not be written)
        self.pushed: dict[tuple[str, str], PjsipObject] = {}
        self.pushed_bans: tuple[str, ...] | None = None
        self.lines: dict[str, Line] = {}
        self._lock = asyncio.Lock()
        self._unserved: set[str] = set()  # lines of the other kind, said once
        self._stored_bans: list[tuple[str, datetime]] = []  # (address, until) as last read
        self._synced_version: int | None = None  # the database's version last read and pushed
        self._states: dict[str, str] = {}  # each line's last recorded state, to tell its changes
        self.on_state: Callable[[Line, str | None, str], None] | None = None  # (line, old state, new state)

    def line_for_endpoint(self, eid: str) -> str | None:
        for line in self.lines.values():
            if endpoint_id(line) == eid:
                return line.name
        return None

    def forget(self) -> None:
        """Asterisk restarted with nothing pushed: the next sync pushes everything."""
        self.pushed.clear()
        self.pushed_bans = None
        self._synced_version = None

    async def sync(self) -> None:
        """Reads the lines and bans only when the database changed (`Database.version`), and pushes what differs."""
        async with self._lock:
            version = self.db.version()  # before the read: a change made during it is read next time
            read = version is None or version != self._synced_version
            if read:
                lines, self._stored_bans = await asyncio.to_thread(self._read)  # off the loop: audio runs on it
                self._take(lines)
            now = utcnow()
            bans = sorted({address for address, until in self._stored_bans if until > now}
                          .union(self.memory_bans()))
            complete = True
            if not self.routes_only:
                await self._sync_bans(bans)
                if read:
                    complete = await self._sync_objects(list(self.lines.values()))
            # An object Asterisk refused is tried again next time, as before.
            self._synced_version = version if complete else None

    def _take(self, lines: list[Line]) -> None:
        served = [line for line in lines if (line.mode is LineMode.STASIS) == self.routes_only]
        previous, self.lines = self.lines, {line.name: line for line in served}
        for name, line in self.lines.items():
            if name in previous and line.model_dump() != previous[name].model_dump():
                log.info("line %s changed: the running gateway uses its new settings", name)
        for line in lines:
            if line.name not in self.lines and line.name not in self._unserved:
                self._unserved.add(line.name)
                log.warning("line %s (%s) is not used: %s", line.name, line.mode.value,
                            "a route on your own Asterisk needs TGTRUNK_ARI_URL" if line.mode is LineMode.STASIS
                            else "with TGTRUNK_ARI_URL only stasis lines (routes) are served")

    def _read(self) -> tuple[list[Line], list[tuple[str, datetime]]]:
        now = utcnow()
        with self.db.session() as session:
            lines = list(session.exec(select(Line).order_by(Line.priority.desc(), Line.name)))
            bans = [(b.address, _aware(b.until)) for b in session.exec(select(Ban).where(Ban.until > now))]
        return lines, bans

    async def _sync_objects(self, lines: list[Line]) -> bool:
        """False if Asterisk refused an object."""
        desired: dict[tuple[str, str], PjsipObject] = {}
        for line in lines:
            for obj in objects_for_line(line):
                desired[obj.key] = obj
        stale = [obj for key, obj in self.pushed.items() if desired.get(key) != obj]
        # A registration stopped by a refusal only starts again when it is pushed anew: a changed auth
        # (password, realm) re-pushes the registration that uses it.
        changed_auths = {obj.id for obj in stale if obj.kind == "auth"}
        stale += [obj for key, obj in self.pushed.items()
                  if obj.kind == "registration" and obj.id in changed_auths and obj not in stale]
        for obj in sorted(stale, key=lambda o: -PUSH_ORDER.index(o.kind)):
            await self.ari.delete_config(CONFIG_CLASS, obj.kind, obj.id)
            del self.pushed[obj.key]
        fresh = [obj for key, obj in desired.items() if key not in self.pushed]
        refused = False
        for obj in sorted(fresh, key=lambda o: PUSH_ORDER.index(o.kind)):
            try:
                await self.ari.put_config(CONFIG_CLASS, obj.kind, obj.id, list(obj.fields))
            except AriError as exc:
                log.error("line object %s/%s was refused by Asterisk: %s", obj.kind, obj.id, exc.message)
                refused = True
                continue
            self.pushed[obj.key] = obj
        if stale or fresh:
            log.info("lines in sync: %d line(s), %d object(s) changed", len(lines), len(stale) + len(fresh))
        return not refused

    async def _sync_bans(self, bans: list[str]) -> None:
        if tuple(bans) == self.pushed_bans:
            return
        text = "".join(f"[{ban_object(a).id}]\ntype = acl\ndeny = {a}\n\n" for a in bans)
        self.bans_file.write_text(text)
        if self.pushed_bans is not None or bans:
            await self.reload_pjsip()
            log.info("bans in Asterisk: %s", ", ".join(bans) or "none")
        self.pushed_bans = tuple(bans)

    async def run(self, ready: asyncio.Event) -> None:
        """Poll the database's version: a change made by the CLI or the API reaches Asterisk within a second."""
        last_status = 0.0
        loop = asyncio.get_running_loop()
        failing_since: float | None = None
        while True:
            await ready.wait()
            try:
                await self.sync()
                if loop.time() - last_status > STATUS_INTERVAL_S:
                    await self.record_status()
                    last_status = loop.time()
            except (AriError, OSError, asyncio.TimeoutError) as exc:
                log.debug("line sync deferred: %s", exc)  # Asterisk restarting: its supervisor says so
            except Exception as exc:  # noqa: BLE001 - said once per streak, retried every poll
                if failing_since is None:
                    failing_since = loop.time()
                    log.warning("line sync is failing (%s: %s); retrying every %.1f s", type(exc).__name__,
                                getattr(exc, "orig", None) or exc, POLL_INTERVAL_S,
                                exc_info=not isinstance(exc, SQLAlchemyError))
            else:
                if failing_since is not None:
                    log.info("line sync works again after %.0f s", loop.time() - failing_since)
                    failing_since = None
            await asyncio.sleep(POLL_INTERVAL_S)

    async def record_status(self) -> None:
        lines = dict(self.lines)  # a sync may replace self.lines while this awaits
        states: dict[str, tuple[str, str]] = {}
        endpoints = {} if self.routes_only else \
            {e["resource"]: e for e in await self.ari.request("GET", "/endpoints/PJSIP") or []}
        registrations: dict[str, str] = {}
        if any(line.mode is LineMode.OUTBOUND for line in lines.values()):
            registrations = dict(_REGISTRATION_ROW.findall(await self.show_registrations()))
        for line in lines.values():
            eid = endpoint_id(line)
            if line.mode is LineMode.OUTBOUND:
                state = registrations.get(eid, "Unregistered").lower()
                states[line.name] = (state, f"to {line.server} as {line.username}")
            elif line.mode is LineMode.STASIS:
                states[line.name] = ("ready", f"Stasis({self.ari.app},{line.name},…); originates {line.originate}")
            elif line.mode is LineMode.REGISTER:
                online = endpoints.get(eid, {}).get("state") == "online"
                states[line.name] = ("registered" if online else "not registered", f"username {line.username}")
            else:
                states[line.name] = ("ready", f"trusts {line.host}")
        await asyncio.to_thread(self._write_status, states)
        previous, self._states = self._states, {name: state for name, (state, _) in states.items()}
        for name, state in self._states.items():
            if previous.get(name) != state and self.on_state is not None:
                self.on_state(lines[name], previous.get(name), state)

    def _write_status(self, states: dict[str, tuple[str, str]]) -> None:
        with self.db.session(unseen=True) as session:  # no poller reads it: not a change to them
            for old in session.exec(select(LineStatus)):
                if old.name not in states:
                    session.delete(old)
            for name, (state, detail) in states.items():
                session.merge(LineStatus(name=name, state=state, detail=detail, updated_at=utcnow()))
