"""`nativelog.quiet()` against the real NTgCalls binding: WebRTC's verbose lines no longer reach Python, its
warnings still do.

Each probe runs in a fresh process (the threshold is WebRTC's, process-wide) and counts the lines NTgCalls' log
thread hands to the "webrtc" and "ntgcalls" loggers over one call that carries frames.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import ntgcalls
import pytest

from app.telegram import nativelog
from app.telegram.callengine import CallEngine

from tests.telegram.enginepair import connect_pair, feed_then_close, probe_in_child

FRAMES = 50


async def probe(fast_path: bool) -> tuple[int, int]:
    """(lines below WARNING, lines at WARNING or above) handed to Python's logging over one call."""
    levels: Counter[bool] = Counter()
    heard = asyncio.Event()
    loop = asyncio.get_running_loop()
    frames = [0]

    def on_frame(_pcm: bytes, _at: float) -> None:  # on NTgCalls' thread
        frames[0] += 1
        if frames[0] == FRAMES:
            loop.call_soon_threadsafe(heard.set)

    a, b = CallEngine(fast_path=fast_path), CallEngine(fast_path=fast_path)
    for name in ("webrtc", "ntgcalls"):  # what NTgCalls' log thread calls for each line (looked up every time)
        logger = logging.getLogger(name)
        forward = logger.log

        def counted(level: int, msg: object, *args: Any, forward: Any = forward, **kwargs: Any) -> None:
            levels[level >= logging.WARNING] += 1
            forward(level, msg, *args, **kwargs)
        logger.log = counted  # type: ignore[method-assign]
    await connect_pair(a, b, 1, on_frame)
    await feed_then_close(a, b, 1, heard.is_set)
    return levels[False], levels[True]


def run_probe(fast_path: bool) -> tuple[int, int]:
    """(lines below WARNING, lines at WARNING or above), in a fresh process: the threshold is process-wide."""
    return probe_in_child("tests.telegram.test_nativelog", f"probe({fast_path})")


def test_the_binding_hands_every_verbose_line_to_python() -> None:
    """What `nativelog` works around (the path before it). If this fails, NTgCalls no longer logs verbosely by
    default: drop the module."""
    below, _ = run_probe(fast_path=False)
    assert below >= 200, f"only {below} lines below WARNING"


def test_quieted_webrtc_hands_on_warnings_only() -> None:
    below, above = run_probe(fast_path=True)
    assert below == 0, f"{below} lines below WARNING still reached Python"
    assert above >= 1, "no warning reached Python: the sink itself is gone"


def test_the_symbols_are_read_from_the_module() -> None:
    values = nativelog.symbol_values(ntgcalls.__file__, nativelog._NAMES)
    assert set(values) == set(nativelog._NAMES)


def test_a_file_without_a_symbol_table_is_refused_clearly(tmp_path: Path) -> None:
    not_elf = tmp_path / "x.so"
    not_elf.write_bytes(b"not an ELF file at all" * 4)
    with pytest.raises(nativelog.NoSymbols, match="not a 64-bit"):
        nativelog.symbol_values(str(not_elf), nativelog._NAMES)
    with pytest.raises(nativelog.NoSymbols, match="no symbol"):
        nativelog.symbol_values(sys.executable, (b"no_such_symbol_anywhere",))
