"""Every 10 ms frame handed to NTgCalls there and then, on the event loop's own thread: no job, no future, no thread.

NTgCalls' binding runs each `send_external_frame` as `asyncio.get_event_loop().run_in_executor(...)` on its own
thread pool: one job and one asyncio future per 10 ms frame, the largest share of the Python cost of a call
(issue 12). `send_frame` lets the binding find `_RunNow` as the running loop for the length of the call, whose
`run_in_executor` runs the job at once (the binding releases the GIL while NTgCalls takes the frame), then puts
the real loop back. So a frame costs one native call, and once `send_frame` returns NTgCalls has it: nothing of
the call's is in flight when its next lifecycle step or its stop begins.

A thread of its own for the frames (one job per loop iteration) was measured against this: every job woke that
thread and every finished one woke the loop (a thread-pool queue put, a self-pipe write, a future), and on a busy
machine each wake-up cost a context switch with the GIL held (bench/README.md, "Where tgtrunk's own CPU goes").
`tests/telegram/test_framesend.py` fails if the binding stops finding its loop this way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import ntgcalls

FRAME_DATA = ntgcalls.FrameData()  # what every external frame is sent with (CallEngine's old path too)
MICROPHONE = ntgcalls.StreamDevice.MICROPHONE


class _RunNow:
    """The event loop NTgCalls' binding finds during `send_frame`: its job runs there and then."""

    @staticmethod
    def run_in_executor(_executor: Any, func: Callable[..., Any], *args: Any) -> Any:
        return func(*args)


_RUN_NOW = _RunNow()
_get_running_loop = asyncio.events._get_running_loop
_set_running_loop = asyncio.events._set_running_loop


def send_frame(ntg: ntgcalls.NTgCalls, peer_id: int, pcm: bytes) -> None:
    """Hand one frame to NTgCalls; returns once NTgCalls has it. Raises what NTgCalls raises (an ended call:
    `ntgcalls.BaseRTCException`)."""
    loop = _get_running_loop()
    _set_running_loop(_RUN_NOW)  # type: ignore[arg-type]
    try:
        ntg.send_external_frame(peer_id, MICROPHONE, pcm, FRAME_DATA)
    finally:
        _set_running_loop(loop)
