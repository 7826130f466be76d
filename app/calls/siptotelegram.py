"""SIP -> Telegram: a PBX dials a Telegram user through a line."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable

from app.ari.channel import Channel
from app.ari.client import ARI_FAILURES
from app.calls import codes
from app.calls.callsession import AsteriskLost, CallSession, Reject, first_done, reject_channel
from app.sip.dialplan import RuleError, apply_rules
from app.store.line import Line, utcnow
from app.supervise import retrieve
from app.telegram.errors import TelegramError
from app.telegram.peer import Peer
from app.telegram.privatecall import DiscardReason
from app.telegram.target import Target, TargetError, parse_target

log = logging.getLogger(__name__)

RING_GUARD_S = 5.0  # beyond the account's own ring timeout, which ends the call as missed (480)


class SipToTelegram(CallSession):
    direction = "sip-to-telegram"

    async def run(self, line: Line, dialled: str, channel_id: str, started: float,
                  registered: Awaitable[bool]) -> None:
        """`started`: perf_counter() when the call entered Stasis (the INVITE reached the app). `registered`: whether
        the line's PBX is registered (when a line needs it), asked of Asterisk meanwhile: refused first (405) if not."""
        self.record.dialled = dialled
        code, reason = 200, "normal clearing"
        looking_up: asyncio.Future[Peer] | None = None
        try:
            refusal: Reject | None = None
            try:
                target = self._target(line, dialled)
            except Reject as exc:
                refusal = exc
            else:
                assert self.handle
                looking_up = asyncio.ensure_future(self.handle.account.resolve(target))
                looking_up.add_done_callback(retrieve)  # unused when the call is refused meanwhile
            if not await registered:
                raise Reject(*codes.REGISTER_REQUIRED)
            if refusal is not None:
                raise refusal
            assert self.handle and looking_up
            call = await self.handle.account.call(await looking_up)
            self.tg_call = call
            self.record.setup_ms = round(((call.requested_at or time.perf_counter()) - started) * 1000, 2)
            log.info("line %s: %r -> Telegram %s, RequestCall sent after %.1f ms",
                     line.name, dialled, target, self.record.setup_ms)
            await self._ring_then_answer()
            await self.connect_media()
            reason = await self.talk()
        except Reject as exc:
            code, reason = exc.code, exc.reason
        except TelegramError as exc:  # a refusal, or the call ended before the answer (CallEnded)
            code, reason = codes.for_error(exc)
        except asyncio.CancelledError:
            code, reason = codes.SIP_CALLER_CANCELLED
            await self.hang_up_telegram(DiscardReason.HANGUP)
        except (AsteriskLost, *ARI_FAILURES) as exc:
            code, reason = await self.ari_failed(exc)
        except Exception as exc:  # a bug must still answer the caller and leave a record
            log.exception("line %s: call to %r failed", line.name, dialled)
            code, reason = codes.INTERNAL, f"internal error: {exc!r}"
            await self.hang_up_telegram(DiscardReason.DISCONNECT)
        finally:
            if looking_up is not None:
                looking_up.cancel()  # done by now unless the call was refused or given up meanwhile
        if not self.answered and code != codes.SIP_CALLER_CANCELLED.code:
            log.warning("line %s: call to %r refused with %d %s", line.name, dialled, code, reason)
            await self.reject_sip(code)
        await self.close(code, reason)

    def _target(self, line: Line, dialled: str) -> Target:
        if self.handle is None:
            raise Reject(*codes.SESSION_NOT_RUNNING)
        try:
            return parse_target(apply_rules(line.rules, dialled))
        except TargetError as exc:
            raise Reject(codes.NOT_FOUND, str(exc)) from None
        except RuleError as exc:
            raise Reject(codes.INTERNAL, f"line {line.name}: {exc}") from None

    async def _ring_then_answer(self) -> None:
        call = self.tg_call
        assert call and self.sip_channel_id
        waiter = sip_gone = None
        try:
            for step in (call.wait_ringing, call.wait_accepted):
                assert self.handle
                waiter = asyncio.ensure_future(step(self.handle.account.ring_timeout + RING_GUARD_S))
                sip_gone = asyncio.ensure_future(self.sip_gone.wait())
                if sip_gone in await first_done(waiter, sip_gone):
                    raise AsteriskLost if self.asterisk_lost else asyncio.CancelledError
                waiter.result()
                if step == call.wait_ringing:
                    await Channel(self.ari, self.sip_channel_id).ring()
        except asyncio.TimeoutError:
            await self.hang_up_telegram(DiscardReason.MISSED)
            raise Reject(*codes.NO_ANSWER) from None
        finally:
            # The error `waiter.result()` raises keeps this frame in its traceback and is kept by the task:
            # a reference cycle through the session unless the frame lets go of the task.
            waiter = sip_gone = None
        await Channel(self.ari, self.sip_channel_id).answer()
        self.answered = True
        self.record.answered_at = utcnow()

    async def reject_sip(self, code: int) -> None:
        if not self.sip_gone.is_set() and self.sip_channel_id:
            await reject_channel(self.ari, self.sip_channel_id, code, self.reject_context)
