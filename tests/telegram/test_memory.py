"""An ended call leaves nothing behind in the account: a gateway takes thousands of calls (issue 8, item 8)."""

from __future__ import annotations

import asyncio
import gc
import weakref

from app.telegram.account import TelegramAccount
from app.telegram.privatecall import PrivateCall
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
