"""A database another process holds locked (a backup, a CLI write) must not stall the running gateway: its
writes wait off the event loop, so the admin API and the calls' audio keep going."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import urllib.request


def healthz_seconds(gateway) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    with urllib.request.urlopen(f"http://{gateway.env['TGTRUNK_HTTP_BIND']}/healthz", timeout=30) as response:
        assert response.status in (200, 503)
    return time.perf_counter() - started


async def test_a_locked_database_does_not_stall_the_gateway(make_gateway) -> None:
    gateway = await make_gateway()
    added = await gateway.cli("line", "add", "desk", "--mode", "register", "--password", "desk-secret")
    assert added.code == 0, added.err
    await gateway.wait_log(r"lines in sync: 1 line")

    locker = sqlite3.connect(gateway.data_dir / "tgtrunk.db", timeout=1, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")  # every writer now waits (busy timeout 30 s); WAL readers do not
        # The line status is written every 2 s: over 5 s of lock at least one such write waits for it.
        deadline = time.monotonic() + 5
        slowest = 0.0
        while time.monotonic() < deadline:
            slowest = max(slowest, await asyncio.to_thread(healthz_seconds, gateway))
            await asyncio.sleep(0.1)  # a polling period, not a wait for an event
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert slowest < 1.0, f"/healthz took {slowest:.2f} s while the database was locked"
    assert (await gateway.cli("line", "show", "desk")).code == 0
