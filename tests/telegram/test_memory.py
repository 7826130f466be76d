"""An ended call leaves nothing behind in the account: a gateway takes thousands of calls (issue 8, item 8)."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from app.telegram import callengine
from app.telegram.account import TelegramAccount
from app.telegram.privatecall import CallState, PrivateCall
from app.telegram.sim import Behaviour

from tests.telegram.conftest import PhoneFactory
from tests.telegram.test_calls import no_calls_left


async def all_freed(refs: list[weakref.ref[PrivateCall]]) -> None:
    while any(ref() is not None for ref in refs):
        gc.collect()
        await asyncio.sleep(0.05)


async def test_ended_calls_are_freed_both_ways(gateway: TelegramAccount, make_phone: PhoneFactory) -> None:
    """Every incoming call used to stay in an unbounded queue (`TelegramAccount.incoming`) that only tests read."""
    taken: list[weakref.ref[PrivateCall]] = []
    answered: asyncio.Queue[None] = asyncio.Queue()

    async def answer(call: PrivateCall) -> None:  # as the gateway's handler does: answer, then live with the call
        taken.append(weakref.ref(call))
        await call.accept()
        answered.put_nowait(None)
        await call.ended

    gateway.on_incoming_call = answer
    bob = await make_phone("bobby", Behaviour(echo=True, record=False))
    for _ in range(2):
        theirs = await bob.call("@tgtrunk_gw")
        await asyncio.wait_for(answered.get(), 5)
        await theirs.wait_connected(10)
        await theirs.hangup()
        ours = taken[-1]()
        assert ours is not None
        await asyncio.wait_for(ours.ended, 5)
        del ours, theirs
    for _ in range(2):
        call = await gateway.call("@bobby")
        await call.wait_connected(10)
        await call.hangup()
        taken.append(weakref.ref(call))
        del call
    await asyncio.wait_for(no_calls_left(gateway, bob), 10)

    await asyncio.wait_for(all_freed(taken), 5)
    assert gateway.calls == {}


async def test_a_full_ntgcalls_instance_is_destroyed_once_its_last_call_is_stopped(
        gateway: TelegramAccount, make_phone: PhoneFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """NTgCalls keeps part of every call it ran until its instance is destroyed (bench/README.md, "Memory per
    call"): after `calls_per_instance` calls the engine puts new calls on a fresh instance and destroys the full
    one once the calls still on it have ended, without disturbing them."""
    monkeypatch.setattr(callengine, "RETIRE_AFTER_S", 0.5)
    engine = gateway.engine
    engine.calls_per_instance = 2
    first = weakref.ref(engine.ntg)
    for n in range(3):
        await make_phone(f"mem{n}", Behaviour(echo=True, record=False))
    a = await gateway.call("@mem0")
    b = await gateway.call("@mem1")
    await asyncio.gather(a.wait_connected(10), b.wait_connected(10))
    assert engine.ntg is not first()  # full after two calls: the next goes to a fresh instance
    heard = asyncio.Event()
    frames = 0

    def count(_pcm: bytes, _at: float) -> None:  # mem1 echoes what the gateway sends it (silence from the clock)
        nonlocal frames
        frames += 1
        if frames >= 50:
            gateway.engine.loop.call_soon_threadsafe(heard.set)

    await a.hangup()
    await engine.release(a.peer.id)
    c = await gateway.call("@mem2")
    await c.wait_connected(10)
    b.on_audio = count  # b is still on the full instance and still carries audio both ways
    await asyncio.wait_for(heard.wait(), 5)
    assert first() is not None and b.state is CallState.CONNECTED

    await b.hangup()
    await engine.release(b.peer.id)

    async def destroyed() -> None:
        while first() is not None:
            gc.collect()
            await asyncio.sleep(0.05)
    await asyncio.wait_for(destroyed(), 5)
    assert c.state is CallState.CONNECTED
    await c.hangup()
    again = await gateway.call("@mem0")  # a user whose call was on the destroyed instance is called again
    await again.wait_connected(10)
    await again.hangup()
