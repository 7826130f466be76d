"""A call's audio, both parties mixed, encoded to OGG/Opus (libsndfile through `soundfile`) while the call runs.

Frames arrive from two places: the SIP side's on the event loop, the Telegram side's on NTgCalls' own thread.
Neither may block, so `feed` only puts the frame on a bounded queue; a writer thread of the recorder's own places
each frame on a timeline by when it arrived (a side that goes quiet leaves silence, not a shorter file), mixes
the two sides and hands the encoder everything older than `LAG_S`. Memory holds at most the queue and `LAG_S` of
audio, whatever the call's length."""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path

import numpy as np
import soundfile

log = logging.getLogger(__name__)

SIDES = ("sip", "telegram")
LAG_S = 0.3  # audio younger than this stays in memory: the other side's frame for that moment may still come
GAP_S = 0.2  # a side this far behind the clock stopped sending: its next frame starts after silence
QUEUE_FRAMES = 1000  # 5-10 s of both sides; more means the writer is stuck and frames are dropped (and counted)


class CallRecorder:
    def __init__(self, path: Path, rate: int) -> None:
        self.path = path
        self.rate = rate
        self.dropped = 0
        self.error: str | None = None
        self._queue: queue.Queue[tuple[int, float, bytes] | None] = queue.Queue(QUEUE_FRAMES)
        self._file = soundfile.SoundFile(path, "w", samplerate=rate, channels=1, format="OGG", subtype="OPUS")
        self._started = time.monotonic()
        self._written = 0  # samples handed to the encoder
        self._mix = np.zeros(0, np.int32)  # samples from _written on
        self._cursor = [0, 0]  # per side: where its next frame goes, in samples from the start
        self._thread = threading.Thread(target=self._run, name=f"recorder {path.name}", daemon=True)
        self._thread.start()

    def feed(self, side: str, pcm: bytes) -> None:
        """Mono s16le at `rate` from one side; any thread, never blocks."""
        try:
            self._queue.put_nowait((SIDES.index(side), time.monotonic(), pcm))
        except queue.Full:
            self.dropped += 1

    def from_sip(self, pcm: bytes, _posted_at: float | None = None) -> None:
        self.feed("sip", pcm)

    def from_telegram(self, pcm: bytes, _posted_at: float | None = None) -> None:
        self.feed("telegram", pcm)

    def close(self) -> float:
        """Write what is left and finish the file (blocks for the encoder's tail); the recording's seconds."""
        self._queue.put(None)
        self._thread.join()
        if self.dropped:
            log.warning("recording %s: %d frames dropped (the encoder fell behind)", self.path.name, self.dropped)
        return self._written / self.rate

    # --- the writer thread ---------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                try:
                    item = self._queue.get(timeout=0.1)
                except queue.Empty:
                    item = ()  # type: ignore[assignment]
                if item is None:
                    break
                if item:
                    self._place(*item)
                self._flush(int((time.monotonic() - self._started - LAG_S) * self.rate))
            self._flush(max(self._cursor))
        except Exception as exc:  # noqa: BLE001 - a full disk loses the recording, never the call
            self.error = str(exc)
            log.error("recording %s failed: %s", self.path.name, exc)
            while self._queue.get() is not None:
                pass
        finally:
            self._file.close()

    def _place(self, side: int, arrived: float, pcm: bytes) -> None:
        samples = np.frombuffer(pcm, "<i2")
        now_at = int((arrived - self._started) * self.rate) - len(samples)
        start = self._cursor[side]
        if start < now_at - GAP_S * self.rate:
            start = now_at
        start = max(start, self._written)
        end = start + len(samples)
        self._cursor[side] = end
        if end - self._written > len(self._mix):
            self._mix = np.concatenate([self._mix, np.zeros(end - self._written - len(self._mix), np.int32)])
        self._mix[start - self._written : end - self._written] += samples

    def _flush(self, upto: int) -> None:
        count = upto - self._written
        if count <= 0:
            return
        if count > len(self._mix):  # neither side sent anything for a while: silence
            self._mix = np.concatenate([self._mix, np.zeros(count - len(self._mix), np.int32)])
        self._file.write(np.clip(self._mix[:count], -32768, 32767).astype(np.int16))
        self._mix = self._mix[count:]
        self._written += count
        for side in range(len(self._cursor)):
            self._cursor[side] = max(self._cursor[side], self._written)
