"""SQLite's memory stays flat while call records pile up: each pooled connection's page cache is capped
(`SQLITE_CACHE_KIB`), not SQLite's 2 MiB, which the gateway filled ~0.9 KiB a call (bench/soak.py)."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util

from sqlmodel import select

from app.store.callrecord import CallRecord
from app.store.db import Database

_SQLITE = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")  # the library Python's sqlite3 uses
_SQLITE.sqlite3_memory_used.restype = ctypes.c_int64


def sqlite_kib() -> int:
    return _SQLITE.sqlite3_memory_used() // 1024


async def test_sqlite_memory_does_not_grow_with_the_call_records(tmp_path):
    tmp_path.chmod(0o700)
    db = Database(f"sqlite:///{tmp_path / 'tgtrunk.db'}")

    def latest() -> CallRecord | None:
        with db.session() as session:
            return session.exec(select(CallRecord).order_by(CallRecord.id.desc()).limit(1)).first()  # type: ignore[union-attr]

    async def calls(count: int) -> None:
        for _ in range(count):  # as the gateway does: written from a worker thread, the latest read back
            record = CallRecord(direction="sip-to-telegram", line="office", account="main", dialled="+15550200001",
                                peer_id=100000001, peer_username="alice", reason="normal clearing")
            await asyncio.to_thread(db.add_or_hold, record)
            await asyncio.to_thread(latest)

    try:
        await calls(500)
        before = sqlite_kib()
        await calls(1500)
        grown = sqlite_kib() - before
        assert db.write_error is None and latest().id == 2000  # type: ignore[union-attr]
        assert grown < 32, f"SQLite's memory grew {grown} KiB over 1500 call records"
    finally:
        db.engine.dispose()
