"""What a simulator process hosts: the network, the gateway's account, the simulated people, and their commands.

People: `start_demo()` = the `DemoTelegram` people; `start_bench(n, "echo" | "tone")` = `bench0001`… with phones
+1555020NNNN that answer, then echo what they hear, or play a 1 kHz tone (-12 dBFS). All count what they hear
(`PhoneStats`) without keeping the PCM, so memory stays flat over a long benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from app.telegram.sim.demo import GATEWAY_PHONE, DemoTelegram, add_gateway_user
from app.telegram.sim.network import SimNetwork, SimUser
from app.telegram.sim.phone import Behaviour, SimPhone

BENCH_TONE_HZ = 1000
BENCH_BEHAVIOURS = {
    "echo": Behaviour(echo=True, record=False),
    "tone": Behaviour(tone_hz=BENCH_TONE_HZ, tone_dbfs=-12, record=False),
}


def bench_username(n: int) -> str:
    return f"bench{n:04d}"


def bench_phone(n: int) -> str:
    return f"+1555020{n:04d}"


@dataclass
class SimWorld:
    ring_timeout: float = 60.0  # the people's; the network's own ring timeout is 30 s longer
    network: SimNetwork = field(default_factory=SimNetwork)
    phones: dict[str, SimPhone] = field(default_factory=dict)  # by username
    gateway: SimUser | None = None

    def __post_init__(self) -> None:
        self.network.ring_timeout = self.ring_timeout + 30
        self.gateway = add_gateway_user(self.network)

    async def start_demo(self) -> None:
        demo = DemoTelegram(ring_timeout=self.ring_timeout, network=self.network)
        await demo.start_world()
        self.phones.update(demo.phones)

    async def start_bench(self, count: int, behaviour: str) -> None:
        template = BENCH_BEHAVIOURS[behaviour]
        for n in range(1, count + 1):
            name = bench_username(n)
            user = self.network.add_user(bench_phone(n), "Bench", f"{n:04d}", username=name)
            phone = SimPhone(self.network, user, replace(template))
            self.phones[name] = await phone.start(self.ring_timeout + 30)

    async def stop(self) -> None:
        for phone in self.phones.values():
            await phone.stop()
        self.network.close()

    # --- commands (over `SimServer`'s command channel) -------------------------------------------

    async def command(self, request: dict[str, Any]) -> Any:
        cmd = request.get("cmd")
        if cmd == "stats":
            return [phone.stats.to_dict() for phone in self.phones.values()]
        if cmd == "info":
            return self.info()
        if cmd == "call":
            await self.phone(str(request["user"])).call(GATEWAY_PHONE)
            return True
        if cmd == "last_code":
            return self.network.last_code(str(request["phone"]))
        raise LookupError(f"unknown command {cmd!r}")

    def info(self) -> dict[str, Any]:
        assert self.gateway is not None
        return {"gateway_user_id": self.gateway.id, "gateway_phone": GATEWAY_PHONE,
                "gateway_username": self.gateway.username, "people": sorted(self.phones)}

    def phone(self, user: str) -> SimPhone:
        key = user.lstrip("@")
        if key in self.phones:
            return self.phones[key]
        digits = user.lstrip("+")
        for phone in self.phones.values():
            if phone.user.phone == digits:
                return phone
        raise LookupError(f"no simulated person {user!r}")
