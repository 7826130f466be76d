"""Every SIP code the gateway answers, in one place.

Telegram errors (typed, protocol-neutral, from `app.telegram.errors`), the way a Telegram call ended, and
Asterisk's hang-up causes map to a SIP code and reason here; the gateway's own refusals are named here too. Codes
and reasons follow the reference's Troubleshooting page (SIP -> Telegram and Telegram -> SIP sections); see
tests/unit/test_codes.py.
"""

from __future__ import annotations

from typing import NamedTuple

from app.telegram.errors import (AnonymousUser, CallerIsGateway, CallFailed, Flood, PeerBusy,
                                 PeerNotFound, PrivacyRestricted, RpcTimeout, TelegramError)
from app.telegram.privatecall import CallEnd, CallEnded, DiscardReason


class SipAnswer(NamedTuple):
    code: int
    reason: str


# Telegram error type -> SIP code; the reason is the error's own (the Telegram error id or its phrase).
ERROR_CODES: dict[type[TelegramError], int] = {
    PrivacyRestricted: 403,
    PeerNotFound: 404,
    RpcTimeout: 408,
    AnonymousUser: 470,
    CallerIsGateway: 482,
    PeerBusy: 486,
    CallFailed: 500,
    Flood: 503,
}

# A Telegram call that ended before it was answered, by how it was discarded.
DISCARD_ANSWERS: dict[DiscardReason, SipAnswer] = {
    DiscardReason.BUSY: SipAnswer(486, "Busy Here"),
    DiscardReason.HANGUP: SipAnswer(603, "Declined"),
    DiscardReason.MISSED: SipAnswer(480, "No answer"),
    DiscardReason.DISCONNECT: SipAnswer(500, "disconnect"),
}

NO_ANSWER = SipAnswer(480, "No answer")
SIP_UNAVAILABLE = SipAnswer(503, "SIP account is unavailable")
# Asterisk hang-up causes (Q.850) of an unanswered leg towards the PBX; any other cause is "no answer".
ASTERISK_CAUSES: dict[int, SipAnswer] = {
    1: SipAnswer(404, "Not Found"),
    3: SIP_UNAVAILABLE,
    17: SipAnswer(486, "Busy Here"),
    18: NO_ANSWER,
    19: NO_ANSWER,
    20: SIP_UNAVAILABLE,
    21: SipAnswer(603, "Declined"),
    27: SIP_UNAVAILABLE,
    34: SIP_UNAVAILABLE,
    38: SIP_UNAVAILABLE,
}

# The gateway's own answers.
SESSION_NOT_RUNNING = SipAnswer(503, "Session is not running")
REGISTER_REQUIRED = SipAnswer(405, "REGISTER is required first")
CALLER_IS_GATEWAY = SipAnswer(482, "Caller has active gateway accounts")
ASTERISK_LOST = SipAnswer(500, "Asterisk was lost")
SIP_CALLER_CANCELLED = SipAnswer(487, "SIP caller cancelled")
TELEGRAM_CALLER_HUNG_UP = SipAnswer(487, "Telegram caller hung up")
# A call the chat started (Redial, Lines, Callback): the Telegram user is called first.
CALLBACK_HUNG_UP = SipAnswer(487, "Telegram user hung up")
CALLBACK_NOT_ANSWERED = SipAnswer(480, "Telegram user did not answer")
NO_ROOM = 503  # max calls reached: a PBX fails over to its next trunk on 503 (SIP.TG answers 402)
NOT_FOUND = 404  # a dialled string naming no target, or a line not configured
INTERNAL = 500


def for_error(error: TelegramError) -> SipAnswer:
    if isinstance(error, CallEnded):
        return for_end(error.end)
    code = next((ERROR_CODES[kind] for kind in type(error).__mro__ if kind in ERROR_CODES), INTERNAL)
    return SipAnswer(code, error.reason)


def for_end(end: CallEnd) -> SipAnswer:
    """What the SIP side hears for a Telegram call that ended (200 once it had been answered)."""
    if end.error is not None:
        return for_error(end.error)
    if end.answered:
        return SipAnswer(200, end.reason.value)
    return DISCARD_ANSWERS[end.reason]


# SIP code -> the Q.850 cause Asterisk turns back into that code (chan_pjsip's hangup_cause2sip), for a dialplan
# that hangs up with Hangup(${TGTRUNK_CAUSE}) where PJSIPHangup cannot be used (a Local channel).
SIP_TO_CAUSE = {403: 21, 404: 1, 408: 18, 480: 19, 484: 28, 486: 17, 488: 58, 500: 38, 502: 27, 503: 34}


def cause_for(code: int) -> int:
    return SIP_TO_CAUSE.get(code, 34 if 500 <= code < 600 else 21)


def for_cause(cause: int | None) -> SipAnswer:
    return ASTERISK_CAUSES.get(cause or 0, NO_ANSWER)


def discard_for(code: int) -> DiscardReason:
    """How a Telegram call refused with this SIP code is discarded: missed on a ring timeout, busy otherwise
    (Telegram apps show "busy" for a declined call too)."""
    return DiscardReason.MISSED if code == NO_ANSWER.code else DiscardReason.BUSY
