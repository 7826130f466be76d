"""Failed authentications from Asterisk's security log: one line each, and bans for repeat offenders."""

from __future__ import annotations

import asyncio
import logging
import re
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from app.store.ban import Ban
from app.store.db import Database
from app.store.line import utcnow

log = logging.getLogger("tgtrunk.security")

_PAIR = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
FAILURES = {
    "InvalidAccountID": "unknown user",
    "ChallengeResponseFailed": "wrong password",
    "InvalidPassword": "wrong password",
    "FailedACL": "untrusted address",
    "AuthMethodNotAllowed": "auth method not allowed",
}


@dataclass(frozen=True)
class AuthFailure:
    kind: str
    account: str
    address: str
    port: str
    session: str

    @classmethod
    def parse(cls, line: str) -> "AuthFailure | None":
        fields = dict(_PAIR.findall(line))
        kind = FAILURES.get(fields.get("SecurityEvent", ""))
        account = fields.get("AccountID", "")
        if kind is None or account == "<unknown>":
            # "<unknown>" is Asterisk's decoy challenge that accompanies an InvalidAccountID or FailedACL.
            return None
        # RemoteAddress="IPV4/UDP/127.0.0.2/5062"
        parts = fields.get("RemoteAddress", "").split("/")
        address, port = (parts[2], parts[3]) if len(parts) >= 4 else ("?", "?")
        return cls(kind, account, address, port, fields.get("SessionID", ""))


class SecurityWatcher:
    def __init__(self, log_file: Path, db: Database, line_for_account: Callable[[str], str | None],
                 threshold: int, window_s: float, ban_s: float) -> None:
        self.log_file = log_file
        self.db = db
        self.line_for_account = line_for_account
        self.threshold = threshold
        self.window_s = window_s
        self.ban_s = ban_s
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._banned: dict[str, float] = {}
        self._last_session: tuple[str, float] = ("", 0.0)

    async def run(self) -> None:
        position = self.log_file.stat().st_size if self.log_file.exists() else 0
        buffer = b""
        while True:
            try:
                size = self.log_file.stat().st_size
            except FileNotFoundError:
                size = 0
            if size < position:
                position = 0  # a new file after a restart or rotation
            if size > position:
                with open(self.log_file, "rb") as handle:
                    handle.seek(position)
                    chunk = handle.read(size - position)
                position += len(chunk)
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                for raw in complete:
                    self.handle_line(raw.decode(errors="replace"))
            await asyncio.sleep(0.2)

    def handle_line(self, line: str) -> None:
        failure = AuthFailure.parse(line)
        if failure is None:
            return
        now = asyncio.get_running_loop().time()
        if self._banned.get(failure.address, 0) > now:
            return
        # Asterisk reports one refused request several times (ACL, then the artificial challenge);
        # a request (SIP Call-ID) counts once within a second.
        session, seen = self._last_session
        self._last_session = (failure.session, now)
        if failure.session and failure.session == session and now - seen < 1.0:
            return
        line_name = self.line_for_account(failure.account)
        where = f"line {line_name}" if line_name else "no line"
        log.warning(
            "SIP authentication failed: %s %r (%s) from %s:%s; check the PBX's username/password or the line's trusted IPs",
            failure.kind, failure.account, where, failure.address, failure.port,
        )
        times = self._failures[failure.address]
        times.append(now)
        while times and now - times[0] > self.window_s:
            times.popleft()
        if len(times) >= self.threshold:
            self._ban(failure, len(times), now)

    def _ban(self, failure: AuthFailure, count: int, now: float) -> None:
        self._banned[failure.address] = now + self.ban_s
        self._failures.pop(failure.address, None)
        until = utcnow() + timedelta(seconds=self.ban_s)
        with self.db.session() as session:
            session.merge(Ban(address=failure.address, reason=failure.kind, failures=count, until=until))
        log.warning(
            "banned %s for %.0f s after %d failed authentications in %.0f s (last: %s); `tgtrunk status` lists bans",
            failure.address, self.ban_s, count, self.window_s, failure.kind,
        )
