"""`threadstate.keep()` against the real NTgCalls binding: what it works around, and that it works.

Python keeps `threading.local` data per thread state, so a callback that finds its mark gone runs on a thread
state made for it. Each probe runs in a fresh process: a thread that kept its state keeps it for good.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading

from app.telegram.callengine import FRAME_10MS, CallEngine

from tests.telegram.enginepair import connect_pair, probe_in_child

FRAMES = 50


async def probe(fast_path: bool) -> tuple[int, int]:
    """(callbacks, of which found a thread state made for them) over FRAMES of frames heard."""
    mark = threading.local()
    seen = [0, 0]
    enough = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_frame(_pcm: bytes, _at: float) -> None:  # on NTgCalls' thread
        seen[0] += 1
        if not getattr(mark, "set", False):
            seen[1] += 1
            mark.set = True
        if seen[0] == FRAMES:
            loop.call_soon_threadsafe(enough.set)

    a, b = CallEngine(fast_path=fast_path), CallEngine(fast_path=fast_path)
    await connect_pair(a, b, 1, on_frame)
    for _ in range(10 * FRAMES):
        a.push_frame(1, bytes(FRAME_10MS))
        if enough.is_set():
            break
        await asyncio.sleep(0.01)  # the 10 ms pace NTgCalls' source wants, not a wait for an event
    await asyncio.wait_for(enough.wait(), 10)
    await a.close()
    await b.close()
    return seen[0], seen[1]


def run_probe(fast_path: bool) -> tuple[int, int]:
    return probe_in_child("tests.telegram.test_threadstate", f"probe({fast_path})")


def test_the_binding_makes_a_thread_state_for_every_callback() -> None:
    """What `threadstate` works around. If this fails, the binding keeps thread states itself: drop the module."""
    callbacks, fresh = run_probe(fast_path=False)
    assert callbacks >= FRAMES
    assert fresh == callbacks


def test_kept_thread_states_serve_every_later_callback() -> None:
    callbacks, fresh = run_probe(fast_path=True)
    assert callbacks >= FRAMES
    assert fresh <= 2, f"{fresh} of {callbacks} frame callbacks ran on a new thread state"


async def count_thread_states_over_calls(calls: int) -> list[int]:
    """The interpreter's thread states after each of `calls` calls, one after another, has carried frames."""
    api = ctypes.pythonapi
    api.PyInterpreterState_Get.restype = ctypes.c_void_p
    api.PyInterpreterState_ThreadHead.restype = ctypes.c_void_p
    api.PyInterpreterState_ThreadHead.argtypes = [ctypes.c_void_p]
    api.PyThreadState_Next.restype = ctypes.c_void_p
    api.PyThreadState_Next.argtypes = [ctypes.c_void_p]

    def thread_states() -> int:
        n, state = 0, api.PyInterpreterState_ThreadHead(api.PyInterpreterState_Get())
        while state:
            n, state = n + 1, api.PyThreadState_Next(state)
        return n

    a, b = CallEngine(), CallEngine()
    counts = []
    for peer in range(1, calls + 1):
        heard = asyncio.Event()
        loop = asyncio.get_running_loop()
        await connect_pair(a, b, peer, lambda _pcm, _at: loop.call_soon_threadsafe(heard.set))
        while not heard.is_set():
            a.push_frame(peer, bytes(FRAME_10MS))
            await asyncio.sleep(0.01)  # the 10 ms pace
        await a.stop(peer)
        await b.stop(peer)
        counts.append(thread_states())
    await a.close()
    await b.close()
    return counts


async def test_thread_states_kept_for_ended_calls_are_freed() -> None:
    """NTgCalls ends each call's frame thread with the call: its kept state must not stay behind."""
    counts = await count_thread_states_over_calls(6)
    assert counts[-1] - counts[1] <= 1, f"thread states after each call: {counts}"
