"""What the administrators are told about, and how it reaches them through the session accounts."""

from __future__ import annotations

import asyncio
import logging

from pyrogram import raw

from app.calls.accounts import Accounts
from app.notify import Notifier
from app.store.line import Line, LineMode
from app.telegram.errors import _retry_after, rpc_id

log = logging.getLogger(__name__)

# The session is gone: only a new login helps.
REVOKED = frozenset({"AUTH_KEY_UNREGISTERED", "AUTH_KEY_INVALID", "SESSION_REVOKED", "SESSION_EXPIRED",
                     "USER_DEACTIVATED", "USER_DEACTIVATED_BAN", "AUTH_KEY_PERM_EMPTY"})


class SessionAccountSender:
    """Sends as the account itself; when that account cannot (its session is what broke, or flood limits dropped
    the message), as another running one. Through the account's ChatSender, so its spacing and FLOOD_WAIT hold."""

    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts

    async def send(self, account: str, to: str, text: str) -> None:
        handles = sorted(self.accounts.handles.values(), key=lambda h: h.name != account)
        error: Exception = LookupError("no Telegram account is running")
        for handle in handles:
            try:
                account = handle.account
                peer = await (account.resolve_user_id(int(to)) if to.isdigit() else account.resolve(to))
                if handle.chat is None:
                    await handle.account.send_message(peer, text)
                    return
                if await handle.chat.text(peer, text):
                    return
                raise RuntimeError(f"account {handle.name} did not send it (see the chat: log line)")
            except Exception as exc:  # noqa: BLE001 - try the next account
                error = exc
                log.debug("account %s could not send a notification to %s: %s", handle.name, to, exc)
        raise error


async def watch_accounts(accounts: Accounts, notifier: Notifier, every_s: float, flood_threshold_s: int) -> None:
    """Ask each account for itself now and then: a revoked session or a limited account is told to its admins."""
    while True:
        for name, handle in list(accounts.handles.items()):
            try:
                await handle.account.invoke(raw.functions.users.GetFullUser(id=raw.types.InputUserSelf()))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - classified below; anything else is a passing network error
                account_error(notifier, name, exc, flood_threshold_s)
        await asyncio.sleep(every_s)


def account_error(notifier: Notifier, name: str, exc: BaseException, flood_threshold_s: int) -> None:
    rpc = rpc_id(exc)
    if rpc in REVOKED:
        log.error("Telegram account %s: its session was revoked or logged out (%s)", name, rpc)
        notifier.notify("session-revoked", f"tgtrunk: the Telegram session of account {name} was revoked or logged "
                        f"out ({rpc}); its calls are refused. Log it in again: tgtrunk account login {name} "
                        "--phone +…", account=name)
    elif rpc == "PEER_FLOOD" or (rpc.startswith("FLOOD") and (_retry_after(exc) or 0) >= flood_threshold_s):
        wait = _retry_after(exc)
        notifier.notify("account-limited", f"tgtrunk: Telegram limits account {name} ({rpc}"
                        f"{f', retry after {wait} s' if wait else ''}); calls to new numbers may fail until it "
                        "ends. Call fewer new contacts from it.", account=name)
    else:
        log.debug("account %s check failed: %s", name, exc)


def line_state_changed(notifier: Notifier, line: Line, old: str | None, new: str) -> None:
    if line.mode is LineMode.OUTBOUND:
        if new == "rejected":
            notifier.notify("registration-rejected", f"tgtrunk: line {line.name}: the PBX {line.server} rejected the "
                            f"registration of {line.username}. Check the username and password: tgtrunk line set "
                            f"{line.name} --password …", account=line.account, subject=line.name)
        elif old == "registered":
            notifier.notify("registration-lost", f"tgtrunk: line {line.name}: the registration to {line.server} was "
                            f"lost ({new}); calls from Telegram cannot reach the PBX. Check that the PBX is up.",
                            account=line.account, subject=line.name)
    elif line.mode is LineMode.REGISTER and old == "registered" and new != "registered":
        notifier.notify("pbx-unregistered", f"tgtrunk: line {line.name}: the PBX ({line.username}) stopped "
                        "registering; calls from Telegram to it fail. Check the PBX's trunk.",
                        account=line.account, subject=line.name)
