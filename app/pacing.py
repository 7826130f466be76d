"""The one 20 ms clock: every holder of a live audio stream that must never starve gets `tick(now)` from it.

One timer per event loop for all of them (the RTP relays towards Asterisk, the Telegram calls towards NTgCalls),
instead of one task per stream. A holder sends silence from `tick` when its live audio has stopped.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Protocol

TICK_S = 0.020
RESYNC_AFTER_S = 0.1  # fell this far behind (a stalled loop): start afresh instead of bursting


class Ticking(Protocol):
    def tick(self, now: float) -> None:
        """`now` is time.monotonic() at this tick."""


class MediaClock:
    _per_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, MediaClock]" = weakref.WeakKeyDictionary()

    def __init__(self) -> None:
        # Sources (audio paced by this clock) tick before fillers (silence when their live audio stopped), so a
        # filler sees this tick's audio already pushed, even when the loop was late.
        self.sources: dict[Ticking, None] = {}
        self.fillers: dict[Ticking, None] = {}
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def shared(cls) -> "MediaClock":
        loop = asyncio.get_running_loop()
        clock = cls._per_loop.get(loop)
        if clock is None:
            clock = cls._per_loop[loop] = cls()
        return clock

    def add(self, holder: Ticking, source: bool = False) -> None:
        (self.sources if source else self.fillers)[holder] = None
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="media-clock")

    def remove(self, holder: Ticking) -> None:
        self.sources.pop(holder, None)
        self.fillers.pop(holder, None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while self.sources or self.fillers:
            now = time.monotonic()
            for holder in [*self.sources, *self.fillers]:
                holder.tick(now)
            next_at += TICK_S
            delay = next_at - loop.time()
            if delay < -RESYNC_AFTER_S:
                next_at, delay = loop.time(), 0.0
            await asyncio.sleep(max(delay, 0.0))
        self._task = None  # a finished task still refers to its loop, which `_per_loop` would then keep for ever
