"""What a PBX dialled, turned into a Telegram target: the line's number rules, then the dial string.

Rules are `REGEX=REPLACEMENT`, applied in order to the whole dialled string (a rule whose regex does
not match leaves it as it is); `\\1` and `\\g<name>` refer to groups. A rule is checked when it is saved exactly
as it is applied (`compile_rule`), and all of a line's rules together get RULE_TIME_LIMIT_S per call, since they
run on the event loop. Dial strings after the rules:

| dialled | target |
|---|---|
| `+15551234`, `15551234` | phone number +15551234 |
| `@alice`, `%40alice`, `alice` (starts with a letter) | username alice |
| `id123456789`, `tg123456789` | Telegram user id 123456789 |
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from urllib.parse import unquote

import regex

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


# The `regex` engine (not `re`) for its time limit: a rule with catastrophic backtracking must not stall every
# call of the gateway. Its inline flags apply from where they are written (`(?i)ECHO`: the whole pattern).
RULE_TIME_LIMIT_S = 0.025


class RuleError(ValueError):
    """A number rule that cannot be used or that failed on a dialled string; the message names the rule."""


@dataclass(frozen=True)
class Rule:
    text: str
    pattern: regex.Pattern[str]
    replacement: str


@lru_cache(maxsize=512)
def compile_rule(text: str) -> Rule:
    """The rule as it is applied: the pattern must match the whole string; the replacement's group
    references must exist in the pattern."""
    pattern, sep, replacement = text.rpartition("=")
    if not sep or not pattern:
        raise RuleError(f"rule {text!r} must look like 'REGEX=REPLACEMENT'")
    try:
        compiled = regex.compile(f"^(?:{pattern})$")
    except regex.error as exc:
        raise RuleError(f"rule {text!r}: bad regular expression ({exc})") from None
    try:
        # With an empty alternative every pattern matches "", so the replacement is expanded once: a reference to
        # a group the pattern lacks fails here rather than on a call.
        regex.compile(f"(?:{pattern})|").sub(replacement, "", count=1)
    except (regex.error, IndexError) as exc:
        raise RuleError(f"rule {text!r}: bad replacement {replacement!r} ({exc})") from None
    return Rule(text, compiled, replacement)


def apply_rules(rules: list[str], dialled: str) -> str:
    """Raises RuleError for a rule that cannot be used or that runs out of time."""
    number = dialled
    deadline = time.monotonic() + RULE_TIME_LIMIT_S
    for text in rules:
        rule = compile_rule(text)
        try:
            number = rule.pattern.sub(rule.replacement, number, timeout=max(deadline - time.monotonic(), 0.001))
        except TimeoutError:
            raise RuleError(
                f"rule {text!r} gave no answer for {number!r} within {RULE_TIME_LIMIT_S * 1000:.0f} ms "
                "(a pattern that backtracks too much); simplify it"
            ) from None
        except (regex.error, IndexError) as exc:
            raise RuleError(f"rule {text!r} failed on {number!r} ({exc})") from None
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
