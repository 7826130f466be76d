"""A gateway account calling simulated people who answer and echo, all in one process through the simulated
network: what `test_stop_memory` and bench/teardown_stress.py hang calls up on, from alternating sides."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from app.telegram.account import TelegramAccount
from app.telegram.privatecall import PrivateCall
from app.telegram.sim import Behaviour, SimClient, SimNetwork, SimPhone


@dataclass
class EchoWorld:
    network: SimNetwork
    gateway: TelegramAccount
    phones: list[SimPhone]

    @classmethod
    async def start(cls, people: int) -> "EchoWorld":
        network = SimNetwork(ring_timeout=30.0)
        me = network.add_user("+15550000001", "Gateway", username="tgtrunk_gw")
        gateway = TelegramAccount(SimClient("gateway", network, user_id=me.id), ring_timeout=5.0, rpc_timeout=2.0,
                                  rpc_retries=1)
        await gateway.start()
        phones = []
        for n in range(people):
            user = network.add_user(f"+155500020{n:02d}", f"User{n}", username=f"user{n}")
            phones.append(await SimPhone(network, user, Behaviour(echo=True, record=False)).start(ring_timeout=30.0))
        return cls(network, gateway, phones)

    async def call_everyone(self) -> list[PrivateCall]:
        return [await self.gateway.call(f"@user{n}") for n in range(len(self.phones))]

    async def hang_up(self, calls: list[PrivateCall], by_people: bool) -> None:
        """From the people's side or the gateway's; returns once both ends of every call ended."""
        if by_people:
            await asyncio.gather(*(phone.calls[-1].hangup() for phone in self.phones))
        else:
            await asyncio.gather(*(call.hangup() for call in calls))
        theirs = [phone.calls[-1] for phone in self.phones]
        await asyncio.gather(*(asyncio.wait_for(call.ended, 5) for call in calls + theirs))

    async def stop(self) -> None:
        for phone in self.phones:
            await phone.stop()
        await self.gateway.stop()
        self.network.close()
