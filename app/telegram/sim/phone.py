"""A simulated person's Telegram app: a real pyrogram client and its own CallEngine (NTgCalls), scripted.

Simulated people use the same engine as the gateway, but everything they say reaches the gateway through the
simulated servers (TL bytes), which check the protocol (access hashes, call states, g_a against g_a_hash).
"""

from __future__ import annotations

import asyncio
import logging
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pyrogram import raw

from app.telegram.account import TelegramAccount
from app.telegram.errors import TelegramError
from app.telegram.peer import Peer
from app.telegram.privatecall import DiscardReason, PrivateCall
from app.telegram.sim.audio import CallAudio, Tone
from app.telegram.sim.bots import SimMessage
from app.telegram.sim.network import SimNetwork, SimUser
from app.telegram.sim.stats import PhoneStats
from app.telegram.sim.transport import SimClient

log = logging.getLogger(__name__)

KEEP_CALLS = 100  # newest calls in `SimPhone.calls`
KEEP_MESSAGES = 100  # newest chat messages in `SimPhone.messages`


@dataclass
class Behaviour:
    answer: str = "answer"  # answer | decline | busy | no_answer
    answer_after: float = 0.0
    hangup_after: float | None = None  # seconds after connecting
    tone_hz: float | None = None
    tone_dbfs: float = -12.0
    echo: bool = False
    record: bool = True
    autoreply: str | None = None  # answer every chat message with this text


@dataclass
class SimPhone:
    """One simulated user online with an app; `calls` keeps the calls it saw (the newest), `heard` its audio."""

    network: SimNetwork
    user: SimUser
    behaviour: Behaviour = field(default_factory=Behaviour)
    account: TelegramAccount | None = None
    calls: deque[PrivateCall] = field(default_factory=lambda: deque(maxlen=KEEP_CALLS))
    heard: bytearray = field(default_factory=bytearray)
    messages: deque[tuple[Peer, str]] = field(default_factory=lambda: deque(maxlen=KEEP_MESSAGES))
    stats: PhoneStats = field(default_factory=PhoneStats)  # counted whether or not `record` keeps the PCM
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.stats.user_id = self.user.id
        self.stats.username = self.user.username
        self.stats.phone = "+" + self.user.phone

    async def start(self, ring_timeout: float = 90.0) -> "SimPhone":
        client = SimClient(f"sim-{self.user.id}", self.network, user_id=self.user.id)
        self.account = TelegramAccount(client, ring_timeout=ring_timeout)
        self.account.on_incoming_call = self._on_incoming
        self.account.on_message = self._on_message
        await self.account.start()
        return self

    async def stop(self) -> None:
        if self.account is not None:
            await self.account.stop()

    async def call(self, target: str | int | Peer) -> PrivateCall:
        assert self.account is not None
        call = await self.account.call(target)
        self._setup(call)
        return call

    async def send_message(self, peer: Peer, text: str) -> None:
        assert self.account is not None
        await self.account.send_message(peer, text)

    async def say(self, target: str | int, text: str) -> None:
        """Send a chat message to `target` (e.g. the gateway account's +phone)."""
        assert self.account is not None
        peer = await (self.account.resolve_user_id(target) if isinstance(target, int) else self.account.resolve(target))
        await self.account.send_message(peer, text)

    async def wait_message(self, predicate: Callable[[SimMessage], bool] = lambda m: True,
                           timeout: float = 10.0, after: int = 0) -> SimMessage:
        """The first received message (from index `after` on) that matches."""
        async def poll() -> SimMessage:
            while True:
                for message in itertools.islice(self.user.received, after, None):
                    if predicate(message):
                        return message
                await asyncio.sleep(0.05)
        return await asyncio.wait_for(poll(), timeout)

    async def press(self, label: str, timeout: float = 10.0) -> str:
        """Press the button `label` of the newest message that has it; returns the bot's toast."""
        assert self.account is not None
        message = next((m for m in reversed(self.user.received) if m.button(label) is not None), None)
        if message is None:
            raise LookupError(f"no message with a button {label!r} in {self.user.username}'s chats")
        peer = await self.account.client.resolve_peer(message.from_id)
        answer = await self.account.invoke(raw.functions.messages.GetBotCallbackAnswer(
            peer=peer, msg_id=message.id, data=message.button(label)), timeout=timeout)
        return answer.message or ""

    def heard_since(self, start: int) -> bytes:
        return bytes(self.heard[start:])

    async def wait_heard(self, n_bytes: int, timeout: float = 10.0) -> None:
        """Wait until at least `n_bytes` of audio were heard in total."""
        self._want = n_bytes
        if len(self.heard) >= n_bytes:
            return
        self._heard_enough = asyncio.get_running_loop().create_future()
        await asyncio.wait_for(self._heard_enough, timeout)

    # --- behaviour --------------------------------------------------------------------------------

    def _setup(self, call: PrivateCall) -> None:
        self.calls.append(call)
        self.stats.calls += 1
        b = self.behaviour

        def on_heard(pcm: bytes) -> None:
            self.stats.heard(pcm)
            if b.record:
                self.heard.extend(pcm)
                future = getattr(self, "_heard_enough", None)
                if future is not None and not future.done() and len(self.heard) >= self._want:
                    future.set_result(None)
            if b.echo:
                audio.echo(pcm)

        source = Tone(b.tone_hz, b.tone_dbfs, call.account.engine.sample_rate) if b.tone_hz else None
        audio = CallAudio(call, on_heard, source)
        if b.hangup_after is not None:
            task = asyncio.ensure_future(self._hangup_later(call, b.hangup_after))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _hangup_later(self, call: PrivateCall, delay: float) -> None:
        try:
            await call.wait_connected()
        except Exception:  # noqa: BLE001
            return
        await asyncio.sleep(delay)
        await call.hangup(DiscardReason.HANGUP)

    async def _on_incoming(self, call: PrivateCall) -> None:
        self._setup(call)
        b = self.behaviour
        if b.answer == "no_answer":
            return
        if b.answer_after:
            await asyncio.sleep(b.answer_after)
        if call.ended.done():
            return
        if b.answer == "decline":
            await call.hangup(DiscardReason.HANGUP)
        elif b.answer == "busy":
            await call.hangup(DiscardReason.BUSY)
        else:
            try:
                await call.accept()
            except TelegramError:
                if call.ended.done():
                    return  # the caller hung up while this person answered
                raise
            self.stats.answered += 1

    async def _on_message(self, peer: Peer, text: str) -> None:
        self.messages.append((peer, text))
        if self.behaviour.autoreply and self.account is not None:
            await self.account.send_message(peer, self.behaviour.autoreply)
