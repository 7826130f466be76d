"""NTgCalls' threads flush subnormal floats to zero (`app/telegram/denormals.py`), checked on the thread NTgCalls
hands a call's frames on, in a fresh process (the flags are inherited from thread to thread: a process that made
an NTgCalls before would not tell)."""

from __future__ import annotations

import asyncio
import sys

from app.telegram import denormals
from app.telegram.callengine import CallEngine

from tests.telegram.enginepair import connect_pair, feed_then_close, probe_in_child


async def probe(fast_path: bool) -> tuple[int, int]:
    """(1 if the frame thread's floats flush subnormal results to zero, 1 if both MXCSR flags are set there)."""
    loop = asyncio.get_running_loop()
    seen: asyncio.Future[tuple[int, int]] = loop.create_future()
    tiny = [sys.float_info.min]

    def on_frame(_pcm: bytes, _at: float) -> None:  # on NTgCalls' thread
        if not seen.done():
            flushed = int(tiny[0] / 4 == 0.0)  # a division done on this thread, at run time
            loop.call_soon_threadsafe(lambda: seen.done() or seen.set_result((flushed, int(denormals.flushing()))))

    a, b = CallEngine(fast_path=fast_path), CallEngine(fast_path=fast_path)
    await connect_pair(a, b, 1, on_frame)
    await feed_then_close(a, b, 1, seen.done)
    return seen.result()


def test_ntgcalls_threads_do_not_flush_by_default() -> None:
    """The premise (the path before the change): without the flags NTgCalls computes with subnormals. If this
    fails, something else sets them now: `denormals` may go."""
    assert probe_in_child("tests.telegram.test_denormals", "probe(False)") == (0, 0)


def test_the_engine_makes_ntgcalls_threads_flush_subnormals() -> None:
    assert probe_in_child("tests.telegram.test_denormals", "probe(True)") == (1, 1)
