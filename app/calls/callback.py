"""A call the chat started (Redial, Lines, Callback): the gateway calls the Telegram user back and, once they
answer, rings the PBX number over a line; audio is bridged as in any call."""

from __future__ import annotations

import logging

from app.ari.client import ARI_FAILURES
from app.calls import codes
from app.calls.callsession import AsteriskLost, Reject
from app.calls.telegramtosip import TelegramToSip
from app.store.line import Line, LineMode, utcnow
from app.telegram.errors import TelegramError
from app.telegram.peer import Peer
from app.telegram.privatecall import CallEnded, DiscardReason

log = logging.getLogger(__name__)

ANSWER_GUARD_S = 5.0  # beyond the account's ring timeout


class CallbackToSip(TelegramToSip):
    direction = "telegram-to-sip"

    async def call_back(self, peer: Peer, line: Line, number: str, key: str, registered: bool, trigger: str) -> None:
        assert self.handle
        self.record.dialled = number
        self.record.trigger = trigger
        code, reason = 200, "normal clearing"
        try:
            if line.mode is LineMode.REGISTER and not registered:
                raise Reject(*codes.SIP_UNAVAILABLE)
            if not number and line.mode is not LineMode.REGISTER:
                raise Reject(codes.NOT_FOUND, f"no number to ring on line {line.name}")
            log.info("%s: calling Telegram %s back, then %r on line %s", trigger, peer.id, number, line.name)
            call = await self.handle.account.call(peer)
            self.tg_call = call
            await call.wait_accepted(self.handle.account.ring_timeout + ANSWER_GUARD_S)
            # A register line without --pbx-number is a device (a softphone), not a PBX: it rings as it registered.
            device = line.mode is LineMode.REGISTER and not line.pbx_number
            attempt = await self._originate(call, line, key, "" if device else number)
            winner = await self._first_answer(call, [attempt])
            if winner is None:
                raise attempt.failure()
            self.pbx_party = winner.number
            self.bind_channel(winner.channel_id)
            if winner.gone.is_set():
                self.sip_gone.set()
            self.answered = True
            self.record.answered_at = utcnow()
            await self.connect_media()
            reason = await self.talk()
        except Reject as exc:
            code, reason = exc.code, exc.reason
            await self._hang_up_attempts()
            await self._refuse_telegram(exc)
        except CallEnded as exc:
            code, reason = codes.CALLBACK_HUNG_UP if exc.end.answered \
                else (codes.for_end(exc.end).code, codes.CALLBACK_NOT_ANSWERED.reason)
            await self._hang_up_attempts()
        except TimeoutError:
            code, reason = codes.CALLBACK_NOT_ANSWERED
            await self.hang_up_telegram(DiscardReason.MISSED)
        except TelegramError as exc:
            code, reason = codes.for_error(exc)
            await self.hang_up_sip()
        except (AsteriskLost, *ARI_FAILURES) as exc:
            await self._hang_up_attempts()
            code, reason = await self.ari_failed(exc)
        await self.close(code, reason)
