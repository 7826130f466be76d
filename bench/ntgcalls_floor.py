"""What NTgCalls alone costs per call leg, driven exactly as tgtrunk drives it: the floor under tgtrunk's CPU.

    .venv/bin/python bench/ntgcalls_floor.py [--calls 10] [--seconds 15] [--path fast|old]
    .venv/bin/python bench/ntgcalls_floor.py --calls 10 --compare 3   # old and fast path side by side: the ratio

N P2P calls over loopback between two `CallEngine`s (the gateway's own wrapper of one NTgCalls each) in this one
process, no Telegram, no SIP, no RTP: each leg sends a tone in 10 ms external frames paced every 20 ms (as
`PrivateCall` does) and receives the other leg's frames through the same batched callback tgtrunk uses.
Prints this process's CPU (all threads, % of one core) per call leg and the frames each leg received.
`--path old` drives NTgCalls as before issue 12 (`CallEngine(fast_path=False)`); `--compare N` runs N rounds of
each path, alternating, each in a fresh process, and prints both medians and their ratio (fast / old).
`--burst` sets all calls up at once instead (frames flowing from each create on) and times their setup.
`--rate 48000` runs both engines' EXTERNAL source and PLAYBACK at that rate (a tone made at it, no resampling in
Python): what NTgCalls saves when it need not resample (bench/README.md, "tgtrunk's own CPU").
`--audio` chooses what each leg says: a clean tone (the default, what the other benches carry), white noise, digital
silence, or `--compare-audio N`: N rounds of each, alternating, with the medians side by side. NTgCalls' Opus encoder
costs more for noise and silence than for a clean tone (bench/README.md, "What a call carries changes its cost").
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import random
import re
import statistics
import subprocess
import sys
import time
from array import array
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ntgcalls  # noqa: E402
from pyrogram.crypto.prime import CURRENT_DH_PRIME  # noqa: E402

from app.telegram.callengine import FRAME_10MS, SAMPLE_RATE, CallMedia, CallEngine, protocol  # noqa: E402

DH_P = CURRENT_DH_PRIME.to_bytes(256, "big")


AUDIO = ("tone", "noise", "silence")


def tone(hz: float, seconds: float, rate: int = SAMPLE_RATE) -> bytes:
    n = int(rate * seconds)
    return array("h", (int(8000 * math.sin(2 * math.pi * hz * i / rate)) for i in range(n))).tobytes()


def audio_of(kind: str, seconds: float, rate: int = SAMPLE_RATE) -> bytes:
    """One of AUDIO: a 1 kHz tone (amplitude 8000), white noise of the same RMS, or digital silence."""
    n = int(rate * seconds)
    if kind == "noise":
        rng = random.Random(12)
        spread = 8000 * math.sqrt(3 / 2)  # uniform noise with the tone's RMS (8000 / sqrt 2)
        return array("h", (int(rng.uniform(-spread, spread)) for _ in range(n))).tobytes()
    if kind == "silence":
        return bytes(2 * n)
    return tone(1000, seconds, rate)


class Leg:
    """One side of one call: its engine, its peer id there, frames heard and connection state."""

    def __init__(self, engine: CallEngine, peer_id: int, other: "CallEngine") -> None:
        self.engine, self.peer_id, self.other = engine, peer_id, other
        self.heard = 0
        self.created = False
        self.connected = asyncio.get_running_loop().create_future()
        engine.attach(peer_id, CallMedia(self._signal, self._state, self._frame))

    def _signal(self, data: bytes) -> None:
        asyncio.ensure_future(self.other.signal(self.peer_id, data))

    def _state(self, state: ntgcalls.ConnectionState) -> None:
        if state == ntgcalls.ConnectionState.CONNECTED and not self.connected.done():
            self.connected.set_result(None)

    def _frame(self, pcm: bytes, _posted_at: float) -> None:  # on NTgCalls' thread
        self.heard += len(pcm) // self.engine.frame_bytes


async def connect(caller: Leg, callee: Leg) -> None:
    """The P2P handshake Telegram's servers would relay (FACTS.md), caller first."""
    a, b, peer = caller.engine, callee.engine, caller.peer_id
    await a.create(peer)
    caller.created = True
    await b.create(peer)
    callee.created = True
    g_a_hash = await a.init_exchange(peer, 3, DH_P, os.urandom(256), None)
    g_b = await b.init_exchange(peer, 3, DH_P, os.urandom(256), g_a_hash)
    auth = await a.exchange_keys(peer, g_b, 0)
    await b.exchange_keys(peer, bytes(auth.g_a_or_b), auth.key_fingerprint)
    versions = list(protocol().library_versions)
    await asyncio.gather(a.connect(peer, [], versions, True, None), b.connect(peer, [], versions, True, None))
    await a.attach_playback(peer)
    await b.attach_playback(peer)
    await asyncio.wait_for(asyncio.gather(caller.connected, callee.connected), 20)


