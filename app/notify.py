"""Telling an account's administrators when something needs a person.

One chat message per event with what to do, sent through a `NotificationSender` (the session account's
`ChatSender`, so its spacing and FLOOD_WAIT hold, or another running account's when the session is the thing
that broke). Repeats of an event are folded: at most one message per event key in the fold window. Every
notification, sent, folded or undeliverable, is logged."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from sqlmodel import select

from app.store.admin import AccountAdmin
from app.store.db import Database

log = logging.getLogger(__name__)

DEFAULT_FOLD_S = 600.0


class NotificationSender(Protocol):
    async def send(self, account: str, to: str, text: str) -> None:
        """Send `text` to the user `to` (@username or user id) on behalf of `account`; raise if it cannot."""


class Notifier:
    def __init__(self, db: Database, sender: NotificationSender, accounts: Callable[[], Iterable[str]],
                 fold_s: float = DEFAULT_FOLD_S) -> None:
        self.db = db
        self.sender = sender
        self.accounts = accounts  # the running accounts' names, for events that concern them all
        self.fold_s = fold_s
        self._last: dict[tuple[str, str], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def notify(self, kind: str, text: str, account: str | None = None, subject: str = "") -> bool:
        """Tell the administrators of `account` (all accounts when None); False when folded."""
        key = (account or "*", f"{kind}:{subject}")
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.fold_s:
            log.info("notification %s%s folded (already sent %.0f s ago, fold window %.0f s)",
                     kind, f" ({subject})" if subject else "", now - last, self.fold_s)
            return False
        self._last[key] = now
        task = asyncio.get_running_loop().create_task(self._deliver(kind, text, account))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _deliver(self, kind: str, text: str, account: str | None) -> None:
        names = [account] if account else sorted(self.accounts())
        def read() -> list[AccountAdmin]:
            with self.db.session() as session:
                return list(session.exec(select(AccountAdmin).where(AccountAdmin.account.in_(names))))  # type: ignore[attr-defined]
        admins = await asyncio.to_thread(read)
        if not admins:
            log.warning("notification %s: %s (no administrator to tell: `tgtrunk account admin add`)", kind, text)
            return
        for admin in admins:
            try:
                await self.sender.send(admin.account, admin.who, text)
            except Exception as exc:  # noqa: BLE001 - one unreachable administrator must not stop the others
                log.error("notification %s to %s (account %s) could not be sent: %s; it said: %s",
                          kind, admin.who, admin.account, exc, text)
                continue
            log.info("notification %s sent to %s (account %s): %s", kind, admin.who, admin.account, text)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
