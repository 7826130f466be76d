"""What a PBX dialled, turned into a Telegram target: the line's number rules, then the dial string.

Rules are `REGEX=REPLACEMENT`, applied in order to the whole dialled string (a rule whose regex does
not match leaves it as it is); `\\1` and `\\g<name>` refer to groups. Dial strings after the rules:

| dialled | target |
|---|---|
| `+15551234`, `15551234` | phone number +15551234 |
| `@alice`, `%40alice`, `alice` (starts with a letter) | username alice |
| `id123456789`, `tg123456789` | Telegram user id 123456789 |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote

_PHONE = re.compile(r"^\+?(\d{5,15})$")
_USERNAME = re.compile(r"^@?([A-Za-z][A-Za-z0-9_]{3,31})$")
_USER_ID = re.compile(r"^(?:id|tg)(\d{1,20})$", re.IGNORECASE)


class TargetKind(StrEnum):
    PHONE = "phone"
    USERNAME = "username"
    USER_ID = "user_id"


class DialError(ValueError):
    """The dialled string names no Telegram user; the message says which forms are understood."""


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    value: str

    def __str__(self) -> str:
        return {"phone": "+", "username": "@", "user_id": "id"}[self.kind.value] + self.value


def apply_rules(rules: list[str], dialled: str) -> str:
    number = dialled
    for rule in rules:
        pattern, _, replacement = rule.rpartition("=")
        number = re.sub(f"^(?:{pattern})$", replacement, number)
    return number


def parse_target(dialled: str) -> Target:
    text = unquote(dialled).strip()
    if match := _USER_ID.match(text):
        return Target(TargetKind.USER_ID, match.group(1))
    if match := _PHONE.match(text):
        return Target(TargetKind.PHONE, match.group(1))
    if match := _USERNAME.match(text):
        return Target(TargetKind.USERNAME, match.group(1))
    raise DialError(
        f"{dialled!r} is not a Telegram target: dial +PHONE, @username (or a name starting with a letter) or idUSERID"
    )


def target_for(rules: list[str], dialled: str) -> Target:
    return parse_target(apply_rules(rules, dialled))
