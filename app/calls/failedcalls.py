"""N failed calls in a row on a line: told to the line's account's administrators (folded like the others)."""

from __future__ import annotations

import logging
from collections import Counter

from app.notify import Notifier

log = logging.getLogger(__name__)

DEFAULT_FAILED_CALLS = 5


def failed(code: int) -> bool:
    """A 5xx: the gateway, Telegram or the PBX could not carry the call. 4xx and 6xx are the people's answers
    (busy, no answer, declined, unknown number) and show the line works, as a 200 does."""
    return 500 <= code < 600


class FailedCallWatch:
    def __init__(self, notifier: Notifier, threshold: int = DEFAULT_FAILED_CALLS) -> None:
        self.notifier = notifier
        self.threshold = threshold
        self.in_a_row: Counter[str] = Counter()

    def call_ended(self, line: str, account: str | None, code: int, reason: str) -> None:
        if not failed(code):
            self.in_a_row.pop(line, None)
            return
        self.in_a_row[line] += 1
        count = self.in_a_row[line]
        if count >= self.threshold:
            log.warning("line %s: %d failed calls in a row (the last: %d %s)", line, count, code, reason)
            self.notifier.notify(
                "calls-failing", f"tgtrunk: line {line}: {count} calls in a row failed (the last: {code} {reason}). "
                f"See `tgtrunk calls` and `tgtrunk logs` for why.", account=account, subject=line)
