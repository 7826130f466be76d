from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Awaitable

import pytest

from app.telegram.account import TelegramAccount
from app.telegram.privatecall import PrivateCall
from app.telegram.sim import Behaviour, SimClient, SimNetwork, SimPhone

RING_TIMEOUT = 3.0
IncomingCalls = asyncio.Queue[PrivateCall]


@pytest.fixture
async def network() -> AsyncIterator[SimNetwork]:
    net = SimNetwork(ring_timeout=30.0)
    yield net
    net.close()


@pytest.fixture
async def gateway(network: SimNetwork) -> AsyncIterator[TelegramAccount]:
    user = network.add_user("+15550000001", "Gateway", username="tgtrunk_gw")
    account = TelegramAccount(SimClient("gateway", network, user_id=user.id), ring_timeout=RING_TIMEOUT,
                              rpc_timeout=2.0, rpc_retries=1)
    await account.start()
    yield account
    await account.stop()


@pytest.fixture
def incoming(gateway: TelegramAccount) -> IncomingCalls:
    """The calls the gateway account receives, for a test to take by hand (the account itself keeps none)."""
    queue: IncomingCalls = asyncio.Queue()
    gateway.on_incoming_call = queue.put_nowait
    return queue


PhoneFactory = Callable[..., Awaitable[SimPhone]]


@pytest.fixture
async def make_phone(network: SimNetwork) -> AsyncIterator[PhoneFactory]:
    phones: list[SimPhone] = []
    counter = iter(range(10, 99))

    async def make(username: str | None = None, behaviour: Behaviour | None = None, **user_kw: object) -> SimPhone:
        n = next(counter)
        user = network.add_user(f"+1555000{n:04d}", username.capitalize() if username else f"User{n}",
                                username=username, **user_kw)
        phone = SimPhone(network, user, behaviour or Behaviour())
        await phone.start(ring_timeout=30.0)  # longer than the gateway's: its timers must fire first
        phones.append(phone)
        return phone

    yield make
    for phone in phones:
        await phone.stop()
