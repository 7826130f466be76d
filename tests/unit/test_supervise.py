"""The task supervisor: a task that raises is logged once, restarted with back-off, and shown as failing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from app.supervise import TaskSupervisor


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)
    await asyncio.wait_for(poll(), timeout)


async def test_a_crashing_task_is_restarted_with_growing_pauses_and_logged_folded(
        caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def broken() -> None:
        starts.append(loop.time())
        raise RuntimeError("disk on fire")

    tasks = TaskSupervisor(first_delay_s=0.02, max_delay_s=0.16, healthy_after_s=10)
    caplog.set_level(logging.INFO, logger="tgtrunk.supervise")
    tasks.start("broken", broken)
    try:
        await until(lambda: len(starts) >= 7)
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        # 0.02, 0.04, 0.08, 0.16, then capped at 0.16
        for gap, expected in zip(gaps, (0.02, 0.04, 0.08, 0.16, 0.16, 0.16)):
            assert expected <= gap < expected + 0.1, gaps
        state = tasks.status()["broken"]
        assert not tasks.ok and state["ok"] is False
        assert state["restarts"] >= 6 and state["last_error"] == "RuntimeError: disk on fire"

        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        with_traceback = [r for r in errors if r.exc_info]
        assert len(with_traceback) == 1 and "background task broken failed" in with_traceback[0].getMessage()
        folded = [r.getMessage() for r in errors if not r.exc_info]
        assert folded[:2] == [  # said again at 2 and 4 failures in a row, not every time
            "background task broken failed again (2 times in a row, last: RuntimeError: disk on fire); "
            "restarting it in 0.0 s",
            "background task broken failed again (4 times in a row, last: RuntimeError: disk on fire); "
            "restarting it in 0.2 s",
        ]
        assert len(errors) < len(starts)
    finally:
        await tasks.stop()


async def test_a_task_that_runs_healthy_again_is_ok_and_its_back_off_starts_over(
        caplog: pytest.LogCaptureFixture) -> None:
    fail = True
    runs = 0
    healed = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if fail:
            raise OSError("read-only file system")
        healed.set()
        await asyncio.Event().wait()

    tasks = TaskSupervisor(first_delay_s=0.01, max_delay_s=0.05, healthy_after_s=0.2)
    caplog.set_level(logging.INFO, logger="tgtrunk.supervise")
    tasks.start("flaky", flaky)
    try:
        await until(lambda: runs >= 3)
        assert not tasks.ok
        fail = False
        await asyncio.wait_for(healed.wait(), 2)
        await until(lambda: tasks.ok, timeout=2)  # after healthy_after_s of running
        state = tasks.status()["flaky"]
        assert state["state"] == "running" and state["failures_in_a_row"] == 0
        assert state["last_error"] == "OSError: read-only file system"  # kept for the operator
        assert any("flaky is running again after" in r.getMessage() for r in caplog.records)
    finally:
        await tasks.stop()


async def test_stop_cancels_the_last_started_first_and_waits_for_each() -> None:
    order: list[str] = []

    def forever(name: str) -> Callable[[], asyncio.Future[None]]:
        async def run() -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                await asyncio.sleep(0.01)  # its clean-up finishes before the next task is cancelled
                order.append(name)
                raise
        return run  # type: ignore[return-value]

    tasks = TaskSupervisor()
    for name in ("first", "second", "third"):
        tasks.start(name, forever(name))
    await asyncio.sleep(0)
    assert tasks.ok and {s["state"] for s in tasks.status().values()} == {"running"}
    await tasks.stop()
    assert order == ["third", "second", "first"]


async def test_a_task_that_returns_is_finished_not_restarted() -> None:
    runs = 0

    async def once() -> None:
        nonlocal runs
        runs += 1

    tasks = TaskSupervisor(first_delay_s=0.01)
    tasks.start("once", once)
    await until(lambda: tasks.status()["once"]["state"] == "finished")
    await asyncio.sleep(0.05)
    assert runs == 1 and tasks.ok
    with pytest.raises(ValueError):
        tasks.start("once", once)
    await tasks.stop()
