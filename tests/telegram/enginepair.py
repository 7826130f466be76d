"""Two CallEngines in one process calling each other over loopback, as bench/ntgcalls_floor.py does: the P2P
handshake Telegram's servers would relay, played by the test (FACTS.md)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import ntgcalls
from pyrogram.crypto.prime import CURRENT_DH_PRIME

from app.telegram.callengine import FRAME_10MS, CallEngine, CallMedia, protocol

DH_P = CURRENT_DH_PRIME.to_bytes(256, "big")
ROOT = Path(__file__).resolve().parents[2]


def probe_in_child(module: str, call: str) -> tuple[int, int]:
    """`asyncio.run(call)` with `probe` imported from `module`, in a fresh process (for probes of process-wide
    state: kept thread states, WebRTC's log threshold); the two integers it printed."""
    code = f"import asyncio; from {module} import probe; print(*asyncio.run({call}))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    first, second = map(int, out.stdout.split()[-2:])
    return first, second


def _ignore(_pcm: bytes, _at: float) -> None:
    pass


async def connect_pair(a: CallEngine, b: CallEngine, peer: int,
                       on_frame_b: Callable[[bytes, float], None] = _ignore) -> None:
    """Connect call `peer` from engine `a` to engine `b`; `b` hears `a`'s frames through `on_frame_b` (on
    NTgCalls' thread)."""
    connected = [asyncio.get_running_loop().create_future() for _ in range(2)]

    def media(other: CallEngine, done: "asyncio.Future[None]", on_frame: Callable[[bytes, float], None]) -> CallMedia:
        def state(s: ntgcalls.ConnectionState) -> None:
            if s == ntgcalls.ConnectionState.CONNECTED and not done.done():
                done.set_result(None)
        return CallMedia(lambda data: asyncio.ensure_future(other.signal(peer, data)), state, on_frame)

    a.attach(peer, media(b, connected[0], _ignore))
    b.attach(peer, media(a, connected[1], on_frame_b))
    await a.create(peer)
    await b.create(peer)
    g_a_hash = await a.init_exchange(peer, 3, DH_P, os.urandom(256), None)
    g_b = await b.init_exchange(peer, 3, DH_P, os.urandom(256), g_a_hash)
    auth = await a.exchange_keys(peer, g_b, 0)
    await b.exchange_keys(peer, bytes(auth.g_a_or_b), auth.key_fingerprint)
    versions = list(protocol().library_versions)
    await asyncio.gather(a.connect(peer, [], versions, True, None), b.connect(peer, [], versions, True, None))
    await a.attach_playback(peer)
    await b.attach_playback(peer)
    await asyncio.wait_for(asyncio.gather(*connected), 20)


async def feed_then_close(a: CallEngine, b: CallEngine, peer: int, done: Callable[[], bool]) -> None:
    """Feed `a`'s side of call `peer` silence at NTgCalls' 10 ms pace until `done()`, then stop the call on both
    engines and close them."""
    while not done():
        a.push_frame(peer, bytes(FRAME_10MS))
        await asyncio.sleep(0.01)  # the 10 ms pace NTgCalls' source wants, not a wait for an event
    await a.stop(peer)
    await b.stop(peer)
    await a.close()
    await b.close()
