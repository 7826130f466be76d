"""The frame path into the real NTgCalls (`app/telegram/framesend.py`): each frame handed over on the loop's thread."""

from __future__ import annotations

import asyncio
import threading

import ntgcalls
import pytest

from app.telegram.callengine import FRAME_10MS, CallEngine, CallMedia
from app.telegram.framesend import send_frame

from tests.telegram.enginepair import connect_pair


async def test_the_binding_takes_the_frame_there_and_then() -> None:
    """If this fails, the binding no longer finds its loop with asyncio.get_event_loop(): frames would not go."""
    engine = CallEngine()
    loop = asyncio.get_running_loop()
    with pytest.raises(ntgcalls.ConnectionNotFound):  # raised there and then: the job ran inline
        send_frame(engine.ntg, 424242, bytes(FRAME_10MS))
    assert asyncio.get_running_loop() is loop  # the real loop is back
    with pytest.raises(ntgcalls.ConnectionNotFound):  # elsewhere a future, as before
        await engine.ntg.send_external_frame(424242, ntgcalls.StreamDevice.MICROPHONE, bytes(FRAME_10MS),
                                             ntgcalls.FrameData())
    await engine.close()


async def test_frames_of_every_call_arrive_with_no_thread_or_future_of_their_own() -> None:
    """Issue 12: a thread of its own for the frames cost a wake-up of that thread and one of the loop for every
    loop iteration (bench/README.md). The frames now go from the loop's thread, and a stop has none to wait for."""
    a, b = CallEngine(), CallEngine()
    heard = {1: 0, 2: 0}
    lock = threading.Lock()

    def counter(peer: int):  # type: ignore[no-untyped-def]
        def on_frame(pcm: bytes, _at: float) -> None:
            with lock:
                heard[peer] += len(pcm) // FRAME_10MS
        return on_frame
    for peer in (1, 2):
        await connect_pair(a, b, peer, counter(peer))
    threads_before = {t.name for t in threading.enumerate()}
    start = dict(heard)
    for _ in range(100):  # 1 s of 20 ms ticks, both calls' two frames each per tick, as the media clock pushes
        for peer in (1, 2):
            a.push_frame(peer, bytes(FRAME_10MS))
            a.push_frame(peer, bytes(FRAME_10MS))
            assert not a._frame_sends.get(peer)  # nothing in flight once push_frame returned
        await asyncio.sleep(0.02)  # the pace itself
    await asyncio.sleep(0.3)  # NTgCalls' jitter buffer plays out what was sent
    for peer in (1, 2):
        assert heard[peer] - start[peer] >= 150, heard  # of 200 frames sent; playout start varies
    assert {t.name for t in threading.enumerate()} - threads_before == set()
    await a.close()
    await b.close()


async def test_frames_for_a_call_being_set_up_or_stopped_are_dropped() -> None:
    engine = CallEngine()
    engine.attach(7, CallMedia(lambda _data: None, lambda _state: None))
    await engine.create(7)
    engine.push_frame(7, bytes(FRAME_10MS))  # a created call takes frames before it is connected
    await asyncio.wait_for(engine.stop(7), 5)
    engine.push_frame(7, bytes(FRAME_10MS))  # after the stop: dropped, no error
    assert 7 not in await engine.ntg.calls()
    await engine.close()
