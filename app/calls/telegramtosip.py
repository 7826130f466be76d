"""Telegram -> SIP: a Telegram user calls the gateway account and the PBX rings an extension."""

from __future__ import annotations

import asyncio
import logging

from app.ari.client import ARI_FAILURES
from app.calls.callsession import AsteriskLost, CallSession, Reject
from app.sip.callerid import caller_fields, caller_id
from app.sip.line import endpoint_id
from app.store.line import Line, LineMode, utcnow
from app.telegram.errors import TelegramError
from app.telegram.privatecall import CallEnded, DiscardReason, PrivateCall

log = logging.getLogger(__name__)

ORIGINATE_TIMEOUT_S = 60
# Asterisk hangup causes of an unanswered outgoing leg -> (SIP code, reason, Telegram discard reason)
CAUSES: dict[int, tuple[int, str, DiscardReason]] = {
    17: (486, "Busy Here", DiscardReason.BUSY),
    18: (480, "No answer", DiscardReason.MISSED),
    19: (480, "No answer", DiscardReason.MISSED),
    21: (603, "Declined", DiscardReason.BUSY),
    1: (404, "Not Found", DiscardReason.BUSY),
    3: (503, "SIP account is unavailable", DiscardReason.BUSY),
    20: (503, "SIP account is unavailable", DiscardReason.BUSY),
    27: (503, "SIP account is unavailable", DiscardReason.BUSY),
    34: (503, "SIP account is unavailable", DiscardReason.BUSY),
    38: (503, "SIP account is unavailable", DiscardReason.BUSY),
}


class TelegramToSip(CallSession):
    direction = "telegram-to-sip"

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.sip_answered = asyncio.Event()
        self.sip_cause: int | None = None

    def on_sip_answered(self) -> None:
        self.sip_answered.set()

    def on_sip_destroyed(self, cause: int) -> None:
        self.sip_cause = cause
        self.sip_gone.set()

    async def refuse(self, call: PrivateCall, code: int, reason: str) -> None:
        """Refused before any line is tried: discard, tell the caller in the chat, record it."""
        self.tg_call = call
        log.warning("Telegram call from %s refused: %d %s", call.peer.id, code, reason)
        await self._refuse_telegram(Reject(code, reason))
        await self.close(code, reason)

    async def run(self, call: PrivateCall, line: Line, key: str, registered: bool) -> None:
        self.tg_call = call
        self.record.dialled = line.pbx_number
        code, reason = 200, "normal clearing"
        try:
            if not line.pbx_number and line.mode is not LineMode.REGISTER:
                raise Reject(503, f"line {line.name} has no number on PBX (--pbx-number)")
            if line.mode is LineMode.REGISTER and not registered:
                raise Reject(503, "SIP account is unavailable")
            await self._originate(call, line, key)
            await self._wait_answer(call)
            await call.accept()
            self.answered = True
            self.record.answered_at = utcnow()
            await self.connect_media()
            reason = await self.talk()
        except Reject as exc:
            code, reason = exc.code, exc.reason
            await self.hang_up_sip()
            await self._refuse_telegram(exc)
        except CallEnded:
            code, reason = 487, "Telegram caller hung up"
            await self.hang_up_sip()
        except TelegramError as exc:
            code, reason = exc.sip_code, exc.reason
            await self.hang_up_sip()
        except (AsteriskLost, *ARI_FAILURES) as exc:
            code, reason = await self.ari_failed(exc)
        await self.close(code, reason)

    async def _originate(self, call: PrivateCall, line: Line, key: str, number: str | None = None) -> None:
        """Ring the PBX: `number` (default the line's --pbx-number) as the request-URI user."""
        number_on_pbx = line.pbx_number if number is None else number
        self.pbx_party = number_on_pbx or ""
        peer = call.peer
        number, name = caller_id(line.callerid_templates, line.callername_template,
                                 caller_fields(peer.phone, peer.username, peer.id, peer.name))
        variables = {}
        for header in line.headers:
            field, _, value = header.partition(":")
            variables[f"PJSIP_HEADER(add,{field.strip()})"] = value.strip()
        display = name.replace('"', "'")
        channel = await self.ari.request("POST", "/channels", params={
            # With a number, the PBX gets it as the request-URI user (FreePBX routes on it); without one, the
            # device registered on the line rings as it registered (a softphone).
            "endpoint": f"PJSIP/{number_on_pbx}@{endpoint_id(line)}" if number_on_pbx else f"PJSIP/{endpoint_id(line)}",
            "app": self.app, "appArgs": f"tg-in,{key}",
            "callerId": f'"{display}" <{number}>' if display else number,
            "timeout": ORIGINATE_TIMEOUT_S,
        }, json={"variables": variables} if variables else None)
        self.bind_channel(channel["id"])
        log.info("Telegram %s (%s) -> line %s, ringing %s as %r <%s>",
                 peer.id, peer.username or peer.phone or "-", line.name, number_on_pbx or "the registered device", name, number)

    async def _wait_answer(self, call: PrivateCall) -> None:
        answered = asyncio.ensure_future(self.sip_answered.wait())
        gone = asyncio.ensure_future(self.sip_gone.wait())
        caller_left = asyncio.ensure_future(asyncio.shield(call.ended))
        done, pending = await asyncio.wait({answered, gone, caller_left}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if answered in done:
            return
        if caller_left in done:
            raise CallEnded(call.ended.result())
        if self.asterisk_lost:
            raise AsteriskLost
        code, reason, _ = CAUSES.get(self.sip_cause or 0, (480, "No answer", DiscardReason.MISSED))
        raise Reject(code, reason)

    async def _refuse_telegram(self, exc: Reject) -> None:
        """Discard the Telegram call with the matching reason and tell the caller why in the chat."""
        call = self.tg_call
        if call is None or call.ended.done():
            return
        discard = next((d for c, _, d in CAUSES.values() if c == exc.code), DiscardReason.BUSY)
        if exc.code == 480:
            discard = DiscardReason.MISSED
        await call.hangup(discard)
        if exc.code != 480 and self.handle and self.handle.chat_allowed():
            await self._chat(call.peer, f"{exc.code} {exc.reason}")
