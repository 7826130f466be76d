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

from app.telegram.account import TelegramAccount
from app.telegram.sim import Behaviour, SimClient, SimNetwork, SimPhone

ROOT = Path(__file__).resolve().parents[2]
USERS = 2


async def hang_up_connected_calls(rounds: int) -> None:
    """Call USERS echoing users at once, each call connected (media flowing both ways), then hang up from
    alternating sides; every NTgCalls call on both sides is stopped before this returns."""
    network = SimNetwork(ring_timeout=30.0)
    me = network.add_user("+15550000001", "Gateway", username="tgtrunk_gw")
    gateway = TelegramAccount(SimClient("gateway", network, user_id=me.id), ring_timeout=5.0, rpc_timeout=2.0,
                              rpc_retries=1)
    await gateway.start()
    phones = []
    for n in range(USERS):
        user = network.add_user(f"+155500020{n:02d}", f"User{n}", username=f"user{n}")
        phones.append(await SimPhone(network, user, Behaviour(echo=True, record=False)).start(ring_timeout=30.0))
    for round_ in range(rounds):
        calls = [await gateway.call(f"@user{n}") for n in range(USERS)]
        await asyncio.gather(*(call.wait_connected(10) for call in calls))
        if round_ % 2:
            await asyncio.gather(*(phone.calls[-1].hangup() for phone in phones))
        else:
            await asyncio.gather(*(call.hangup() for call in calls))
        theirs = [phone.calls[-1] for phone in phones]
        await asyncio.gather(*(asyncio.wait_for(call.ended, 5) for call in calls + theirs))
    engines = [gateway.engine] + [phone.account.engine for phone in phones if phone.account]
    for engine in engines:
        if engine is not None:
            await engine.close()  # waits for the stops still running in the background
    for phone in phones:
        await phone.stop()
    await gateway.stop()
    network.close()


def test_stopping_connected_calls_touches_no_freed_memory() -> None:
    code = ("import asyncio; from tests.telegram.test_stop_memory import hang_up_connected_calls; "
            "asyncio.run(hang_up_connected_calls(6)); print('all stopped')")
    env = {**os.environ, "MALLOC_PERTURB_": "165"}
    out = subprocess.run([sys.executable, "-X", "faulthandler", "-c", code], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-3000:]}"
    assert out.stdout.split()[-2:] == ["all", "stopped"]
