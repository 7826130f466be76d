"""A call's setup (INVITE→RequestCall) is not held back by other calls: creates go before other calls' steps
waiting for their turn (`callengine.Turns`), one step at a time, and calls placed at once share one request for
Telegram's DH config. Real NTgCalls; Telegram through the simulator."""

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
from app.telegram.sim.network import TIMEOUT

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
        async with turns.turn():  # another call's slow step (its connect_p2p, ~36 ms p50) has the turn
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


async def test_steps_go_one_at_a_time_creates_first() -> None:
    """Whatever the mix, and with waiters cancelled before, while and after they are granted the turn."""
    turns = callengine.Turns()
    running: list[bool] = []
    rng = random.Random(12)

    async def step(first: bool) -> None:
        async with turns.turn(first):
            running.append(first)
            assert len(running) == 1, "two steps at once"
            for _ in range(rng.randint(0, 3)):
                await asyncio.sleep(0)
            running.pop()

    tasks = [asyncio.ensure_future(step(rng.random() < 0.5)) for _ in range(200)]
    for _ in range(40):  # cancel some waiting, some in their step, some just granted (same loop pass)
        await asyncio.sleep(0)
        rng.choice(tasks).cancel()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), STEP_TIMEOUT_S)
    assert not turns._waiting and not running
    async with turns.turn():  # and the turn is free again
        pass


async def test_a_waiter_cancelled_as_the_turn_comes_to_it_hands_it_on() -> None:
    turns = callengine.Turns()
    holder = turns.turn()
    await holder.__aenter__()
    waiter = asyncio.ensure_future(turns.turn().__aenter__())
    await _until(lambda: len(turns._waiting) == 1)
    waiter.cancel()  # cancelled, not yet resumed, when the holder hands the turn on in the same loop pass
    await holder.__aexit__(None, None, None)
    await asyncio.gather(waiter, return_exceptions=True)
    async with turns.turn(first=True):  # the turn is free: not held by the cancelled waiter
        pass


async def test_creates_waiting_go_before_other_steps_waiting() -> None:
    turns = callengine.Turns()
    order: list[str] = []

    async def step(name: str, first: bool) -> None:
        async with turns.turn(first):
            order.append(name)

    async with turns.turn():
        tasks = [asyncio.ensure_future(step("stop", False)), asyncio.ensure_future(step("connect", False))]
        await _until(lambda: len(turns._waiting) == 2)
        tasks.append(asyncio.ensure_future(step("create", True)))
        await _until(lambda: len(turns._waiting) == 3)
    await asyncio.gather(*tasks)
    assert order == ["create", "stop", "connect"]


async def test_telegram_is_asked_for_its_dh_config_once_for_calls_placed_at_once(
        gateway: TelegramAccount, make_phone: PhoneFactory, network: SimNetwork) -> None:
    def asked() -> int:
        return sum(user == gateway.me.id and name == "messages.GetDhConfig" for user, name in network.requests)

    phones = [await make_phone(behaviour=Behaviour(answer="no_answer")) for _ in range(4)]
    await _until(lambda: asked() == 1)  # the account asks once at start
    gateway._dh, gateway._dh_at = None, 0.0  # as if it had never had one (e.g. that request failed)
    calls = await asyncio.gather(*(gateway.call(f"+{phone.user.phone}") for phone in phones))
    try:
        assert asked() == 2, f"Telegram was asked {asked() - 1} times for its DH config (4 calls placed at once)"
    finally:
        for call in calls:
            await call.hangup(DiscardReason.HANGUP)


async def test_a_call_does_not_wait_while_an_old_dh_config_is_renewed(
        gateway: TelegramAccount, make_phone: PhoneFactory, network: SimNetwork) -> None:
    """Once an hour the config is asked again; the call that finds it old is placed with the old one meanwhile."""
    phone = await make_phone(behaviour=Behaviour(answer="no_answer"))
    await _until(lambda: gateway._dh is not None)
    network.inject("messages.GetDhConfig", TIMEOUT, user_id=gateway.me.id)  # Telegram takes its time to answer
    gateway._dh_at = 0.0  # an hour old
    call = await asyncio.wait_for(gateway.call(f"+{phone.user.phone}"), STEP_TIMEOUT_S)
    try:
        assert (gateway.me.id, "phone.RequestCall") in network.requests
        assert gateway._dh_request is not None and not gateway._dh_request.done(), "the renewal is not in flight"
    finally:
        await call.hangup(DiscardReason.HANGUP)
