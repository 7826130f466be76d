"""Typed Telegram errors: the one table from Telegram's error ids to error types and reasons.

Protocol-neutral: what a SIP caller hears for each type is decided in `app/calls/codes.py`.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from pyrogram import errors as tg


class TelegramError(Exception):
    """Any failure talking to Telegram."""

    def __init__(self, reason: str, retry_after: int | None = None, rpc: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.rpc = rpc  # the Telegram error id, e.g. "USER_PRIVACY_RESTRICTED"

    def __str__(self) -> str:
        return self.reason

    def copy(self) -> "TelegramError":
        """The same error, never raised: the one to keep (in a call's end). A raised error holds the frames of
        its traceback, and through them whoever keeps it: a reference cycle, freed only by a full collection."""
        return type(self)(self.reason, self.retry_after, self.rpc)


class TelegramCallError(TelegramError):
    """A call could not be placed or went wrong."""


class PrivacyRestricted(TelegramCallError):
    """The user's privacy settings do not allow this account to call."""


class PeerNotFound(TelegramCallError):
    """No such phone number or username."""


class RpcTimeout(TelegramCallError):
    """Telegram did not answer in time."""


class PeerBusy(TelegramCallError):
    """This account is already in a call with the user."""


class AnonymousUser(TelegramCallError):
    """A user id the account has never met."""


class CallerIsGateway(TelegramCallError):
    """An incoming call from another gateway account of this installation (it would loop)."""


class Flood(TelegramCallError):
    """Telegram's anti-spam limits."""


class CallFailed(TelegramCallError):
    """Anything else."""


class LoginError(TelegramError):
    """Raised by the login flow; `reason` is the message shown to the user."""


class PasswordNeeded(LoginError):
    """The account has two-step verification: ask for the password."""


@dataclass(frozen=True)
class Rule:
    rpc_ids: tuple[str, ...]
    error: type[TelegramError]
    reason: str


# The whole mapping. Order matters only for readability: ids are unique.
CALL_RULES: tuple[Rule, ...] = (
    Rule(("USER_PRIVACY_RESTRICTED",), PrivacyRestricted, "USER_PRIVACY_RESTRICTED"),
    Rule(("PRIVACY_PREMIUM_REQUIRED",), PrivacyRestricted, "PRIVACY_PREMIUM_REQUIRED"),
    Rule(("USER_IS_BLOCKED",), PrivacyRestricted, "USER_IS_BLOCKED"),
    Rule(("USERNAME_NOT_OCCUPIED",), PeerNotFound, "USERNAME_NOT_OCCUPIED"),
    Rule(("USERNAME_INVALID",), PeerNotFound, "USERNAME_INVALID"),
    Rule(("PHONE_NOT_OCCUPIED",), PeerNotFound, "Not Found"),
    Rule(("PEER_ID_INVALID", "USER_ID_INVALID"), AnonymousUser, "Anonymous user"),
    Rule(("PEER_FLOOD",), Flood, "PEER_FLOOD"),
    Rule(("FLOOD_WAIT_X", "FLOOD_PREMIUM_WAIT_X", "SLOWMODE_WAIT_X"), Flood, "Too Many Requests"),
    Rule(("PARTICIPANT_VERSION_OUTDATED",), CallFailed, "PARTICIPANT_VERSION_OUTDATED"),
)

LOGIN_RULES: tuple[Rule, ...] = (
    Rule(("PHONE_NUMBER_INVALID",), LoginError, "the phone number is not valid (use the international format, +CC…)"),
    Rule(("PHONE_NUMBER_BANNED",), LoginError, "this phone number is banned by Telegram"),
    Rule(("PHONE_CODE_INVALID",), LoginError, "the code is wrong"),
    Rule(("PHONE_CODE_EXPIRED",), LoginError, "the code has expired; run the login again to get a new one"),
    Rule(("PHONE_CODE_EMPTY",), LoginError, "no code was entered"),
    Rule(("PASSWORD_HASH_INVALID",), LoginError, "the two-step verification password is wrong"),
    Rule(("SESSION_PASSWORD_NEEDED",), PasswordNeeded, "the account has two-step verification"),
    Rule(("FLOOD_WAIT_X", "FLOOD_PREMIUM_WAIT_X"), LoginError, "too many attempts"),
    Rule(("PHONE_NUMBER_FLOOD", "PHONE_PASSWORD_FLOOD"), LoginError, "too many attempts"),
)

_CALL_INDEX = {rpc_id: rule for rule in CALL_RULES for rpc_id in rule.rpc_ids}
_LOGIN_INDEX = {rpc_id: rule for rule in LOGIN_RULES for rpc_id in rule.rpc_ids}


def rpc_id(exc: BaseException) -> str:
    """The error id Telegram sent, also for ids this pyrogram has no class for ("[400 SOME_ID]")."""
    known = getattr(exc, "ID", None)
    if known:
        return str(known)
    match = re.search(r"\[\d+ ([A-Z0-9_]+)\]", str(getattr(exc, "value", "")))
    return match.group(1) if match else type(exc).__name__


def _retry_after(exc: BaseException) -> int | None:
    value = getattr(exc, "value", None)
    if isinstance(exc, (tg.FloodWait, tg.FloodPremiumWait, tg.SlowmodeWait)) and isinstance(value, int):
        return value
    return None


def call_error(exc: BaseException) -> TelegramError:
    """Turn anything raised while talking to Telegram about a call into a typed error."""
    if isinstance(exc, TelegramError):
        return exc
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return RpcTimeout("Timeout of waiting RPC result")
    if isinstance(exc, tg.RPCError):
        rule = _CALL_INDEX.get(rpc_id(exc))
        retry_after = _retry_after(exc)
        if rule is None:
            return CallFailed(f"{rpc_id(exc)}", rpc=rpc_id(exc))
        reason = rule.reason if retry_after is None else f"{rule.reason}: retry after {retry_after}"
        return rule.error(reason, retry_after=retry_after, rpc=rpc_id(exc))
    return CallFailed(str(exc) or type(exc).__name__)


def login_error(exc: BaseException) -> TelegramError:
    if isinstance(exc, TelegramError):
        return exc
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return LoginError("Telegram did not answer in time; try again")
    if isinstance(exc, tg.RPCError):
        rule = _LOGIN_INDEX.get(rpc_id(exc))
        retry_after = _retry_after(exc)
        if rule is None:
            return LoginError(f"Telegram refused: {rpc_id(exc)}", rpc=rpc_id(exc))
        reason = rule.reason
        if retry_after is not None:
            reason = f"{reason}; Telegram asks to wait {_duration(retry_after)} before trying again"
        return rule.error(reason, retry_after=retry_after, rpc=rpc_id(exc))
    return LoginError(str(exc) or type(exc).__name__)


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} seconds"
    if seconds < 7200:
        return f"{seconds // 60} minutes"
    return f"{seconds // 3600} hours {seconds % 3600 // 60} minutes"
