"""The Telegram accounts a running gateway uses, by name, with their session settings."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import select

from app.calls.mediabridge import MEDIA_SAMPLE_RATE
from app.settings import Settings
from app.store.account import TelegramAccountRow
from app.store.db import Database
from app.store.line import Line
from app.store.secretbox import SecretBox
from app.telegram.account import TelegramAccount
from app.telegram.chat import ChatSender
from app.telegram.sessions import open_account
from app.workers.pool import RemoteCallEngine, WorkerPool

log = logging.getLogger(__name__)

SETTINGS_WARN_AFTER = 10  # failed refreshes in a row (one a second) before the log says so


@dataclass
class AccountHandle:
    """A running Telegram account and the session settings the call flow reads."""

    name: str
    account: TelegramAccount
    dtmf_in: bool = True
    dtmf_out: bool = True
    max_calls: int | None = None  # concurrent calls, both directions
    redial: bool = True
    lines: bool = True
    messages: bool = False
    callback: bool = False
    autoreply: str | None = None
    autoreply_interval_s: int = 600
    inline_bot: str | None = None
    inline_query: str | None = None
    record: bool = False
    record_chat: str | None = None
    sessions: set[Any] = field(default_factory=set)  # its live CallSessions (callsession.py imports this module)
    active: int = 0  # calls counted against max_calls (kept by the Stasis app)
    chat: ChatSender | None = None  # every message into a chat goes through it (rate limits, FLOOD_WAIT)
    on_call_end: Callable[[Any], None] | None = None  # the chat side's post-call work, given the CallSession

    def chat_allowed(self) -> bool:
        """With every chat switch off the gateway says nothing in any chat (the reference's promise)."""
        return self.redial or self.lines or self.messages or self.dtmf_in or self.dtmf_out


def live_settings(row: TelegramAccountRow) -> dict[str, Any]:
    """The session settings a running call flow reads, as `AccountHandle` fields."""
    return {"dtmf_in": row.dtmf_in, "dtmf_out": row.dtmf_out, "max_calls": row.max_calls, "redial": row.redial,
            "lines": row.lines, "messages": row.messages, "callback": row.callback, "autoreply": row.autoreply,
            "autoreply_interval_s": row.autoreply_interval_s, "inline_bot": row.inline_bot,
            "inline_query": row.inline_query, "record": row.record, "record_chat": row.record_chat}


class Accounts:
    def __init__(self) -> None:
        self.handles: dict[str, AccountHandle] = {}
        self.failed: dict[str, str] = {}  # stored accounts whose session did not start: name -> why

    def add(self, name: str, account: TelegramAccount, **settings: Any) -> AccountHandle:
        """`settings`: session settings as in `live_settings` (the defaults of a new account otherwise)."""
        if account.sample_rate != MEDIA_SAMPLE_RATE:
            raise ValueError(f"account {name} runs its calls at {account.sample_rate} Hz, the media at {MEDIA_SAMPLE_RATE}")
        handle = AccountHandle(name, account, chat=ChatSender(account), **settings)
        self.handles[name] = handle
        self._mark_gateways()
        return handle

    def _mark_gateways(self) -> None:
        # Calls between two accounts of this installation would loop: their calls are refused with 482.
        ids = {h.account.me.id for h in self.handles.values() if h.account.me}
        for handle in self.handles.values():
            handle.account.gateway_user_ids = ids - ({handle.account.me.id} if handle.account.me else set())

    def for_line(self, line: Line) -> AccountHandle | None:
        if line.account:
            return self.handles.get(line.account)
        if len(self.handles) == 1:
            return next(iter(self.handles.values()))
        return None

    async def start_stored(self, db: Database, settings: Settings) -> None:
        with db.session() as session:
            rows = list(session.exec(select(TelegramAccountRow)))
        if not rows:
            return
        box = SecretBox.from_env_or_file(settings.secret_key_path)
        for row in rows:
            print(f"starting Telegram account {row.name} ({row.phone})…", flush=True)
            try:
                account = await open_account(row, box, sample_rate=MEDIA_SAMPLE_RATE)
            except Exception as exc:  # noqa: BLE001 - one broken session must not stop the others
                log.error("Telegram account %s did not start (%s); log in again with `tgtrunk account login %s`",
                          row.name, exc, row.name)
                self.failed[row.name] = f"did not start: {exc}"
                continue
            self.add(row.name, account, **live_settings(row))

    async def use_workers(self, pool: WorkerPool) -> None:
        """Every account's calls get their NTgCalls in the media workers; the in-process engines go."""
        for handle in self.handles.values():
            account = handle.account
            local = account.engine
            account.engine = RemoteCallEngine(pool, account.sample_rate)  # type: ignore[assignment]
            if local is not None:
                await local.close()

    def health(self) -> dict[str, Any]:
        """For /healthz: every account the gateway should run is connected to Telegram."""
        accounts: dict[str, dict[str, Any]] = {
            name: {"connected": handle.account.client.is_connected} for name, handle in self.handles.items()
        }
        accounts.update({name: {"connected": False, "error": why} for name, why in self.failed.items()})
        return {"ok": all(account["connected"] for account in accounts.values()), "accounts": accounts}

    def refresh_settings(self, db: Database) -> None:
        """Session settings changed with `tgtrunk account settings` apply to the next call, no restart."""
        with db.session() as session:
            rows = {row.name: row for row in session.exec(select(TelegramAccountRow))}
        for name, handle in self.handles.items():
            row = rows.get(name)
            if row is not None:
                for key, value in live_settings(row).items():
                    setattr(handle, key, value)

    async def watch_settings(self, db: Database, every_s: float = 1.0, warn_after: int = SETTINGS_WARN_AFTER) -> None:
        failures = 0
        read_version: int | None = None
        while True:
            await asyncio.sleep(every_s)  # a polling period, like the line sync's
            version = db.version()
            if version is not None and version == read_version:
                continue  # nothing was written since the last read
            try:
                await asyncio.to_thread(self.refresh_settings, db)
            except Exception as exc:  # noqa: BLE001 - a locked or busy database is retried next period
                failures += 1
                if failures == warn_after:  # once per streak: a moment of "database is locked" is normal
                    log.warning("account settings could not be read for %d tries (%s); changes made with "
                                "`tgtrunk account settings` wait until the database is readable", failures, exc)
                else:
                    log.debug("account settings not refreshed: %s", exc)
                continue
            if failures >= warn_after:
                log.info("account settings are read again after %d failed tries", failures)
            failures = 0
            read_version = version

    async def stop(self) -> None:
        for handle in self.handles.values():
            try:
                await handle.account.stop()
            except Exception as exc:  # noqa: BLE001
                log.warning("stopping account %s: %s", handle.name, exc)
        self.handles.clear()
