"""Every Telegram failure surfaces as a typed error with the SIP code of the Troubleshooting page."""

from __future__ import annotations

import asyncio

import pytest
from pyrogram import errors as tg
from pyrogram import raw

from app.calls import codes
from app.telegram import errors
from app.telegram.account import TelegramAccount
from app.telegram.sim import Behaviour, Privacy, SimNetwork
from app.telegram.sim.network import TIMEOUT, error_code

from tests.telegram.conftest import IncomingCalls, PhoneFactory


def rpc(message: str) -> tg.RPCError:
    """The exception pyrogram itself raises when Telegram answers with `message`."""
    try:
        tg.RPCError.raise_it(raw.types.RpcError(error_code=error_code(message), error_message=message),
                             raw.functions.phone.RequestCall)
    except tg.RPCError as exc:
        return exc
    raise AssertionError("raise_it did not raise")


@pytest.mark.parametrize(
    ("message", "kind", "sip_code", "retry_after"),
    [
        ("USER_PRIVACY_RESTRICTED", errors.PrivacyRestricted, 403, None),
        ("PRIVACY_PREMIUM_REQUIRED", errors.PrivacyRestricted, 403, None),
        ("USERNAME_NOT_OCCUPIED", errors.PeerNotFound, 404, None),
        ("PHONE_NOT_OCCUPIED", errors.PeerNotFound, 404, None),
        ("PEER_ID_INVALID", errors.AnonymousUser, 470, None),
        ("PEER_FLOOD", errors.Flood, 503, None),
        ("FLOOD_WAIT_42", errors.Flood, 503, 42),
        ("CALL_PROTOCOL_FLAGS_INVALID", errors.CallFailed, 500, None),
        ("SOMETHING_NEW_FROM_TELEGRAM", errors.CallFailed, 500, None),
    ],
)
def test_call_error_table(message: str, kind: type, sip_code: int, retry_after: int | None) -> None:
    error = errors.call_error(rpc(message))
    assert type(error) is kind
    assert (codes.for_error(error).code, error.retry_after) == (sip_code, retry_after)
    assert error.rpc == message or (message.startswith("FLOOD_WAIT") and error.rpc == "FLOOD_WAIT_X")


def test_timeouts_are_408() -> None:
    assert codes.for_error(errors.call_error(TimeoutError("Request timed out"))).code == 408
    assert codes.for_error(errors.call_error(asyncio.TimeoutError())) == (408, "Timeout of waiting RPC result")


def test_flood_reason_says_how_long() -> None:
    assert codes.for_error(errors.call_error(rpc("FLOOD_WAIT_42"))) == (503, "Too Many Requests: retry after 42")


@pytest.mark.parametrize(
    ("message", "text"),
    [
        ("PHONE_NUMBER_INVALID", "the phone number is not valid"),
        ("PHONE_CODE_INVALID", "the code is wrong"),
        ("PHONE_CODE_EXPIRED", "the code has expired"),
        ("PASSWORD_HASH_INVALID", "password is wrong"),
        ("FLOOD_WAIT_300", "wait 5 minutes"),
    ],
)
def test_login_error_table(message: str, text: str) -> None:
    assert text in errors.login_error(rpc(message)).reason


def test_password_needed_is_its_own_type() -> None:
    assert isinstance(errors.login_error(rpc("SESSION_PASSWORD_NEEDED")), errors.PasswordNeeded)


# --- end to end through the simulated servers ------------------------------------------------------

async def expect(coro: object, kind: type[errors.TelegramError], sip_code: int) -> errors.TelegramError:
    with pytest.raises(kind) as info:
        await coro  # type: ignore[misc]
    assert codes.for_error(info.value).code == sip_code
    return info.value


async def test_privacy_restricted(gateway: TelegramAccount, make_phone: PhoneFactory) -> None:
    await make_phone("nobody_calls", privacy=Privacy(calls="nobody"))
    error = await expect(gateway.call("@nobody_calls"), errors.PrivacyRestricted, 403)
    assert error.reason == "USER_PRIVACY_RESTRICTED"


async def test_privacy_premium_required(gateway: TelegramAccount, make_phone: PhoneFactory) -> None:
    await make_phone("premium_only", privacy=Privacy(calls="premium"))
    error = await expect(gateway.call("@premium_only"), errors.PrivacyRestricted, 403)
    assert error.reason == "PRIVACY_PREMIUM_REQUIRED"


async def test_hidden_phone_resolves_by_import_and_contacts_privacy_applies(
        gateway: TelegramAccount, make_phone: PhoneFactory, network: SimNetwork) -> None:
    shy = await make_phone("shy", privacy=Privacy(calls="contacts", phone_discoverable=False))
    peer = await gateway.resolve(f"+{shy.user.phone}")
    assert peer.username == "shy"
    assert "contacts.ImportContacts" in {name for _uid, name in network.requests}
    await expect(gateway.call(peer), errors.PrivacyRestricted, 403)
    shy.user.contacts.add(gateway.me.id)  # shy adds the gateway to contacts: now it may call
    call = await gateway.call(peer)
    await call.wait_ringing(5)
    await call.hangup()


async def test_unknown_username_and_phone(gateway: TelegramAccount) -> None:
    error = await expect(gateway.resolve("@no_such_user"), errors.PeerNotFound, 404)
    assert error.reason == "USERNAME_NOT_OCCUPIED"
    await expect(gateway.resolve("+15557777777"), errors.PeerNotFound, 404)


async def test_id_never_seen_is_anonymous(gateway: TelegramAccount, network: SimNetwork) -> None:
    stranger = network.add_user("+15558888888", "Stranger", username="stranger")
    await expect(gateway.resolve_user_id(stranger.id), errors.AnonymousUser, 470)
    await gateway.resolve("@stranger")  # now the account has met them
    assert (await gateway.resolve(f"id{stranger.id}")).username == "stranger"


async def test_rpc_timeout(gateway: TelegramAccount, make_phone: PhoneFactory, network: SimNetwork) -> None:
    await make_phone("slowpoke")
    peer = await gateway.resolve("@slowpoke")
    gateway.rpc_timeout = 0.3
    network.inject("phone.RequestCall", TIMEOUT)
    await expect(gateway.call(peer), errors.RpcTimeout, 408)


@pytest.mark.parametrize(("injected", "retry_after"), [("PEER_FLOOD", None), ("FLOOD_WAIT_30", 30)])
async def test_flood(gateway: TelegramAccount, make_phone: PhoneFactory, network: SimNetwork,
                     injected: str, retry_after: int | None) -> None:
    await make_phone("popular")
    network.inject("phone.RequestCall", injected)
    error = await expect(gateway.call("@popular"), errors.Flood, 503)
    assert error.retry_after == retry_after


async def test_incoming_call_from_another_gateway_is_flagged(gateway: TelegramAccount, incoming: IncomingCalls,
                                                             make_phone: PhoneFactory) -> None:
    other = await make_phone("other_gw")
    gateway.gateway_user_ids.add(other.user.id)
    await other.call("@tgtrunk_gw")
    call = await asyncio.wait_for(incoming.get(), 5)
    assert call.from_gateway
    await call.hangup()
