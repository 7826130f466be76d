"""The thread NTgCalls hands a call's frames on runs at the media priority (`app/telegram/threadpriority.py`)."""

from __future__ import annotations

import asyncio
import os
import threading

from app.telegram.callengine import CallEngine
from app.telegram.threadpriority import MEDIA_NICE

from tests.telegram.enginepair import connect_pair, feed_then_close


def _may_raise() -> bool:
    """Whether this process may give a thread MEDIA_NICE (tried on a thread of its own, which then ends)."""
    allowed: list[bool] = []

    def attempt() -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), MEDIA_NICE)
            allowed.append(True)
        except OSError:
            allowed.append(False)

    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join()
    return allowed[0]


async def test_the_thread_frames_come_on_runs_at_the_media_priority() -> None:
    loop = asyncio.get_running_loop()
    seen: asyncio.Future[int] = loop.create_future()

    def on_frame(_pcm: bytes, _at: float) -> None:  # on NTgCalls' thread
        nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        loop.call_soon_threadsafe(lambda: seen.done() or seen.set_result(nice))

    a, b = CallEngine(), CallEngine()
    await connect_pair(a, b, 1, on_frame)
    await feed_then_close(a, b, 1, seen.done)
    expected = MEDIA_NICE if _may_raise() else os.getpriority(os.PRIO_PROCESS, 0)
    assert seen.result() == expected
