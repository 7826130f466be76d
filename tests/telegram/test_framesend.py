"""The batched frame path into the real NTgCalls (`app/telegram/framesend.py`) and the turns of `CallEngine`."""

from __future__ import annotations

import asyncio
import os
import threading

import ntgcalls
import pytest

from app.telegram import callengine
from app.telegram.callengine import FRAME_10MS, CallEngine, CallMedia, protocol
from app.telegram.framesend import FrameSender

from tests.telegram.enginepair import DH_P, connect_pair


def _media() -> CallMedia:
    return CallMedia(lambda _data: None, lambda _state: None)


async def test_on_the_sender_thread_the_binding_sends_at_once() -> None:
    """If this fails, the binding no longer finds its loop with asyncio.get_event_loop(): frames would not go."""
    engine = CallEngine()
    sender = FrameSender.shared(asyncio.get_running_loop())

    def send_to_nobody() -> object:
        return engine.ntg.send_external_frame(424242, ntgcalls.StreamDevice.MICROPHONE, bytes(FRAME_10MS),
                                              ntgcalls.FrameData())
    with pytest.raises(ntgcalls.ConnectionNotFound):  # raised there and then: the job ran inline
        await asyncio.wrap_future(sender._thread.submit(send_to_nobody))
    with pytest.raises(ntgcalls.ConnectionNotFound):  # elsewhere a future, as before
        await send_to_nobody()  # type: ignore[misc]
    await engine.close()


async def test_frames_of_every_call_arrive_through_batches() -> None:
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
    start = dict(heard)
    for _ in range(100):  # 1 s of 20 ms ticks, both calls' two frames each per tick, as the media clock pushes
        for peer in (1, 2):
            a.push_frame(peer, bytes(FRAME_10MS))
            a.push_frame(peer, bytes(FRAME_10MS))
        await asyncio.sleep(0.02)  # the pace itself
    await asyncio.sleep(0.3)  # NTgCalls' jitter buffer plays out what was sent
    for peer in (1, 2):
        assert heard[peer] - start[peer] >= 150, heard  # of 200 frames sent; playout start varies
    await a.close()
    await b.close()


async def test_a_stop_waits_for_the_batch_holding_the_calls_frames() -> None:
    engine = CallEngine()
    sender = FrameSender.shared(asyncio.get_running_loop())
    engine.attach(7, _media())
    await engine.create(7)
    gate = threading.Event()
    blocked = sender._thread.submit(gate.wait, 10)  # the sender's thread is busy: the next batch waits
    engine.push_frame(7, bytes(FRAME_10MS))
    stopping = engine.release(7)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(stopping), 0.5)
    assert 7 in await engine.ntg.calls()  # not stopped while its frame is still to be sent
    gate.set()
    await asyncio.wrap_future(blocked)
    await asyncio.wait_for(stopping, 5)
    assert 7 not in await engine.ntg.calls()
    await engine.close()


async def test_connecting_a_call_does_not_wait_for_another_calls_create_or_stop() -> None:
    """One queue for every call's setup made a burst of 20 INVITEs wait 5 s for their 200 OK (issue 12)."""
    a, b = CallEngine(), CallEngine()
    for engine in (a, b):
        engine.attach(3, _media())
        await engine.create(3)
    g_a_hash = await a.init_exchange(3, 3, DH_P, os.urandom(256), None)
    g_b = await b.init_exchange(3, 3, DH_P, os.urandom(256), g_a_hash)
    auth = await a.exchange_keys(3, g_b, 0)
    await b.exchange_keys(3, bytes(auth.g_a_or_b), auth.key_fingerprint)
    async with callengine._lifecycle_lock():  # another call is being created or stopped meanwhile
        versions = list(protocol().library_versions)
        await asyncio.wait_for(a.connect(3, [], versions, True, None), 5)
        await asyncio.wait_for(a.attach_playback(3), 5)
    await a.close()
    await b.close()
