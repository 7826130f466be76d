"""Posting finished call recordings to their chat, and retrying until it works.

A recording waits as a file in `<data dir>/recordings` with its call record in state "pending"; this task posts
it through the call's account (upload, then messages.sendMedia as a voice message with a caption), then removes
the file and marks the record "posted". A failed post keeps the file and is tried again after a back-off
(2 s doubling to 10 min), or after the FLOOD_WAIT Telegram asked for. Files survive a restart: the records do too."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from sqlmodel import select

from app.calls.accounts import Accounts
from app.store.callrecord import CallRecord
from app.store.db import Database
from app.telegram.errors import _retry_after, rpc_id

log = logging.getLogger(__name__)

FIRST_RETRY_S = 2.0
LAST_RETRY_S = 600.0


def caption(record: CallRecord) -> str:
    who = f"@{record.peer_username}" if record.peer_username else (
        f"+{record.peer_phone}" if record.peer_phone else str(record.peer_id or "unknown"))
    if record.direction == "sip-to-telegram":
        heading = f"Call from PBX {record.caller or 'unknown'} to Telegram {who}"
    else:
        heading = f"Call from Telegram {who} to PBX {record.dialled or 'unknown'}"
    seconds = round(record.recording_s or record.duration_s)
    return (f"{heading}\nline {record.line or '-'}, started {record.started_at:%Y-%m-%d %H:%M:%S} UTC, "
            f"duration {seconds // 60}:{seconds % 60:02d}")


class RecordingPoster:
    def __init__(self, db: Database, accounts: Accounts, every_s: float = 1.0) -> None:
        self.db = db
        self.accounts = accounts
        self.every_s = every_s
        self._retry_at: dict[int, float] = {}  # record id -> time.monotonic() of its next try
        self._back_off: dict[int, float] = {}

    async def run(self) -> None:
        pending: list[CallRecord] = []
        read_version: int | None = None
        while True:
            await asyncio.sleep(self.every_s)  # a polling period, like the line sync's
            version = self.db.version()  # a post or a failed try writes its row: read afresh after either
            if version is None or version != read_version:
                pending = await asyncio.to_thread(self._pending)
                read_version = version
            for record in pending:
                assert record.id is not None
                if time.monotonic() >= self._retry_at.get(record.id, 0.0):
                    await self._post(record)

    def _pending(self) -> list[CallRecord]:
        with self.db.session() as session:
            return list(session.exec(select(CallRecord).where(CallRecord.recording_state == "pending")))

    async def _post(self, record: CallRecord) -> None:
        assert record.id is not None and record.recording and record.recording_chat
        path = Path(record.recording)
        if not path.exists():
            log.error("recording %s of call %d is gone; it cannot be posted", path, record.id)
            await asyncio.to_thread(self._update, record.id, "failed", "the file is gone")
            return
        handle = self.accounts.handles.get(record.account or "")
        try:
            if handle is None:
                raise LookupError(f"account {record.account} is not running")
            message = await handle.account.send_voice(record.recording_chat, path, caption(record),
                                                      round(record.recording_s or 0))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - kept and tried again
            wait = _retry_after(exc)
            if wait is None:
                wait = self._back_off.get(record.id, FIRST_RETRY_S)
                self._back_off[record.id] = min(wait * 2, LAST_RETRY_S)
            self._retry_at[record.id] = time.monotonic() + wait
            reason = rpc_id(exc) if rpc_id(exc) != type(exc).__name__ else str(exc) or type(exc).__name__
            # The row first: once the log says "kept", `tgtrunk calls` shows why (a test read it in between).
            await asyncio.to_thread(self._update, record.id, "pending", reason)
            log.warning("recording of call %d could not be posted to %s (%s); kept in %s, tried again in %.0f s",
                        record.id, record.recording_chat, reason, path, wait)
            return
        # The row before the file: a crash in between leaves a stray file, never a second post of the same
        # recording; and whoever sees the file gone sees the row "posted" (a test read "pending" in between).
        await asyncio.to_thread(self._update, record.id, "posted", None)
        path.unlink(missing_ok=True)
        self._retry_at.pop(record.id, None)
        self._back_off.pop(record.id, None)
        log.info("recording of call %d posted to %s (message %d); %s removed", record.id, record.recording_chat,
                 message, path.name)

    def _update(self, record_id: int, state: str, error: str | None) -> None:
        with self.db.session() as session:
            row = session.get(CallRecord, record_id)
            if row is not None:
                row.recording_state, row.recording_error = state, error
                session.add(row)
