"""Telegram -> SIP: a Telegram user calls the gateway account and the PBX rings an extension."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from app.ari.channel import Channel
from app.ari.client import ARI_FAILURES, AriError
from app.calls import codes
from app.calls.callsession import AsteriskLost, CallSession, Reject, first_done
from app.sip.callerid import caller_fields, caller_id
from app.sip.line import dial_string
from app.store.line import Line, utcnow
from app.telegram.errors import TelegramError
from app.telegram.privatecall import CallEnded, PrivateCall

log = logging.getLogger(__name__)

ORIGINATE_TIMEOUT_S = 60


@dataclass
class Attempt:
    """One line rung for a Telegram call: its SIP channel and how it ended, if it did."""

    line: Line
    channel_id: str
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    gone: asyncio.Event = field(default_factory=asyncio.Event)
    cause: int | None = None
    number: str = ""  # the request-URI user rung ("" : the registered device)

    def failure(self) -> Reject:
        return Reject(*codes.for_cause(self.cause))


# Checks a line before it rings: the refusal that makes the call pass to the next line, or None.
LineCheck = Callable[[Line], Awaitable[Reject | None]]
# Moves the call's place (per-line count, record) to the line that answered.
LineMove = Callable[[Line], None]


class TelegramToSip(CallSession):
    """Rings the lines by priority: the highest priority whose lines can take the call first; lines of equal
    priority ring at once and the first to answer wins (the others are CANCELed); a priority whose lines all
    fail (refused by the check, 4xx/5xx, no answer) passes the call to the next. A 6xx ends the search."""

    direction = "telegram-to-sip"

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.attempts: dict[str, Attempt] = {}
        self.any_event = asyncio.Event()

    def on_sip_answered(self, channel_id: str) -> None:
        if attempt := self.attempts.get(channel_id):
            attempt.answered.set()
            self.any_event.set()

    def on_sip_gone(self, channel_id: str, cause: int | None) -> None:
        """A rung channel left (StasisEnd, once answered) or was destroyed (with the hang-up cause)."""
        if attempt := self.attempts.get(channel_id):
            if cause is not None and attempt.cause is None:
                attempt.cause = cause
            attempt.gone.set()
            self.any_event.set()
        if channel_id == self.sip_channel_id:
            self.sip_gone.set()

    def on_asterisk_lost(self) -> None:
        super().on_asterisk_lost()
        for attempt in self.attempts.values():
            attempt.gone.set()
        self.any_event.set()

    async def refuse(self, call: PrivateCall, code: int, reason: str) -> None:
        """Refused before any line is tried: discard, tell the caller in the chat, record it."""
        self.tg_call = call
        log.warning("Telegram call from %s refused: %d %s", call.peer.id, code, reason)
        await self._refuse_telegram(Reject(code, reason))
        await self.close(code, reason)

    async def run(self, call: PrivateCall, groups: list[list[Line]], key: str, check: LineCheck,
                  move: LineMove) -> None:
        self.tg_call = call
        self.record.dialled = groups[0][0].pbx_number if groups else None
        code, reason = 200, "normal clearing"
        try:
            winner = await self._ring_by_priority(call, groups, key, check)
            move(winner.line)
            self.record.dialled = winner.line.pbx_number
            self.pbx_party = winner.number
            self.bind_channel(winner.channel_id)
            if winner.gone.is_set():
                self.sip_gone.set()
            await call.accept()
            self.answered = True
            self.record.answered_at = utcnow()
            await self.connect_media()
            reason = await self.talk()
        except Reject as exc:
            code, reason = exc.code, exc.reason
            await self._refuse_telegram(exc)
        except CallEnded:
            code, reason = codes.TELEGRAM_CALLER_HUNG_UP
            await self._hang_up_attempts()
        except TelegramError as exc:
            code, reason = codes.for_error(exc)
            await self.hang_up_sip()
        except (AsteriskLost, *ARI_FAILURES) as exc:
            await self._hang_up_attempts()
            code, reason = await self.ari_failed(exc)
        await self.close(code, reason)

    async def _ring_by_priority(self, call: PrivateCall, groups: list[list[Line]], key: str,
                                check: LineCheck) -> Attempt:
        failure = Reject(*codes.SIP_UNAVAILABLE)
        for group in groups:
            ringing: list[Attempt] = []
            for line in group:
                refusal = await check(line)
                if refusal is None:
                    try:
                        ringing.append(await self._originate(call, line, key))
                        continue
                    except AriError as exc:
                        refusal = Reject(codes.SIP_UNAVAILABLE.code, f"{codes.SIP_UNAVAILABLE.reason} ({exc.message})")
                log.info("line %s cannot take the call: %d %s", line.name, refusal.code, refusal.reason)
                failure = refusal
            if not ringing:
                continue
            winner = await self._first_answer(call, ringing)
            if winner is not None:
                return winner
            failure = max((a.failure() for a in ringing), key=lambda r: r.code >= 600)
            if failure.code >= 600:
                break
            log.info("no line of priority %d answered (%d %s); trying the next", group[0].priority,
                     failure.code, failure.reason)
        try:
            raise failure
        finally:
            failure = None  # type: ignore[assignment]  # raised, it holds this frame: not the other way round too

    async def _originate(self, call: PrivateCall, line: Line, key: str, number: str | None = None) -> Attempt:
        """Ring the PBX: `number` (default the line's --pbx-number) as the request-URI user."""
        number_on_pbx = line.pbx_number if number is None else number
        peer = call.peer
        number, name = caller_id(line.callerid_templates, line.callername_template,
                                 caller_fields(peer.phone, peer.username, peer.id, peer.name))
        variables = {}
        for header in line.headers:
            field_name, _, value = header.partition(":")
            variables[f"PJSIP_HEADER(add,{field_name.strip()})"] = value.strip()
        display = name.replace('"', "'")
        attempt = Attempt(line, f"tg-{key}-{uuid.uuid4().hex[:12]}")
        self.attempts[attempt.channel_id] = attempt
        if self.channels is not None:
            self.channels[attempt.channel_id] = self  # its events come here from the first one on
        try:
            await Channel.originate(
                self.ari, attempt.channel_id,
                # With a number, the PBX gets it as the request-URI user (FreePBX routes on it); without one,
                # the device registered on the line rings as it registered (a softphone).
                endpoint=dial_string(line, number_on_pbx or ""),
                app=self.app, app_args=f"tg-in,{key}",
                caller_id=f'"{display}" <{number}>' if display else number,
                timeout_s=ORIGINATE_TIMEOUT_S, variables=variables)
        except AriError:
            self._forget(attempt)
            raise
        log.info("Telegram %s (%s) -> line %s, ringing %s as %r <%s>",
                 peer.id, peer.username or peer.phone or "-", line.name, number_on_pbx or "the registered device",
                 name, number)
        attempt.number = number_on_pbx or ""
        return attempt

    async def _first_answer(self, call: PrivateCall, ringing: list[Attempt]) -> Attempt | None:
        """The first attempt to answer (the others are hung up), or None when all failed."""
        while True:
            if call.ended.done():
                raise CallEnded(call.ended.result())
            answered = [a for a in ringing if a.answered.is_set() and not a.gone.is_set()]
            if answered:
                winner = answered[0]
                await self._hang_up_attempts(keep=winner)
                return winner
            if self.asterisk_lost:
                raise AsteriskLost
            if all(a.gone.is_set() for a in ringing):
                return None
            self.any_event.clear()
            await first_done(asyncio.ensure_future(self.any_event.wait()),
                             asyncio.ensure_future(asyncio.shield(call.ended)))

    async def _hang_up_attempts(self, keep: Attempt | None = None) -> None:
        """Unanswered channels hung up are CANCELed; answered ones get a BYE."""
        for attempt in list(self.attempts.values()):
            if attempt is not keep and not attempt.gone.is_set():
                try:
                    await Channel(self.ari, attempt.channel_id).hangup()
                except ARI_FAILURES:
                    pass

    def _forget(self, attempt: Attempt) -> None:
        self.attempts.pop(attempt.channel_id, None)
        if self.channels is not None:
            self.channels.pop(attempt.channel_id, None)

    async def close(self, code: int, reason: str) -> None:
        for attempt in list(self.attempts.values()):
            if attempt.channel_id != self.sip_channel_id:
                self._forget(attempt)
        await super().close(code, reason)

    async def _refuse_telegram(self, exc: Reject) -> None:
        """Discard the Telegram call with the matching reason and tell the caller why in the chat."""
        call = self.tg_call
        if call is None or call.ended.done():
            return
        await call.hangup(codes.discard_for(exc.code))
        if exc.code != codes.NO_ANSWER.code and self.handle and self.handle.chat_allowed():
            await self._chat(call.peer, f"{exc.code} {exc.reason}")
