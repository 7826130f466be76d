"""Every call's 10 ms frames handed to NTgCalls on one thread of its own, woken only when it has nothing left to send.

NTgCalls' binding runs each `send_external_frame` as `asyncio.get_event_loop().run_in_executor(...)` on its own
thread pool: one job and one asyncio future per 10 ms frame, the largest share of the Python cost of a call
(issue 12). On the sender's own thread `get_event_loop()` returns `_RunNow`, whose `run_in_executor` runs the job
at once (the binding releases the GIL while NTgCalls takes the frame); every other thread, the loop's included,
sees the real loop as before. `tests/telegram/test_framesend.py` fails if the binding stops finding its loop this
way.

The frames pushed during one loop iteration go to the sender together. The sender's thread is woken only when it
was idle, and the loop only when somebody waits for a call's frames to be sent (a call's setup step or its stop):
not once per loop iteration each way with a future, as before (bench/README.md, "tgtrunk's own CPU"). Sending them
on the loop's own thread instead was measured too: cheaper at 10 calls, but at 30 the loop, getting the GIL back
after every frame, fell behind reading RTP (packets lost).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

import ntgcalls

log = logging.getLogger(__name__)

FRAME_DATA = ntgcalls.FrameData()  # what every external frame is sent with (CallEngine's old path too)
MICROPHONE = ntgcalls.StreamDevice.MICROPHONE


class _RunNow:
    """The event loop NTgCalls' binding finds on the sender's thread: its jobs run there and then."""

    @staticmethod
    def run_in_executor(_executor: Any, func: Callable[..., Any], *args: Any) -> Any:
        return func(*args)


def _on_sender_thread() -> None:
    asyncio.events._set_running_loop(_RunNow())  # type: ignore[arg-type]


Frame = tuple[ntgcalls.NTgCalls, int, bytes]
_Job = tuple[None, Callable[[], Any], "concurrent.futures.Future[Any]"]


class FrameSender:
    """One per event loop (`shared`). `push` numbers each frame; frames are sent in that order, so once frame n
    is sent (`when_sent`), none pushed before it is in NTgCalls' hands any more.

    Its thread sleeps on a bare lock, released to wake it: a thread pool's `submit` (a future, a work item, a
    queue and a semaphore per wake-up, ~35 µs more of CPU each, measured) cost more than the wake-up itself."""

    _per_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FrameSender]" = weakref.WeakKeyDictionary()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weakly: `_per_loop` holds this sender as long as its loop lives, so a strong reference back would keep
        # both (and this thread) for ever.
        self._loop = weakref.ref(loop)
        self._batch: list[Frame] = []  # pushed in this loop iteration (the loop's thread only)
        self._pushed = 0  # the loop's thread only
        self._lock = threading.Lock()  # guards the rest, shared with the sender's thread
        self._queued: list[Frame | _Job] = []  # a job is (None, callable, its future)
        self._sending = False  # the sender's thread has work; it looks for more before it stops
        self._sent = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._failed = False  # an unexpected failure is logged once
        wake = threading.Lock()
        wake.acquire()
        self._wake = wake  # released (by whoever set `_sending`) to wake the sender's thread
        # Its thread ends once this sender is gone (with its loop): it holds the sender only while sending.
        threading.Thread(target=_serve, args=(weakref.ref(self), wake), name="ntgcalls-frames", daemon=True).start()
        weakref.finalize(self, _wake_up, wake)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """On the loop's thread, which keeps it alive."""
        loop = self._loop()
        assert loop is not None
        return loop

    @classmethod
    def shared(cls, loop: asyncio.AbstractEventLoop) -> "FrameSender":
        sender = cls._per_loop.get(loop)
        if sender is None:
            sender = cls._per_loop[loop] = cls(loop)
        return sender

    def push(self, ntg: ntgcalls.NTgCalls, peer_id: int, pcm: bytes) -> int:
        """On the loop's thread; the frame's number."""
        if not self._batch:
            self.loop.call_soon(self._flush)
        self._batch.append((ntg, peer_id, pcm))
        self._pushed += 1
        return self._pushed

    def submit(self, job: Callable[[], Any]) -> "concurrent.futures.Future[Any]":
        """Run `job` on the sender's thread after the frames queued so far (for tests: what runs there)."""
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._queue([(None, job, done)])
        return done

    def when_sent(self, number: int) -> "asyncio.Future[None] | None":
        """On the loop's thread: None if frame `number` (and every one before it) is sent, else a future."""
        with self._lock:
            if self._sent >= number:
                return None
            done = self.loop.create_future()
            self._waiters.append((number, done))
            return done

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        self._queue(batch)

    def _queue(self, items: "list[Frame] | list[_Job]") -> None:
        """On the loop's thread."""
        with self._lock:
            self._queued += items
            start = not self._sending
            self._sending = True
        if start:
            self._wake.release()

    def _send_all(self) -> None:
        """On the sender's thread, until nothing is queued."""
        while True:
            with self._lock:
                batch, self._queued = self._queued, []
                if not batch:
                    self._sending = False
                    return
            frames = 0
            for ntg, peer_id, pcm in batch:
                if ntg is None:
                    _run_job(peer_id, pcm)
                    continue
                frames += 1
                try:
                    ntg.send_external_frame(peer_id, MICROPHONE, pcm, FRAME_DATA)
                except ntgcalls.BaseRTCException:
                    pass  # the call ended meanwhile (NTgCalls dropped it): a frame sent as a call stops is moot
                except Exception:  # noqa: BLE001 - one bad frame must not cost the other calls theirs
                    if not self._failed:
                        self._failed = True
                        log.exception("sending a frame to NTgCalls for %s failed (logged once)", peer_id)
            with self._lock:
                self._sent += frames
                ready = [done for number, done in self._waiters if number <= self._sent]
                if ready:
                    self._waiters = [(n, done) for n, done in self._waiters if n > self._sent]
            loop = self._loop()
            if ready and loop is not None:
                try:
                    loop.call_soon_threadsafe(_resolve, ready)
                except RuntimeError:  # the loop closed meanwhile
                    pass


def _run_job(job: Callable[[], Any], done: "concurrent.futures.Future[Any]") -> None:
    if done.set_running_or_notify_cancel():
        try:
            done.set_result(job())
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for it
            done.set_exception(exc)


def _serve(sender_ref: "weakref.ref[FrameSender]", wake: threading.Lock) -> None:
    _on_sender_thread()
    while True:
        wake.acquire()
        sender = sender_ref()
        if sender is None:
            return
        sender._send_all()
        del sender


def _wake_up(wake: threading.Lock) -> None:
    try:
        wake.release()
    except RuntimeError:  # released already: the thread wakes and finds its sender gone
        pass


def _resolve(ready: list["asyncio.Future[None]"]) -> None:
    for done in ready:
        if not done.done():
            done.set_result(None)
