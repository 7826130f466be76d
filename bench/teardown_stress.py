"""Hang calls up during media setup, over and over, to show NTgCalls' teardown does not crash the process.

    .venv/bin/python bench/teardown_stress.py [--rounds 200] [--idle 30]

The gateway's engine calls 4 simulated users (echo) at once, through the simulated Telegram network, in this one
process. Once each call is answered, all 4 are hung up 0-80 ms later (the gateway's side in even rounds, the
users' side in odd ones). `--idle` extra NTgCalls instances sit in the process, as the test suite leaves them;
they made the crash this guards against (docs/decisions.md, "NTgCalls call lifecycles take turns") far likelier.
Exits 0 after all rounds; a crash ends the process with a signal (exit code 134 or 139).
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import gc
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ntgcalls  # noqa: E402

from tests.telegram.echoworld import EchoWorld  # noqa: E402

CALLS = 4


async def run(rounds: int, idle: int) -> None:
    world = await EchoWorld.start(CALLS)
    idle_instances = [ntgcalls.NTgCalls() for _ in range(idle)]
    started = time.monotonic()
    for round_ in range(rounds):
        calls = await world.call_everyone()
        await asyncio.gather(*(call.wait_accepted(5) for call in calls), return_exceptions=True)
        await asyncio.sleep(random.uniform(0.0, 0.08))
        await world.hang_up(calls, by_people=bool(round_ % 2))
        if (round_ + 1) % 20 == 0:
            print(f"{round_ + 1} rounds, {CALLS * (round_ + 1)} calls hung up during setup, "
                  f"{time.monotonic() - started:.0f} s", flush=True)
    await world.stop()
    del idle_instances


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--idle", type=int, default=30, help="extra idle NTgCalls instances in the process")
    args = parser.parse_args()
    faulthandler.enable()
    asyncio.run(run(args.rounds, args.idle))
    # The NTgCalls instances are in reference cycles (their callbacks are bound methods): freed now, while the
    # interpreter still runs, not by the collection at exit, when NTgCalls' log thread calling into Python aborts
    # the process ("FATAL: exception not rethrown", seen once after all rounds had passed).
    gc.collect()
    print("no crash")


if __name__ == "__main__":
    main()
