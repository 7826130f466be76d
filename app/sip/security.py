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

from sqlalchemy.exc import SQLAlchemyError

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


# A request refused for a reason that its own retry can cure: Asterisk logs InvalidAccountID for an INVITE whose
# From user (often "anonymous") names no endpoint, challenges it, and the PBX's authenticated retry (same Call-ID)
# then succeeds. Such a failure is held this long and forgotten if that retry succeeds.
RETRY_GRACE_S = 2.0
STORE_RETRY_S = 2.0  # a ban the database could not take is tried again this often


def successful_request(line: str) -> tuple[str, str] | None:
    """(SessionID i.e. SIP Call-ID, remote address) of a SuccessfulAuth event, else None."""
    fields = dict(_PAIR.findall(line))
    if fields.get("SecurityEvent") != "SuccessfulAuth" or not fields.get("SessionID"):
        return None
    parts = fields.get("RemoteAddress", "").split("/")
    return fields["SessionID"], parts[2] if len(parts) >= 4 else "?"


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
        self._pending: dict[str, tuple[AuthFailure, float]] = {}  # by SessionID, until RETRY_GRACE_S passes
        self._last_session: tuple[str, float] = ("", 0.0)
        self._unstored: dict[str, Ban] = {}  # bans in force that the database could not take yet
        self._store_retry_at = 0.0

    def active_bans(self, now: float | None = None) -> list[str]:
        """Addresses banned now, whether or not the database holds the ban (LineSync pushes both)."""
        now = asyncio.get_running_loop().time() if now is None else now
        return sorted(address for address, until in self._banned.items() if until > now)

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
            self.flush()
            await asyncio.sleep(0.2)

    def handle_line(self, line: str, now: float | None = None) -> None:
        now = asyncio.get_running_loop().time() if now is None else now
        succeeded = successful_request(line)
        if succeeded is not None:
            session, address = succeeded
            pending = self._pending.get(session)
            if pending is not None and pending[0].address == address:
                del self._pending[session]  # the unidentified request's authenticated retry got in
            return
        failure = AuthFailure.parse(line)
        if failure is None:
            return
        if failure.kind == FAILURES["InvalidAccountID"] and failure.session:
            # Only an unidentified request can be cured by its own authenticated retry; it waits for that.
            self._pending.setdefault(failure.session, (failure, now))
            return
        # Asterisk reports one refused request several times (ACL, then the artificial challenge);
        # a request (SIP Call-ID) counts once within a second.
        session, seen = self._last_session
        self._last_session = (failure.session, now)
        if failure.session and failure.session == session and now - seen < 1.0:
            return
        self._count(failure, now)

    def flush(self, now: float | None = None) -> None:
        """Count the failures whose request was not retried successfully in time."""
        now = asyncio.get_running_loop().time() if now is None else now
        for session, (failure, seen) in list(self._pending.items()):
            if now - seen >= RETRY_GRACE_S:
                del self._pending[session]
                self._count(failure, now)
        if self._unstored and now >= self._store_retry_at:
            self._store_unstored(now)

    def _store_unstored(self, now: float) -> None:
        try:
            with self.db.session() as session:
                for ban in self._unstored.values():
                    session.merge(ban)
        except SQLAlchemyError as exc:
            self._store_retry_at = now + STORE_RETRY_S
            log.debug("bans not stored yet: %s", exc)
            return
        if self._store_retry_at:
            log.info("the database took the ban(s) kept in memory: %s", ", ".join(self._unstored))
        self._store_retry_at = 0.0
        self._unstored.clear()

    def _count(self, failure: AuthFailure, now: float) -> None:
        if self._banned.get(failure.address, 0) > now:
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
        ban = Ban(address=failure.address, reason=failure.kind, failures=count,
                  until=utcnow() + timedelta(seconds=self.ban_s))
        log.warning(
            "banned %s for %.0f s after %d failed authentications in %.0f s (last: %s); `tgtrunk status` lists bans",
            failure.address, self.ban_s, count, self.window_s, failure.kind,
        )
        self._unstored[ban.address] = ban
        self._store_unstored(now)
        if ban.address in self._unstored:
            log.warning("the ban of %s is kept in memory and enforced, but not stored: the database cannot be "
                        "written (%s); it is stored when the database recovers", ban.address, self.db.write_error)
