"""CPU cost of connected calls, measured on this process (both legs of each call run here)."""

from __future__ import annotations

import asyncio
import time

from app.telegram.account import TelegramAccount
from app.telegram.sim import Behaviour, CallAudio, Tone

from tests.telegram.conftest import PhoneFactory

CALLS = 4
SECONDS = 4.0


async def cpu_share(seconds: float) -> float:
    """Fraction of one core this process used (all threads) while the loop ran for `seconds`."""
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)  # the measurement window itself, not a stand-in for an event
    return (time.process_time() - cpu0) / (time.monotonic() - wall0)


async def test_cpu_per_connected_call(gateway: TelegramAccount, make_phone: PhoneFactory) -> None:
    idle = await cpu_share(1.0)
    calls = []
    for i in range(CALLS):
        await make_phone(f"load{i}", Behaviour(tone_hz=440 + 110 * i))
        call = await gateway.call(f"@load{i}")
        CallAudio(call, source=Tone(1000))
        calls.append(call)
    await asyncio.gather(*(c.wait_connected(10) for c in calls))
    busy = await cpu_share(SECONDS)
    per_call = (busy - idle) / CALLS
    print(f"\nCPU: idle {idle:.1%}, {CALLS} connected calls {busy:.1%} of one core "
          f"=> {per_call:.2%} per call (gateway leg + simulated user leg)")
    assert all(c.state.value == "connected" for c in calls)
    assert per_call < 0.25, "a connected call (two legs) costs more than 25 % of a core"
    for call in calls:
        await call.hangup()
