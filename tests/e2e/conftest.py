"""Whole calls: the gateway in this process (real bundled Asterisk as its child, real baresip peers),
Telegram played by the simulated network with real NTgCalls media on both ends."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from sqlmodel import select

from app.calls.accounts import Accounts
from app.store.callrecord import CallRecord
from app.gateway import Gateway
from app.settings import load_settings
from app.sip.line import LineRequest, build_line
from app.telegram.account import TelegramAccount
from app.telegram.sim import Behaviour, SimClient, SimNetwork, SimPhone
from tests.conftest import gateway_env
from tests.peers import free_port

GATEWAY_PHONE = "+15550009999"


@dataclass
class SimGateway:
    gateway: Gateway
    network: SimNetwork
    account: TelegramAccount

    @property
    def sip_server(self) -> str:
        return str(self.gateway.settings.sip_bind)

    async def wait_record(self, count: int = 1, timeout: float = 10.0) -> CallRecord:
        """The newest call record, once `count` calls have ended (the record is written at teardown)."""
        async def poll() -> CallRecord:
            while True:
                with self.gateway.db.session() as session:
                    records = list(session.exec(select(CallRecord).order_by(CallRecord.id)))
                if len(records) >= count:
                    return records[-1]
                await asyncio.sleep(0.05)
        return await asyncio.wait_for(poll(), timeout)

    async def add_line(self, name: str, mode: str = "register", **options) -> None:  # type: ignore[no-untyped-def]
        line, _ = build_line(LineRequest(name, mode, **options))
        with self.gateway.db.session() as session:
            session.add(line)
        await self.gateway.lines.sync()


@pytest.fixture
def gateway_extra_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """TGTRUNK_* settings a test wants for its gateway: `@pytest.mark.gateway_env(TGTRUNK_X="…")`, or override
    this fixture in a module (e.g. to use another fixture's value)."""
    marker = request.node.get_closest_marker("gateway_env")
    return dict(marker.kwargs) if marker else {}


@pytest.fixture
async def sim_gateway(asterisk_install, tmp_path: Path, gateway_extra_env: dict[str, str]) -> AsyncIterator[SimGateway]:
    network = SimNetwork(ring_timeout=30.0)
    me = network.add_user(GATEWAY_PHONE, "Gateway", username="tgtrunk_gw")
    account = TelegramAccount(SimClient("gateway", network, user_id=me.id), ring_timeout=4.0, rpc_timeout=2.0,
                              rpc_retries=1)
    await account.start()
    accounts = Accounts()
    accounts.add("main", account)
    env = gateway_env(tmp_path / "gw", free_port(), free_port(), **gateway_extra_env)
    gateway = Gateway(load_settings(env), accounts)
    stop = asyncio.Event()
    runner = asyncio.create_task(gateway.run(stop))
    ready = asyncio.create_task(gateway.supervisor.ready.wait())  # ready: the Stasis app is registered
    done, _ = await asyncio.wait({runner, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if runner in done:
        runner.result()
    assert ready in done, "the gateway did not come up"
    try:
        yield SimGateway(gateway, network, account)
    finally:
        stop.set()
        await asyncio.wait_for(runner, 10)
        await gateway.close()
        network.close()
        shutil.rmtree(gateway.instance.host_dir, ignore_errors=True)


PhoneFactory = Callable[..., Awaitable[SimPhone]]


@pytest.fixture
async def sim_phone(sim_gateway: SimGateway) -> AsyncIterator[PhoneFactory]:
    phones: list[SimPhone] = []
    numbers = iter(range(1, 99))

    async def make(username: str, behaviour: Behaviour | None = None, **user_kw) -> SimPhone:  # type: ignore[no-untyped-def]
        n = next(numbers)
        user_kw.setdefault("last_name", "Sim")
        user = sim_gateway.network.add_user(f"+1555010{n:04d}", username.capitalize(), username=username, **user_kw)
        phone = SimPhone(sim_gateway.network, user, behaviour or Behaviour())
        await phone.start(ring_timeout=30.0)
        phones.append(phone)
        return phone

    yield make
    for phone in phones:
        await phone.stop()
