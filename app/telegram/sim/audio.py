"""Audio for simulated people and tests: a tone source, an echo, and a sink that hops onto the event loop.

A `PrivateCall` has one way in (`push_audio`, paced by its source) and one way out (`on_audio`, on NTgCalls'
thread). `CallAudio` plays a source into a call on the shared 20 ms clock, as RTP would, and hands what the call
hears to a loop-side callback, several frames per wake-up.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable

import numpy as np

from app.pacing import MediaClock
from app.telegram.privatecall import PrivateCall

MAX_ECHO_MS = 200  # older audio is dropped rather than delayed


class Tone:
    """A continuous sine as an audio source (phase kept across chunks)."""

    def __init__(self, hz: float, dbfs: float = -12.0, sample_rate: int = 8_000) -> None:
        self.step = 2 * math.pi * hz / sample_rate
        self.amplitude = min(32767 * 10 ** (dbfs / 20), 32767)  # dBFS relative to a full-scale sine
        self.phase = 0.0

    def __call__(self, n_bytes: int) -> bytes:
        n = n_bytes // 2
        phases = self.phase + self.step * np.arange(n)
        self.phase = float((self.phase + self.step * n) % (2 * math.pi))
        return (self.amplitude * np.sin(phases)).astype("<i2").tobytes()


class CallAudio:
    """One call's simulated audio: `source` (a Tone), or `echo()`ed audio, pushed every 20 ms; `on_heard` gets
    what the call hears on the event loop."""

    def __init__(self, call: PrivateCall, on_heard: Callable[[bytes], None] | None = None,
                 source: Callable[[int], bytes] | None = None) -> None:
        self.call = call
        self.source = source
        self.on_heard = on_heard
        self.tick_bytes = 2 * call.account.engine.frame_bytes
        self._echo = bytearray()
        self._frames: list[bytes] = []
        self._frames_lock = threading.Lock()
        self._loop = asyncio.get_running_loop()
        call.on_audio = self._from_thread
        MediaClock.shared().add(self, source=True)
        call.ended.add_done_callback(lambda _: MediaClock.shared().remove(self))

    def echo(self, pcm: bytes) -> None:
        """Queue audio (any multiple of 10 ms) to be sent back, paced."""
        self._echo += pcm
        limit = self.tick_bytes * MAX_ECHO_MS // 20
        if len(self._echo) > limit:
            del self._echo[: len(self._echo) - limit]

    def tick(self, now: float) -> None:
        if self.source is not None:
            chunk = self.source(self.tick_bytes)
        elif self._echo:
            chunk = bytes(self._echo[: self.tick_bytes]).ljust(self.tick_bytes, b"\0")
            del self._echo[: self.tick_bytes]
        else:
            return  # nothing to say: the call's own clock sends silence
        self.call.push_audio(chunk)

    def _from_thread(self, pcm: bytes, _posted_at: float) -> None:
        with self._frames_lock:
            self._frames.append(pcm)
            if len(self._frames) > 1:
                return  # a delivery is already scheduled and will take this frame too
        try:
            self._loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # loop closed during shutdown
            pass

    def _deliver(self) -> None:
        with self._frames_lock:
            batch, self._frames = self._frames, []
        if self.on_heard is not None:
            for pcm in batch:
                self.on_heard(pcm)
