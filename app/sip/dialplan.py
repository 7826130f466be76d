"""A line's number rules, applied to what a PBX dialled (the result is parsed by `app.telegram.target`).

Rules are `REGEX=REPLACEMENT`, applied in order to the whole dialled string (a rule whose regex does
not match leaves it as it is); `\\1` and `\\g<name>` refer to groups. A rule is checked when it is saved exactly
as it is applied (`compile_rule`), and all of a line's rules together get RULE_TIME_LIMIT_S per call, since they
run on the event loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import regex

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
