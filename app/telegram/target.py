"""Who to call: the one grammar for naming a Telegram user, with the limits Telegram has.

| text | target |
|---|---|
| `+15551234`, `15551234` | phone number (E.164: 5 to 15 digits) |
| `@alice`, `%40alice`, `alice` (starts with a letter) | username (4 to 32 letters, digits and `_`; 4 is the
  shortest Telegram sells, 5 the shortest one can pick) |
| `id123456789`, `tg123456789` | user id |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote

_PHONE = re.compile(r"^\+?(\d{5,15})$")
_USERNAME = re.compile(r"^@?([A-Za-z][A-Za-z0-9_]{3,31})$")
_USER_ID = re.compile(r"^(?:id|tg)(\d{1,19})$", re.IGNORECASE)


class TargetKind(StrEnum):
    PHONE = "phone"
    USERNAME = "username"
    USER_ID = "user_id"


class TargetError(ValueError):
    """The text names no Telegram user; the message says which forms are understood."""


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    value: str  # digits of the phone number (no "+"), the username (no "@"), or the user id's digits

    def __str__(self) -> str:
        return {"phone": "+", "username": "@", "user_id": "id"}[self.kind.value] + self.value


def parse_target(text: str) -> Target:
    clean = unquote(text).strip()
    if match := _USER_ID.match(clean):
        return Target(TargetKind.USER_ID, match.group(1))
    if match := _PHONE.match(clean):
        return Target(TargetKind.PHONE, match.group(1))
    if match := _USERNAME.match(clean):
        return Target(TargetKind.USERNAME, match.group(1))
    raise TargetError(
        f"{text!r} is not a Telegram target: dial +PHONE, @username (or a name starting with a letter) or idUSERID"
    )
