"""The frame path into the real NTgCalls (`app/telegram/framesend.py`) and the turns of `CallEngine`."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref

import ntgcalls
import pytest

from app.pacing import MediaClock
from app.telegram.callengine import FRAME_10MS, CallEngine, CallMedia
from app.telegram.framesend import FrameSender

from tests.telegram.enginepair import connect_pair


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
        await asyncio.wrap_future(sender.submit(send_to_nobody))
    with pytest.raises(ntgcalls.ConnectionNotFound):  # elsewhere a future, as before
        await send_to_nobody()  # type: ignore[misc]
    await engine.close()


async def test_frames_of_every_call_arrive_with_no_future_or_loop_wake_up_per_batch() -> None:
    """Issue 12: every batch of frames cost a future, a job on the sender's thread and a wake-up of the loop when
    it was sent, and every call in it a done-callback (bench/README.md). Frames now only carry a number; the loop
    hears from the sender only when a call waits for its frames (its setup steps, its stop)."""
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
            assert not a._frame_sends.get(peer)  # no future per batch
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
    blocked = sender.submit(lambda: gate.wait(10))  # the sender's thread is busy: the next batch waits
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


async def test_a_call_whose_frames_are_still_queued_does_not_hold_up_another_calls_setup() -> None:
    """Its create/connect waits for its frames outside the process-wide turn: inside, every other call's setup
    waited up to 5 s behind it (a burst's setup, issue 12)."""
    engine = CallEngine()
    sender = FrameSender.shared(asyncio.get_running_loop())
    for peer in (5, 6):
        engine.attach(peer, _media())
    await engine.create(5)
    gate = threading.Event()
    blocked = sender.submit(lambda: gate.wait(10))  # call 5's next frames stay queued meanwhile
    engine.push_frame(5, bytes(FRAME_10MS))
    playback = asyncio.ensure_future(engine.attach_playback(5))  # waits for call 5's frames
    try:
        await asyncio.wait_for(engine.create(6), 3)
        assert 6 in await engine.ntg.calls()
        assert not playback.done()
    finally:
        gate.set()
        await asyncio.wrap_future(blocked)
        await asyncio.wait_for(playback, 5)
    await engine.close()


async def test_the_senders_own_thread_runs_what_is_queued_in_order() -> None:
    """The sender's thread is its own now (woken through a bare lock, not a thread pool's queue)."""
    sender = FrameSender.shared(asyncio.get_running_loop())
    ran: list[tuple[int, str]] = []
    jobs = [sender.submit(lambda n=n: ran.append((n, threading.current_thread().name))) for n in range(50)]
    await asyncio.wait_for(asyncio.wrap_future(jobs[-1]), 5)
    assert ran == [(n, "ntgcalls-frames") for n in range(50)]


def test_a_loop_its_sender_and_its_clock_are_freed_once_the_loop_is_gone() -> None:
    """One sender and one clock per loop, kept no longer than the loop (each test has a loop of its own)."""
    loop = asyncio.new_event_loop()

    class Holder:
        def tick(self, _now: float) -> None:
            MediaClock.shared().remove(self)

    async def use() -> None:
        sender = FrameSender.shared(asyncio.get_running_loop())
        assert await asyncio.wrap_future(sender.submit(lambda: 7)) == 7
        clock = MediaClock.shared()
        clock.add(Holder())
        assert clock._task is not None
        await clock._task  # the clock stops once its last holder is gone

    before = set(threading.enumerate())
    loop.run_until_complete(use())
    senders = [t for t in set(threading.enumerate()) - before if t.name == "ntgcalls-frames"]
    loop.close()
    gone = weakref.ref(loop)
    del loop
    gc.collect()
    assert gone() is None, "the loop is still referred to"
    for thread in senders:
        thread.join(5)
        assert not thread.is_alive(), "the sender's thread outlived its loop"
