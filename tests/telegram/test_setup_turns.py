"""A call's setup (INVITE→RequestCall) is not held back by other calls: creates of different calls go together
and before other calls' steps waiting for their turn (`callengine.Turns`), and calls placed at once share one
request for Telegram's DH config. Real NTgCalls; Telegram through the simulator."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from app.telegram import callengine
from app.telegram.account import TelegramAccount
from app.telegram.callengine import CallEngine, CallMedia
from app.telegram.privatecall import DiscardReason
from app.telegram.sim import Behaviour, SimNetwork

from tests.telegram.conftest import PhoneFactory

STEP_TIMEOUT_S = 5.0  # a step of NTgCalls' that has not come back by then is held back


def _media() -> CallMedia:
    return CallMedia(on_signaling=lambda _data: None, on_state=lambda _state: None)


async def _until(condition: Callable[[], bool], timeout: float = STEP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.002)


async def test_a_call_is_created_before_other_calls_steps_that_wait_for_their_turn() -> None:
    engine = CallEngine()
    try:
        engine.attach(1, _media())
        await engine.create(1)
        turns = callengine._turns()
        async with turns.alone():  # another call's slow step (its connect_p2p, ~36 ms p50) has the turn
            # Whether NTgCalls had been asked to create call 2 by the time call 1 was stopped (noted as the stop
            # forgets its call, right after NTgCalls stopped it)
            created_first: list[bool] = []
            forget = engine._forget

            def noting_forget(peer_id: int) -> object:
                created_first.append(2 in engine._instance_of)
                return forget(peer_id)
            engine._forget = noting_forget  # type: ignore[method-assign]
            stopped = engine.release(1)  # call 1's stop now waits for the turn
            await _until(lambda: len(turns._waiting) == 1)
            engine.attach(2, _media())
            created = asyncio.ensure_future(engine.create(2))
            await _until(lambda: len(turns._waiting) == 2)
        await asyncio.wait_for(created, STEP_TIMEOUT_S)
        await asyncio.wait_for(stopped, STEP_TIMEOUT_S)
        assert created_first == [True], "call 2 was created only after call 1's stop, which asked for the turn first"
    finally:
        await engine.close()


async def test_calls_are_created_while_another_call_is_being_created() -> None:
    engine = CallEngine()
    try:
        async with callengine._turns().together():  # another call being created
            engine.attach(2, _media())
            await asyncio.wait_for(engine.create(2), STEP_TIMEOUT_S)
    finally:
        await engine.close()


async def test_steps_that_go_alone_never_run_beside_another_step() -> None:
    turns = callengine.Turns()
    running = {"together": 0, "alone": 0}
    seen_together = 0
    rng = random.Random(12)

    async def step(together: bool) -> None:
        nonlocal seen_together
        async with turns.together() if together else turns.alone():
            running["together" if together else "alone"] += 1
            assert running["alone"] <= 1 and not (running["alone"] and running["together"])
            seen_together = max(seen_together, running["together"])
            for _ in range(rng.randint(0, 3)):
                await asyncio.sleep(0)
            running["together" if together else "alone"] -= 1

    tasks = [asyncio.ensure_future(step(rng.random() < 0.5)) for _ in range(200)]
    for task in rng.sample(tasks, 20):  # callers cancelled while waiting or in their step hand the turn on
        task.cancel()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), STEP_TIMEOUT_S)
    assert seen_together > 1 and not turns._waiting and running == {"together": 0, "alone": 0}
    async with turns.alone():  # and the turn is free again
        pass


async def test_telegram_is_asked_for_its_dh_config_once_for_calls_placed_at_once(
        gateway: TelegramAccount, make_phone: PhoneFactory, network: SimNetwork) -> None:
    phones = [await make_phone(behaviour=Behaviour(answer="no_answer")) for _ in range(4)]
    calls = await asyncio.gather(*(gateway.call(f"+{phone.user.phone}") for phone in phones))
    try:
        asked = [name for user, name in network.requests if user == gateway.me.id and name == "messages.GetDhConfig"]
        assert len(asked) == 1, f"Telegram was asked {len(asked)} times for its DH config (4 calls placed at once)"
    finally:
        for call in calls:
            await call.hangup(DiscardReason.HANGUP)
