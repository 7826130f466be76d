"""Every call's 10 ms frames handed to NTgCalls as one job per loop iteration, on one thread of its own.

NTgCalls' binding runs each `send_external_frame` as `asyncio.get_event_loop().run_in_executor(...)` on its own
thread pool: one job and one asyncio future per 10 ms frame, the largest share of the Python cost of a call
(issue 12). On the sender's own thread `get_event_loop()` returns `_RunNow`, whose `run_in_executor` runs the job
at once (the binding releases the GIL while NTgCalls copies the frame); every other thread, the loop's included,
sees the real loop as before. So the frames pushed during one loop iteration (the media clock's tick for every
call, the RTP packets read together) cost one job on one thread and one future.
`tests/telegram/test_framesend.py` fails if the binding stops finding its loop this way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import weakref
from collections.abc import Callable
from typing import Any

import ntgcalls

log = logging.getLogger(__name__)

FRAME_DATA = ntgcalls.FrameData()  # what every external frame is sent with (CallEngine's old path too)


class _RunNow:
    """The event loop NTgCalls' binding finds on the sender's thread: its jobs run there and then."""

    @staticmethod
    def run_in_executor(_executor: Any, func: Callable[..., Any], *args: Any) -> Any:
        return func(*args)


def _on_sender_thread() -> None:
    asyncio.events._set_running_loop(_RunNow())  # type: ignore[arg-type]


class FrameSender:
    """One per event loop (`shared`): collects the frames pushed during a loop iteration and sends them as one job.

    `push` returns the future of the batch holding the frame; batches run in order, one at a time, so once a
    call's latest batch is done none of its frames is in NTgCalls' hands any more."""

    _per_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FrameSender]" = weakref.WeakKeyDictionary()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # Its thread ends once this sender is gone (with its loop).
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ntgcalls-frames",
                                                             initializer=_on_sender_thread)
        self._batch: list[tuple[ntgcalls.NTgCalls, int, bytes]] = []
        self._done: asyncio.Future[None] | None = None
        self._failed = False  # an unexpected failure is logged once

    @classmethod
    def shared(cls, loop: asyncio.AbstractEventLoop) -> "FrameSender":
        sender = cls._per_loop.get(loop)
        if sender is None:
            sender = cls._per_loop[loop] = cls(loop)
        return sender

    def push(self, ntg: ntgcalls.NTgCalls, peer_id: int, pcm: bytes) -> "asyncio.Future[None]":
        """On the loop's thread."""
        if self._done is None:
            self._done = self.loop.create_future()
            self.loop.call_soon(self._flush)
        self._batch.append((ntg, peer_id, pcm))
        return self._done

    def _flush(self) -> None:
        batch, done = self._batch, self._done
        self._batch, self._done = [], None
        assert done is not None
        self._thread.submit(self._send, batch, done)

    def _send(self, batch: list[tuple[ntgcalls.NTgCalls, int, bytes]], done: "asyncio.Future[None]") -> None:
        try:
            for ntg, peer_id, pcm in batch:
                try:
                    ntg.send_external_frame(peer_id, ntgcalls.StreamDevice.MICROPHONE, pcm, FRAME_DATA)
                except ntgcalls.BaseRTCException:
                    pass  # the call ended meanwhile (NTgCalls dropped it): a frame sent as a call stops is moot
                except Exception:  # noqa: BLE001 - one bad frame must not cost the other calls theirs
                    if not self._failed:
                        self._failed = True
                        log.exception("sending a frame to NTgCalls for %s failed (logged once)", peer_id)
        finally:
            try:
                self.loop.call_soon_threadsafe(_resolve, done)
            except RuntimeError:  # the loop closed meanwhile
                pass


def _resolve(done: "asyncio.Future[None]") -> None:
    if not done.done():
        done.set_result(None)
