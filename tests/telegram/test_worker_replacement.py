"""A media worker is replaced after `calls_per_worker` calls (NTgCalls keeps part of every call until its process
ends): new calls go to a fresh process at once, the old one carries its calls to their end and then exits, and
nothing reads that as a worker dying. Real worker processes, each call created in its NTgCalls."""

from __future__ import annotations

import asyncio
import logging
import os

from app.telegram.callengine import SAMPLE_RATE, CallMedia
from app.workers import protocol as p
from app.workers.pool import RemoteCall, WorkerPool


def quiet_media() -> CallMedia:
    return CallMedia(on_signaling=lambda _data: None, on_state=lambda _state: None)


async def created(pool: WorkerPool) -> RemoteCall:
    call = pool.place(quiet_media())
    await call.request(p.Create(call.key, SAMPLE_RATE))
    return call


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_worker_is_replaced_after_its_calls_and_exits_once_they_are_released(caplog):
    caplog.set_level(logging.INFO, logger="app.workers.pool")
    pool = WorkerPool(1, calls_per_worker=2)
    await pool.start()
    supervisor = asyncio.create_task(pool.supervise())
    try:
        old = pool.links[0]
        first, second = await created(pool), await created(pool)
        assert first.link is old and second.link is old

        async def replacement_up() -> None:
            while not (pool.links[0] is not old and pool.links[0].up):
                await asyncio.sleep(0.05)
        await asyncio.wait_for(replacement_up(), 15)
        new = pool.links[0]
        third = await created(pool)
        assert third.link is new and new.pid != old.pid
        assert old.process is not None and old.process.returncode is None  # its two calls still run
        assert pool.health()["replaced_still_running"] == 1

        await first.release()
        await second.release()
        assert await asyncio.wait_for(old.process.wait(), 15) == 0
        assert not alive(old.pid)  # type: ignore[arg-type]

        async def old_one_gone() -> None:
            while pool.health()["replaced_still_running"]:
                await asyncio.sleep(0.05)
        await asyncio.wait_for(old_one_gone(), 5)
        health = pool.health()
        assert health["ok"]
        assert health["workers"] == [{"index": 0, "pid": new.pid, "up": True, "calls": 1, "restarts": 0}]
        assert "replaced after 2 calls" in caplog.text
        assert "died" not in caplog.text  # an old worker's exit is not a death: nothing restarted it
        assert pool.links == [new] and new.up and alive(new.pid)  # type: ignore[arg-type]
        await third.release()
    finally:
        supervisor.cancel()
        await pool.close()
