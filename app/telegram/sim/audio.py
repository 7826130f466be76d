"""Audio for simulated people and tests: a tone source, an echo, and a sink that hops onto the event loop.

A `PrivateCall` has one way in (`push_audio`, paced by its source) and one way out (`on_audio`, on NTgCalls'
thread). `CallAudio` plays a source into a call on the shared 20 ms clock, as RTP would, and hands what the call
heard since the last tick to a loop-side callback on that same tick: the loop is not woken for the frames
themselves (a wake-up per frame from every call's NTgCalls thread was the simulator's largest Python cost at 30 calls,
bench/README.md). An echo is then sent back on the tick it was heard by.
"""

from __future__ import annotations

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
        self._frames: list[bytes] = []  # heard since the last tick, on NTgCalls' thread
        self._frames_lock = threading.Lock()
        call.on_audio = self._from_thread
        MediaClock.shared().add(self, source=True)
        call.ended.add_done_callback(self._ended)

    def _ended(self, _ended: object) -> None:
        MediaClock.shared().remove(self)
        self._deliver()  # the last frames heard before the hang-up

    def echo(self, pcm: bytes) -> None:
        """Queue audio (any multiple of 10 ms) to be sent back, paced."""
        self._echo += pcm
        limit = self.tick_bytes * MAX_ECHO_MS // 20
        if len(self._echo) > limit:
            del self._echo[: len(self._echo) - limit]

    def tick(self, now: float) -> None:
        self._deliver()
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

    def _deliver(self) -> None:
        with self._frames_lock:
            batch, self._frames = self._frames, []
        if self.on_heard is not None:
            for pcm in batch:
                self.on_heard(pcm)
