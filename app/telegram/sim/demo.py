"""The demo world of `tgtrunk serve --simulate-telegram`: a gateway account and a few people to call.

| who | phone | username | what they do |
|---|---|---|---|
| Echo Test | +15550100001 | @echo | answers and sends back what it hears |
| Tone Test | +15550100002 | @tone | answers and plays a 600 Hz tone |
| Busy Bee | +15550100003 | @busy | is always busy (SIP 486) |
| Private Person | +15550100004 | @private | allows calls from nobody (SIP 403) |
| Slow Sam | +15550100005 | @noanswer | never answers (SIP 480 after the ring timeout) |
The gateway account itself is "Demo Gateway", +15550100000, @tgtrunk_demo.

Two bots: @tgtrunk_demo_bot, the gateway's own (its messages carry the Redial / Lines buttons), and
@helpdesk_demo_bot, an example external inline bot that answers a query with a helpdesk ticket number.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from pyrogram import Client

from app.telegram.account import TelegramAccount
from app.telegram.bot import InlineBot, Menu
from app.telegram.sim.network import Privacy, SimNetwork, SimUser
from app.telegram.sim.phone import Behaviour, SimPhone
from app.telegram.sim.transport import SimClient

GATEWAY_PHONE = "+15550100000"
GATEWAY_USERNAME = "tgtrunk_demo"
DEMO_BOT = ("tgtrunk_demo_bot", "1000001:demo-bot-token")
HELPDESK_BOT = ("helpdesk_demo_bot", "1000002:helpdesk-bot-token")
# The demo account's session settings: every chat feature on, so each can be tried from a softphone.
DEMO_SETTINGS = {"messages": True, "callback": True, "inline_bot": HELPDESK_BOT[0],
                 "inline_query": "{text} (from {name}, +{phone})",
                 "autoreply": "This account is for calls only; write a number to be called back."}
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
    helpdesk: InlineBot | None = None

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
        for username, token in (DEMO_BOT, HELPDESK_BOT):
            if not any(u.username == username for u in self.network.users.values()):
                self.network.add_bot(username, token)
        tickets = itertools.count(1001)
        self.helpdesk = await InlineBot(SimClient("helpdesk-bot", self.network, bot_token=HELPDESK_BOT[1]),
                                        lambda user, query: Menu(f"Ticket #{next(tickets)} opened: {query}")).start()
        for phone, first, last, username, behaviour, privacy in PEOPLE:
            user = self.network.add_user(phone, first, last, username=username, privacy=privacy)
            self.phones[username] = await SimPhone(self.network, user, behaviour).start(self.ring_timeout + 30)
        return me

    def bot_client(self) -> Client:
        """The gateway's own bot (@tgtrunk_demo_bot) as a client to log in."""
        return SimClient("demo-bot", self.network, bot_token=DEMO_BOT[1])

    async def message_gateway(self, username: str, text: str) -> None:
        """A simulated person writes to the gateway account (`tgtrunk sim message USER TEXT`)."""
        await self.phones[username.lstrip("@")].say(GATEWAY_PHONE, text)

    async def press(self, username: str, button: str) -> str:
        """A simulated person presses a button in their chat (`tgtrunk sim press USER BUTTON`); the toast."""
        return await self.phones[username.lstrip("@")].press(button)

    def chat(self, username: str) -> list[dict[str, Any]]:
        """What a simulated person received, oldest first, with the buttons."""
        return [{"text": m.text, "buttons": [label for row in m.buttons for label, _ in row]}
                for m in self.phones[username.lstrip("@")].user.received]

    async def call_gateway(self, username: str) -> None:
        """A simulated person calls the gateway account (`tgtrunk sim call USER`)."""
        phone = self.phones[username.lstrip("@")]
        await phone.call(GATEWAY_PHONE)

    async def stop(self) -> None:
        if self.helpdesk is not None:
            await self.helpdesk.stop()
        for phone in self.phones.values():
            await phone.stop()
        if self.account is not None and self.account.client.is_connected:
            await self.account.stop()
        self.network.close()