async def burst(calls: int, fast: bool) -> None:
    """Set up `calls` calls at once, each leg fed 10 ms frames from its create on (as PrivateCall does): how long
    each call takes from the start to connected, both sides."""
    gateway, users = CallEngine(fast_path=fast), CallEngine(fast_path=fast)
    pairs = [(Leg(gateway, p, users), Leg(users, p, gateway)) for p in range(1, calls + 1)]
    legs = [leg for pair in pairs for leg in pair]
    silence = bytes(FRAME_10MS)

    async def pace() -> None:
        while True:
            for leg in legs:
                if leg.created:
                    leg.engine.push_frame(leg.peer_id, silence)
                    leg.engine.push_frame(leg.peer_id, silence)
            await asyncio.sleep(0.02)

    async def timed(caller: Leg, callee: Leg) -> float:
        await connect(caller, callee)
        return time.monotonic() - started

    pacer = asyncio.ensure_future(pace())
    started = time.monotonic()
    took = sorted(await asyncio.gather(*(timed(c, u) for c, u in pairs)))
    pacer.cancel()
    print(f"path={'fast' if fast else 'old'} calls={calls} burst: setup p50 {1000 * took[len(took) // 2]:.0f} ms, "
          f"max {1000 * took[-1]:.0f} ms")
    await gateway.close()
    await users.close()


def cpu_seconds() -> float:
    return time.process_time()


async def run(calls: int, seconds: float, fast: bool, rate: int = SAMPLE_RATE, kind: str = "tone") -> None:
    gateway, users = CallEngine(fast_path=fast, sample_rate=rate), CallEngine(fast_path=fast, sample_rate=rate)
    legs: list[Leg] = []
    for peer_id in range(1, calls + 1):
        caller, callee = Leg(gateway, peer_id, users), Leg(users, peer_id, gateway)
        await connect(caller, callee)
        legs += [caller, callee]
    print(f"{calls} calls connected ({len(legs)} legs)", file=sys.stderr)
    audio = audio_of(kind, 1.0, rate)
    frame = gateway.frame_bytes
    tick = 2 * frame
    loop = asyncio.get_running_loop()
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    heard0 = [leg.heard for leg in legs]
    next_at, offset = loop.time(), 0
    while time.monotonic() - wall0 < seconds:
        chunk = audio[offset : offset + tick]
        offset = (offset + tick) % (len(audio) - tick)
        for leg in legs:
            leg.engine.push_frame(leg.peer_id, chunk[:frame])
            leg.engine.push_frame(leg.peer_id, chunk[frame:])
        next_at += 0.020
        await asyncio.sleep(max(next_at - loop.time(), 0.0))
    wall = time.monotonic() - wall0
    cpu = cpu_seconds() - cpu0
    frames = sorted((leg.heard - h0) / wall for leg, h0 in zip(legs, heard0))
    print(f"path={'fast' if fast else 'old'} rate={rate} audio={kind} calls={calls} legs={len(legs)} seconds={wall:.1f}: "
          f"CPU {100 * cpu / wall:.1f} % of one core, {100 * cpu / wall / len(legs):.2f} % per leg; frames/s heard per leg: median "
          f"{frames[len(frames) // 2]:.1f}, lowest {frames[0]:.1f} (of 100)")
    await gateway.close()
    await users.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--path", choices=("fast", "old"), default="fast")
    parser.add_argument("--rate", type=int, default=SAMPLE_RATE,
                        help="PCM rate of both engines' EXTERNAL source and PLAYBACK (default %(default)s)")
    parser.add_argument("--audio", choices=AUDIO, default="tone", help="what each leg says (default %(default)s)")
    parser.add_argument("--burst", action="store_true", help="set up all calls at once and time their setup")
    parser.add_argument("--compare", type=int, default=0, metavar="ROUNDS",
                        help="run ROUNDS of each path, alternating, and print the ratio")
    parser.add_argument("--compare-audio", type=int, default=0, metavar="ROUNDS",
                        help="run ROUNDS of each --audio on the fast path, alternating, and print the ratios to tone")
    args = parser.parse_args()
    if args.compare:
        compare(args.calls, args.seconds, args.compare, "path", ("old", "fast"), args.burst)
    elif args.compare_audio:
        compare(args.calls, args.seconds, args.compare_audio, "audio", AUDIO)
    elif args.burst:
        asyncio.run(burst(args.calls, args.path == "fast"))
    else:
        asyncio.run(run(args.calls, args.seconds, args.path == "fast", args.rate, args.audio))
    # The NTgCalls instances are in reference cycles: freed now, not at exit, where NTgCalls' log thread calling
    # into a finalizing interpreter aborts the process (as in bench/teardown_stress.py).
    gc.collect()


def compare(calls: int, seconds: float, rounds: int, option: str, values: tuple[str, ...],
            burst: bool = False) -> None:
    """ROUNDS of each `--option value`, alternating, each in a fresh process: the medians, and each to the first."""
    figure, unit = (r"setup p50 ([0-9.]+) ms", "ms setup p50") if burst else (r"([0-9.]+) % per leg", "% per leg")
    found: dict[str, list[float]] = {value: [] for value in values}
    for _ in range(rounds):
        for value in values:
            out = subprocess.run([sys.executable, __file__, "--calls", str(calls), "--seconds", str(seconds),
                                  f"--{option}", value, *(["--burst"] if burst else [])],
                                 capture_output=True, text=True, check=True).stdout
            print(out.strip(), flush=True)
            found[value].append(float(re.search(figure, out).group(1)))  # type: ignore[union-attr]
    medians = {value: statistics.median(figures) for value, figures in found.items()}
    first = values[0]
    print(f"median over {rounds} rounds ({unit}): " + ", ".join(
        f"{value} {median:.2f}" + ("" if value == first else f" ({value}/{first} = {median / medians[first]:.3f})")
        for value, median in medians.items()))


if __name__ == "__main__":
    main()
