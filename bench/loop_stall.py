"""The event loop's longest stall while a burst of call records is written (docs/decisions.md, "Database calls
off the event loop"): each record written on the loop (as before) or in a thread (as CallSession.close does).

    python -m bench.loop_stall [--records 200] [--calls 20]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from app.store.callrecord import CallRecord
from app.store.db import Database


async def burst(db: Database, records: int, calls: int, in_thread: bool) -> float:
    """Write `records` call records from `calls` concurrent tasks; returns the loop's longest stall (ms)."""
    stalls: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:  # what a 20 ms media clock sees: how late each 1 ms tick is
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(0.001)
            stalls.append((loop.time() - before - 0.001) * 1000)

    async def call(n: int) -> None:
        for i in range(records // calls):
            record = CallRecord(direction="sip-to-telegram", line="bench", dialled=f"{n}-{i}", result_code=200)
            if in_thread:
                await asyncio.to_thread(db.add_or_hold, record)
            else:
                db.add_or_hold(record)
            await asyncio.sleep(0)

    tick = asyncio.create_task(ticker())
    await asyncio.gather(*(call(n) for n in range(calls)))
    stop.set()
    await tick
    return max(stalls)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        db = Database(f"sqlite:///{Path(directory) / 'bench.db'}")
        for in_thread in (False, True, False, True):
            started = time.perf_counter()
            worst = await burst(db, args.records, args.calls, in_thread)
            print(f"{'thread' if in_thread else 'on loop'}: {args.records} records in "
                  f"{time.perf_counter() - started:.2f} s, longest loop stall {worst:.1f} ms")
        db.close()


if __name__ == "__main__":
    asyncio.run(main())
