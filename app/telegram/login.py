"""Interactive login of a user account: code, then the two-step verification password if the account has one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pyrogram import Client, raw
from pyrogram import errors as tg

from app.telegram.errors import LoginError, PasswordNeeded, login_error
from app.telegram.peer import Peer

MAX_ATTEMPTS = 3

Ask = Callable[[str], Awaitable[str] | str]
Say = Callable[[str], None]


@dataclass
class LoginResult:
    me: Peer
    session_string: str


async def _ask(ask: Ask, prompt: str) -> str:
    answer = ask(prompt)
    if not isinstance(answer, str):
        answer = await answer
    return answer.strip()


async def login(client: Client, phone: str, ask_code: Ask, ask_password: Ask, say: Say) -> LoginResult:
    """Run the flow on a connected-but-unauthorized client; raises `LoginError` with a user-facing reason."""
    try:
        sent = await client.send_code(phone)
    except Exception as exc:  # noqa: BLE001
        raise login_error(exc) from exc
    say(f"Telegram sent a login code to the Telegram apps of {phone}.")
    user = None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        code = await _ask(ask_code, "Code: ")
        try:
            user = await client.sign_in(phone, sent.phone_code_hash, code)
            break
        except tg.SessionPasswordNeeded:
            user = await _password(client, ask_password, say)
            break
        except Exception as exc:  # noqa: BLE001
            error = login_error(exc)
            if isinstance(error, PasswordNeeded):
                user = await _password(client, ask_password, say)
                break
            if error.rpc == "PHONE_CODE_INVALID" and attempt < MAX_ATTEMPTS:
                say(f"{error.reason}; try again.")
                continue
            raise error from exc
    if user is None or not hasattr(user, "id") or isinstance(user, bool):
        raise LoginError(f"{phone} has no Telegram account yet; sign up in a Telegram app first")
    full = await client.invoke(raw.functions.users.GetFullUser(id=raw.types.InputUserSelf()))
    return LoginResult(Peer.from_user(full.users[0]), await client.export_session_string())


async def _password(client: Client, ask_password: Ask, say: Say) -> object:
    for attempt in range(1, MAX_ATTEMPTS + 1):
        # The password is used for the SRP proof only: never logged, never stored.
        password = await _ask(ask_password, "Two-step verification password: ")
        try:
            return await client.check_password(password)
        except Exception as exc:  # noqa: BLE001
            error = login_error(exc)
            if error.rpc == "PASSWORD_HASH_INVALID" and attempt < MAX_ATTEMPTS:
                say(f"{error.reason}; try again.")
                continue
            raise error from exc
    raise LoginError("the two-step verification password is wrong")
