"""RSS of a recorded call over time: the recorder (app/media/recorder.py) fed in real time as a call feeds it.

Both sides at once, as in a call: the SIP side's 20 ms pieces from the asyncio loop, the Telegram side's 10 ms
frames from a thread of their own (NTgCalls' thread in a call), each a tone. RSS (/proc/self/status VmRSS) is
printed every 10 s; the file is decoded at the end to check its length. It does not run Asterisk or NTgCalls: it
measures what recording adds to a call, which is the part that could grow with the call's length.

    .venv/bin/python bench/record_soak.py --minutes 10
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile

from app.media.recorder import CallRecorder

RATE = 8000


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def tone(hz: float, ms: int) -> bytes:
    t = np.arange(RATE * ms // 1000) / RATE
    return (np.sin(2 * np.pi * hz * t) * 0.3 * 32767).astype("<i2").tobytes()


async def main(minutes: float) -> None:
    path = Path(tempfile.mkdtemp()) / "soak.ogg"
    recorder = CallRecorder(path, RATE)
    seconds = minutes * 60
    stop = threading.Event()

    def telegram_side() -> None:
        frame, start, n = tone(600, 10), time.monotonic(), 0
        while not stop.is_set():
            recorder.from_telegram(frame, time.perf_counter())
            n += 1
            time.sleep(max(0.0, start + n * 0.01 - time.monotonic()))

    thread = threading.Thread(target=telegram_side)
    thread.start()
    piece, start, n = tone(1000, 20), time.monotonic(), 0
    samples: list[tuple[float, int]] = []
    print(f"{'t (s)':>6} {'RSS (MiB)':>9} {'file (KiB)':>10}")
    while time.monotonic() - start < seconds:
        recorder.from_sip(piece)
        n += 1
        if n % 500 == 0:
            samples.append((time.monotonic() - start, rss_kib()))
            print(f"{samples[-1][0]:6.0f} {samples[-1][1] / 1024:9.1f} {path.stat().st_size / 1024:10.0f}", flush=True)
        await asyncio.sleep(max(0.0, start + n * 0.02 - time.monotonic()))
    stop.set()
    thread.join()
    length = recorder.close()
    info = soundfile.info(str(path))
    first, last = samples[min(2, len(samples) - 1)][1], samples[-1][1]
    print(f"recorded {length:.1f} s for {seconds:.0f} s of call; decoded {info.duration:.1f} s; "
          f"{path.stat().st_size / 1024:.0f} KiB; dropped {recorder.dropped} frames; "
          f"RSS from 30 s to the end: {first / 1024:.1f} -> {last / 1024:.1f} MiB")
    path.unlink()
    path.parent.rmdir()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    asyncio.run(main(parser.parse_args().minutes))
