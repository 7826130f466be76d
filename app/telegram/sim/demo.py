"""The demo world of `tgtrunk serve --simulate-telegram`: a gateway account and a few people to call.

| who | phone | username | what they do |
|---|---|---|---|
| Echo Test | +15550100001 | @echo | answers and sends back what it hears |
| Tone Test | +15550100002 | @tone | answers and plays a 600 Hz tone |
| Busy Bee | +15550100003 | @busy | is always busy (SIP 486) |
| Private Person | +15550100004 | @private | allows calls from nobody (SIP 403) |
| Slow Sam | +15550100005 | @noanswer | never answers (SIP 480 after the ring timeout) |
The gateway account itself is "Demo Gateway", +15550100000, @tgtrunk_demo.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.telegram.account import TelegramAccount
from app.telegram.sim.network import Privacy, SimNetwork, SimUser
from app.telegram.sim.phone import Behaviour, SimPhone
from app.telegram.sim.transport import SimClient

GATEWAY_PHONE = "+15550100000"
GATEWAY_USERNAME = "tgtrunk_demo"
PEOPLE = (
    ("+15550100001", "Echo", "Test", "echo", Behaviour(echo=True, record=False), Privacy()),
    ("+15550100002", "Tone", "Test", "tone", Behaviour(tone_hz=600, record=False), Privacy()),
    ("+15550100003", "Busy", "Bee", "busy", Behaviour(answer="busy", record=False), Privacy()),
    ("+15550100004", "Private", "Person", "private", Behaviour(record=False), Privacy(calls="nobody")),
    ("+15550100005", "Slow", "Sam", "noanswer", Behaviour(answer="no_answer", record=False), Privacy()),
)


def add_gateway_user(network: SimNetwork) -> SimUser:
    """The gateway's own account ("Demo Gateway"), once per network."""
    try:
        return network.user(GATEWAY_PHONE)
    except KeyError:
        return network.add_user(GATEWAY_PHONE, "Demo", "Gateway", username=GATEWAY_USERNAME)


@dataclass
class DemoTelegram:
    ring_timeout: float = 60.0
    network: SimNetwork = field(default_factory=SimNetwork)
    phones: dict[str, SimPhone] = field(default_factory=dict)
    account: TelegramAccount | None = None

    async def start(self) -> TelegramAccount:
        me = await self.start_world()
        self.account = TelegramAccount(SimClient("demo-gateway", self.network, user_id=me.id),
                                       ring_timeout=self.ring_timeout)
        await self.account.start()
        return self.account

    async def start_world(self) -> SimUser:
        """The gateway's account and the people, online; no gateway client (that may be in another process)."""
        self.network.ring_timeout = self.ring_timeout + 30
        me = add_gateway_user(self.network)
        for phone, first, last, username, behaviour, privacy in PEOPLE:
            user = self.network.add_user(phone, first, last, username=username, privacy=privacy)
            self.phones[username] = await SimPhone(self.network, user, behaviour).start(self.ring_timeout + 30)
        return me

    async def call_gateway(self, username: str) -> None:
        """A simulated person calls the gateway account (`tgtrunk sim call USER`)."""
        phone = self.phones[username.lstrip("@")]
        await phone.call(GATEWAY_PHONE)

    async def stop(self) -> None:
        for phone in self.phones.values():
            await phone.stop()
        if self.account is not None and self.account.client.is_connected:
            await self.account.stop()
        self.network.close()
