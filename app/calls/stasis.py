"""The Stasis application `tgtrunk`: every call from a line arrives here and Python decides."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from app.ari.channel import REJECT_CONTEXT
from app.ari.client import AriClient, AriError, AriEvent
from app.calls import codes
from app.calls.accounts import AccountHandle, Accounts
from app.calls.callback import CallbackToSip
from app.calls.callsession import CallSession, Reject, reject_channel
from app.calls.failedcalls import FailedCallWatch
from app.calls.siptotelegram import SipToTelegram
from app.calls.telegramtosip import TelegramToSip
from app.sip.line import endpoint_id
from app.sip.linesync import LineSync
from app.store.db import Database
from app.store.line import Line, LineMode
from app.supervise import retrieve
from app.telegram.peer import Peer
from app.telegram.privatecall import PrivateCall

log = logging.getLogger(__name__)

APP_NAME = "tgtrunk"
FROM_TELEGRAM = "tg-in"


@dataclass(frozen=True)
class InboundCall:
    channel_id: str
    line: str
    dialled: str
    caller: str

    @classmethod
    def from_event(cls, event: AriEvent) -> "InboundCall | None":
        args = event.get("args") or []
        if len(args) < 2 or args[0] == FROM_TELEGRAM:
            return None
        channel = event["channel"]
        return cls(channel["id"], args[0], args[1], channel.get("caller", {}).get("number", ""))


class StasisApp:
    def __init__(self, ari: AriClient, db: Database, lines: LineSync, accounts: Accounts,
                 max_calls: int | None = None, recordings_dir: Path | None = None,
                 failed_calls: FailedCallWatch | None = None, app: str = APP_NAME,
                 media_address: str = "127.0.0.1", reject_context: str | None = REJECT_CONTEXT) -> None:
        self.ari = ari
        # Lines whose PBX was not registered at their last call: their next call asks Asterisk before Telegram, so
        # a lapsed PBX redialling costs no lookups (nor Telegram's flood limits for them).
        self._unregistered: set[str] = set()
        self.app = app  # the Stasis application's name (TGTRUNK_ARI_APP on the user's own Asterisk)
        self.media_address = media_address  # where Asterisk sends externalMedia RTP
        self.reject_context = reject_context  # None: the user's dialplan continues after Stasis() (Channel.reject)
        self.recordings_dir = recordings_dir
        self.failed_calls = failed_calls
        self.max_calls = max_calls  # the whole gateway's (TGTRUNK_MAX_CALLS)
        self.db = db
        self.lines = lines
        self.accounts = accounts
        self.by_channel: dict[str, CallSession] = {}
        self.originating: dict[str, TelegramToSip] = {}
        self.active_per_line: Counter[str] = Counter()
        self.active = 0
        self.live: set[CallSession] = set()  # every call from _track until its work ends
        self._keys = itertools.count(1)
        self._in_stasis: dict[str, asyncio.Future[None]] = {}
        self.on_chat_message: Callable[[AccountHandle, Peer, str], Awaitable[None]] | None = None  # the chat side
        ari.on("StasisStart", self.on_stasis_start)
        ari.on("StasisEnd", self.on_channel_gone)
        ari.on("ChannelDestroyed", self.on_channel_gone)
        ari.on("ChannelDtmfReceived", self.on_dtmf)

    def attach_accounts(self) -> None:
        for handle in self.accounts.handles.values():
            handle.account.on_incoming_call = lambda call, h=handle: self.on_telegram_call(h, call)
            handle.account.on_message = lambda peer, text, h=handle: self.on_telegram_message(h, peer, text)

    # SIP -> Telegram ---------------------------------------------------------------------------
    def _stasis_future(self, channel_id: str) -> asyncio.Future[None]:
        return self._in_stasis.setdefault(channel_id, asyncio.get_running_loop().create_future())

    async def wait_in_stasis(self, channel_id: str, timeout: float = 5.0) -> None:
        """A channel created through ARI (externalMedia) joins the app a moment after the POST returns."""
        await asyncio.wait_for(asyncio.shield(self._stasis_future(channel_id)), timeout)

    async def on_stasis_start(self, event: AriEvent) -> None:
        arrived = time.perf_counter()
        started = self._stasis_future(event["channel"]["id"])
        if not started.done():
            started.set_result(None)
        args = event.get("args") or []
        if len(args) == 2 and args[0] == FROM_TELEGRAM:
            session = self.originating.get(args[1])
            if session:
                session.on_sip_answered(event["channel"]["id"])
            return
        call = InboundCall.from_event(event)
        if call is None:
            return
        line = self.lines.lines.get(call.line)
        log.info("call from line %s (caller %s) to %r", call.line, call.caller or "unknown", call.dialled)
        handle = self.accounts.for_line(line) if line else None
        session = SipToTelegram(self.ari, self.db, self.app, handle, call.line)
        session.pbx_party = call.caller
        session.record.caller = call.caller or None
        if line is None:
            await self._refuse_sip(session, call, codes.NOT_FOUND, f"line {call.line} is not configured")
            return
        full = self._no_room(line, handle)
        if full:
            await self._refuse_sip(session, call, codes.NO_ROOM, full)
            return
        self._track(session, line, call.channel_id)  # the call holds its place from here, before any await
        if handle is None:
            log.warning("line %s has no running Telegram account (log one in with `tgtrunk account login`)", line.name)
        await self._run(session, self._sip_to_telegram(session, line, call, arrived), line)

    async def _sip_to_telegram(self, session: SipToTelegram, line: Line, call: InboundCall, arrived: float) -> None:
        # Asterisk is asked while the session looks the Telegram user up; it places no call before the answer.
        registered = asyncio.ensure_future(self._registered(line))
        registered.add_done_callback(retrieve)  # run() awaits it, unless it fails first
        if line.name in self._unregistered:  # not while the line's PBX was last seen unregistered
            await asyncio.wait([registered])
        await session.run(line, call.dialled, call.channel_id, arrived, registered)

    async def _refuse_sip(self, session: SipToTelegram, call: InboundCall, code: int, reason: str) -> None:
        """Refused before Telegram is asked; still a call record, like every other call."""
        session.record.dialled = call.dialled
        await self._reject(call.channel_id, code, reason)
        await session.close(code, reason)

    def _no_room(self, line: Line, handle: AccountHandle | None) -> str | None:
        """Why one more call does not fit (the reason of the 503), or None when it does."""
        if line.max_calls is not None and self.active_per_line[line.name] >= line.max_calls:
            return f"no free lines: {line.name} allows {line.max_calls} calls"
        if handle is not None and handle.max_calls is not None and handle.active >= handle.max_calls:
            return f"no free lines: account {handle.name} allows {handle.max_calls} calls"
        if self.max_calls is not None and self.active >= self.max_calls:
            return f"gateway at capacity: TGTRUNK_MAX_CALLS={self.max_calls}"
        return None

    async def _registered(self, line: Line) -> bool:
        if line.mode.value != "register":
            return True
        try:
            endpoint = await self.ari.request("GET", f"/endpoints/PJSIP/{endpoint_id(line)}")
        except AriError:
            online = False
        else:
            online = endpoint.get("state") == "online"
        (self._unregistered.discard if online else self._unregistered.add)(line.name)
        return online

    async def _reject(self, channel_id: str, code: int, reason: str) -> None:
        log.warning("call on channel %s refused with %d %s", channel_id, code, reason)
        await reject_channel(self.ari, channel_id, code, self.reject_context)

    # Telegram -> SIP ---------------------------------------------------------------------------
    async def on_telegram_call(self, handle: AccountHandle, call: PrivateCall) -> None:
        candidates = self.lines_for(handle)
        line = next((l for l in candidates if self._no_room(l, handle) is None), None)
        if call.from_gateway or line is None:
            refusal = TelegramToSip(self.ari, self.db, self.app, handle, line.name if line else None)
            if call.from_gateway:
                await refusal.refuse(call, *codes.CALLER_IS_GATEWAY)
            elif candidates:
                await refusal.refuse(call, codes.NO_ROOM, self._no_room(candidates[0], handle) or "no free lines")
            else:
                await refusal.refuse(call, codes.SIP_UNAVAILABLE.code,
                                     f"{codes.SIP_UNAVAILABLE.reason} (no line serves account {handle.name})")
            return
        key = str(next(self._keys))
        session = TelegramToSip(self.ari, self.db, self.app, handle, line.name)
        self.originating[key] = session
        self._track(session, line)  # held on the first line that has room; moved to the line that answers
        try:
            await self._run(session, self._telegram_to_sip(session, call, candidates, key), line)
        finally:
            self.originating.pop(key, None)

    async def _telegram_to_sip(self, session: TelegramToSip, call: PrivateCall, candidates: list[Line],
                               key: str) -> None:
        # Inside `_run`, so the place `_track` took is given back whatever this await raises.
        groups = [list(group) for _, group in itertools.groupby(candidates, key=lambda line: line.priority)]

        async def check(line: Line) -> Reject | None:
            # The call already holds a place on the account and the gateway: only another line's own limit counts.
            if line.name != session.line and line.max_calls is not None \
                    and self.active_per_line[line.name] >= line.max_calls:
                return Reject(codes.NO_ROOM, f"no free lines: {line.name} allows {line.max_calls} calls")
            if not line.pbx_number and line.mode is not LineMode.REGISTER:
                return Reject(codes.SIP_UNAVAILABLE.code, f"line {line.name} has no number on PBX (--pbx-number)")
            if not await self._registered(line):
                return Reject(*codes.SIP_UNAVAILABLE)
            return None

        def move(line: Line) -> None:
            if session.line != line.name:
                self.active_per_line[session.line or ""] -= 1
                self.active_per_line[line.name] += 1
                session.line = session.record.line = line.name
                session.record_chat = record_chat(line, session.handle)
        await session.run(call, groups, key, check, move)

    async def on_telegram_message(self, handle: AccountHandle, peer: Peer, text: str) -> None:
        for session in list(handle.sessions):
            if session.tg_call and session.tg_call.peer.id == peer.id and await session.on_chat_message(text):
                return
        if self.on_chat_message is not None:
            await self.on_chat_message(handle, peer, text)

    def lines_for(self, handle: AccountHandle) -> list[Line]:
        """The lines serving an account, in the order Telegram calls try them (priority)."""
        return sorted((line for line in self.lines.lines.values() if self.accounts.for_line(line) is handle),
                      key=lambda line: -line.priority)

    def has_room(self, line: Line, handle: AccountHandle) -> bool:
        return self._no_room(line, handle) is None

    async def call_back(self, handle: AccountHandle, peer: Peer, line: Line, number: str, trigger: str) -> None:
        """A call the chat started: Telegram user first, then `number` on the PBX over `line` (a call record)."""
        session = CallbackToSip(self.ari, self.db, self.app, handle, line.name)
        full = self._no_room(line, handle)
        if full:
            session.record.dialled, session.record.trigger = number, trigger
            log.warning("%s for Telegram %s refused: %s", trigger, peer.id, full)
            await session.close(codes.NO_ROOM, full)
            return
        key = str(next(self._keys))
        self.originating[key] = session
        self._track(session, line)
        try:
            await self._run(session, self._call_back(session, peer, line, number, key, trigger), line)
        finally:
            self.originating.pop(key, None)

    async def _call_back(self, session: CallbackToSip, peer: Peer, line: Line, number: str, key: str,
                         trigger: str) -> None:
        await session.call_back(peer, line, number, key, await self._registered(line), trigger)

    # Channel events ----------------------------------------------------------------------------
    async def on_channel_gone(self, event: AriEvent) -> None:
        # On StasisEnd too: a channel that left the app is no longer ours, and its ChannelDestroyed may never come
        # (half the soak's channels kept their entry: +0.5 futures per call).
        self._in_stasis.pop(event["channel"]["id"], None)
        session = self.by_channel.get(event["channel"]["id"])
        if session is None:
            return
        if isinstance(session, TelegramToSip):
            cause = int(event.get("cause", 0)) if event["type"] == "ChannelDestroyed" else None
            session.on_sip_gone(event["channel"]["id"], cause)
        else:
            session.on_sip_hangup()

    async def on_dtmf(self, event: AriEvent) -> None:
        session = self.by_channel.get(event["channel"]["id"])
        if session is not None:
            session.on_sip_dtmf(event["digit"])

    def on_asterisk_lost(self) -> None:
        """Asterisk died: its channels are gone without a hang-up event, so every call ends now."""
        if self.live:
            log.warning("Asterisk was lost: ending %d call(s)", len(self.live))
        for session in list(self.live):
            session.on_asterisk_lost()
        self._in_stasis.clear()  # channels of the Asterisk that died

    # Bookkeeping -------------------------------------------------------------------------------
    def _track(self, session: CallSession, line: Line, channel_id: str | None = None) -> None:
        # Counted before the first await, so parallel attempts see an exact count.
        session.channels = self.by_channel
        session.wait_in_stasis = self.wait_in_stasis
        session.recordings_dir = self.recordings_dir
        session.media_address = self.media_address
        session.reject_context = self.reject_context
        session.record_chat = record_chat(line, session.handle)
        if channel_id is not None:
            session.bind_channel(channel_id)
        self.live.add(session)
        self.active_per_line[line.name] += 1
        self.active += 1
        if session.handle:
            session.handle.sessions.add(session)
            session.handle.active += 1

    async def _run(self, session: CallSession, work, line: Line) -> None:  # type: ignore[no-untyped-def]
        def release() -> None:
            if session not in self.live:
                return
            self.live.discard(session)
            self.active_per_line[session.line or line.name] -= 1
            self.active -= 1
            if session.handle:
                session.handle.active -= 1

        session.release = release
        task = asyncio.ensure_future(work)
        session.task = task
        try:
            await task
        except Exception:
            log.exception("call on line %s failed", line.name)
        finally:
            release()
            session.release = _released  # the closure holds the session: a cycle left for a full collection
            if session.sip_channel_id:
                self.by_channel.pop(session.sip_channel_id, None)
            if self.failed_calls and session.record.result_code is not None:
                self.failed_calls.call_ended(session.line or line.name, line.account, session.record.result_code,
                                             session.record.reason)


def _released() -> None:
    pass


def record_chat(line: Line, handle: AccountHandle | None) -> str | None:
    """Where a call on this line is posted once recorded; None when it is not recorded.

    The line's --record wins over the account's; a chat left unset falls back to the account's, then to the
    session account's own Saved Messages ("me")."""
    account_chat = handle.record_chat if handle else None
    if line.record:
        return line.record_chat or account_chat or "me"
    if handle is not None and handle.record:
        return account_chat or "me"
    return None

