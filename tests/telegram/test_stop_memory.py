"""Stopping NTgCalls calls must not touch memory NTgCalls has freed.

NTgCalls 3.0.5's close destroys a call's incoming audio channel and then its webrtc::Call in one task on its
worker thread, while the receive stream's removal from the Call's RTP demuxer was posted to its network thread:
that removal then runs on the destroyed demuxer (app/telegram/callengine.py, `_NO_MEDIA`). Freed memory usually
still holds its old bytes, so the stress (bench/teardown_stress.py) crashed only now and then. glibc's
MALLOC_PERTURB_ fills freed memory with junk at once, which turns every such use into a crash: the calls run in a
child process with it set.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from tests.telegram.echoworld import EchoWorld

ROOT = Path(__file__).resolve().parents[2]
USERS = 2


async def hang_up_connected_calls(rounds: int) -> None:
    """Call USERS echoing users at once, each call connected (media flowing both ways), then hang up from
    alternating sides; every NTgCalls call on both sides is stopped before this returns."""
    world = await EchoWorld.start(USERS)
    for round_ in range(rounds):
        calls = await world.call_everyone()
        await asyncio.gather(*(call.wait_connected(10) for call in calls))
        await world.hang_up(calls, by_people=bool(round_ % 2))
    engines = [world.gateway.engine] + [phone.account.engine for phone in world.phones if phone.account]
    for engine in engines:
        if engine is not None:
            await engine.close()  # waits for the stops still running in the background
    await world.stop()


def test_stopping_connected_calls_touches_no_freed_memory() -> None:
    code = ("import asyncio; from tests.telegram.test_stop_memory import hang_up_connected_calls; "
            "asyncio.run(hang_up_connected_calls(6)); print('all stopped')")
    env = {**os.environ, "MALLOC_PERTURB_": "165"}
    out = subprocess.run([sys.executable, "-X", "faulthandler", "-c", code], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-3000:]}"
    assert out.stdout.split()[-2:] == ["all", "stopped"]
