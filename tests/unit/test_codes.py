"""The one SIP-code table against the reference's Troubleshooting page (SIP -> Telegram and Telegram -> SIP)."""

from __future__ import annotations

import pytest
from app.calls import codes
from app.telegram import errors
from app.telegram.privatecall import CallEnd, CallEnded, DiscardReason
from tests.telegram.test_errors import rpc


# The page's headings, as "code reason", with what makes the gateway answer each.
REFERENCE = [
    ("403 USER_PRIVACY_RESTRICTED", lambda: codes.for_error(errors.call_error(rpc("USER_PRIVACY_RESTRICTED")))),
    ("403 PRIVACY_PREMIUM_REQUIRED", lambda: codes.for_error(errors.call_error(rpc("PRIVACY_PREMIUM_REQUIRED")))),
    ("404 Not Found", lambda: codes.for_error(errors.call_error(rpc("PHONE_NOT_OCCUPIED")))),
    ("404 USERNAME_NOT_OCCUPIED", lambda: codes.for_error(errors.call_error(rpc("USERNAME_NOT_OCCUPIED")))),
    ("405 REGISTER is required first", lambda: codes.REGISTER_REQUIRED),
    ("408 Timeout of waiting RPC result", lambda: codes.for_error(errors.call_error(TimeoutError()))),
    ("470 Anonymous user", lambda: codes.for_error(errors.call_error(rpc("PEER_ID_INVALID")))),
    ("500 SOMETHING_NEW", lambda: codes.for_error(errors.call_error(rpc("SOMETHING_NEW")))),
    ("503 Session is not running", lambda: codes.SESSION_NOT_RUNNING),
    ("503 Too Many Requests: retry after 30", lambda: codes.for_error(errors.call_error(rpc("FLOOD_WAIT_30")))),
    ("503 PEER_FLOOD", lambda: codes.for_error(errors.call_error(rpc("PEER_FLOOD")))),
    ("482 Caller has active gateway accounts", lambda: codes.CALLER_IS_GATEWAY),
    ("503 SIP account is unavailable", lambda: codes.SIP_UNAVAILABLE),
]


@pytest.mark.parametrize(("heading", "answer"), REFERENCE, ids=[h for h, _ in REFERENCE])
def test_the_troubleshooting_page(heading, answer) -> None:
    code, _, reason = heading.partition(" ")
    assert answer() == (int(code), reason)


def test_every_call_error_type_has_a_code() -> None:
    kinds = {k for k in vars(errors).values()
             if isinstance(k, type) and issubclass(k, errors.TelegramCallError) and k is not errors.TelegramCallError}
    assert kinds - set(codes.ERROR_CODES) == set()


@pytest.mark.parametrize(("reason", "answered", "answer"), [
    (DiscardReason.BUSY, False, (486, "Busy Here")),
    (DiscardReason.HANGUP, False, (603, "Declined")),
    (DiscardReason.MISSED, False, (480, "No answer")),
    (DiscardReason.DISCONNECT, False, (500, "disconnect")),
    (DiscardReason.HANGUP, True, (200, "hangup")),
])
def test_how_a_telegram_call_ended(reason, answered, answer) -> None:
    end = CallEnd(reason, by_peer=True, answered=answered, duration=0)
    assert codes.for_end(end) == answer
    assert codes.for_error(CallEnded(end)) == answer


def test_a_failed_call_answers_with_its_error() -> None:
    end = CallEnd(DiscardReason.DISCONNECT, by_peer=True, answered=False, duration=0,
                  error=errors.PeerBusy("this account is already in a call with the user"))
    assert codes.for_end(end) == (486, "this account is already in a call with the user")


@pytest.mark.parametrize(("cause", "answer", "discard"), [
    (17, (486, "Busy Here"), DiscardReason.BUSY),
    (19, (480, "No answer"), DiscardReason.MISSED),
    (21, (603, "Declined"), DiscardReason.BUSY),
    (1, (404, "Not Found"), DiscardReason.BUSY),
    (34, (503, "SIP account is unavailable"), DiscardReason.BUSY),
    (None, (480, "No answer"), DiscardReason.MISSED),
])
def test_asterisk_causes(cause, answer, discard) -> None:
    assert codes.for_cause(cause) == answer
    assert codes.discard_for(answer[0]) is discard
