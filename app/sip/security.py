"""Failed authentications from Asterisk's security log: one line each, and bans for repeat offenders."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

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


# Asterisk answers a request that names no endpoint, or fails an endpoint's ACL, with a decoy challenge from an
# artificial endpoint: every such request ends with an event for AccountID "<unknown>", ChallengeSent (no
# credentials) or ChallengeResponseFailed (credentials, always wrong). These decoy events are what is counted, one
# per request. InvalidAccountID, which names the user, is logged only for some of them (from the fifth unidentified
# request of an address in a few seconds), FailedACL for each; either comes just before its request's decoy event.
DECOY_ACCOUNT = "<unknown>"

# A request refused for a reason that its own retry can cure: an INVITE whose From user (often "anonymous") names
# no endpoint is challenged, and the PBX's authenticated retry (same Call-ID) then succeeds. Such a failure is held
# this long and forgotten if that retry succeeds.
RETRY_GRACE_S = 2.0
STORE_RETRY_S = 2.0  # a ban the database could not take is tried again this often
FORGET_EVERY_S = 10.0  # how often addresses that stopped failing, and bans that ended, are forgotten


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
    challenged: bool = False  # the decoy challenge of a request without credentials (ChallengeSent "<unknown>")

    @classmethod
    def parse(cls, line: str) -> "AuthFailure | None":
        fields = dict(_PAIR.findall(line))
        event = fields.get("SecurityEvent", "")
        account = fields.get("AccountID", "")
        kind = FAILURES.get(event)
        if account == DECOY_ACCOUNT:
            if event not in ("ChallengeSent", "ChallengeResponseFailed"):
                return None
            # What the request named is not logged here; the event just before it may say (see handle_line).
            kind = FAILURES["InvalidAccountID"]
        if kind is None:
            return None
        # RemoteAddress="IPV4/UDP/127.0.0.2/5062"
        parts = fields.get("RemoteAddress", "").split("/")
        address, port = (parts[2], parts[3]) if len(parts) >= 4 else ("?", "?")
        return cls(kind, account, address, port, fields.get("SessionID", ""), event == "ChallengeSent")

    @property
    def decoy(self) -> bool:
        return self.account == DECOY_ACCOUNT


@dataclass
class _Challenged:
    """A request without credentials that got a decoy challenge: its answer (same Call-ID) is the same attempt."""

    failure: AuthFailure
    seen: float
    counted: bool


class FollowedFile:
    """A log file read as it grows, followed by name like `tail -F`: after a rename rotation (a new file under the
    name, another inode) the old file is read to its end and the new one from its start; a file truncated in place
    (copytruncate) is read again from its start. A file missing at first is read from its start once it appears;
    one present at first from its end (what came before is not news)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: BinaryIO | None = None
        self._buffer = b""
        self._open(at_end=True)

    def _open(self, at_end: bool) -> None:
        try:
            handle = open(self.path, "rb")
        except FileNotFoundError:
            return
        if at_end:
            handle.seek(0, os.SEEK_END)
        self._handle = handle

    def read_lines(self) -> list[str]:
        if self._handle is None:
            self._open(at_end=False)
            if self._handle is None:
                return []
        data = self._handle.read()
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            current = None  # renamed away and not yet recreated: keep reading the old file
        if current is not None:
            opened = os.fstat(self._handle.fileno())
            if (current.st_ino, current.st_dev) != (opened.st_ino, opened.st_dev):
                data += self._handle.read()  # what was written just before the rename
                self._handle.close()
                self._handle = None
                if self._buffer or data:
                    data += b"\n"  # the old file's last line ends here even without its newline
                log.info("%s was rotated: reading the new file", self.path)
                self._open(at_end=False)
                if self._handle is not None:
                    data += self._handle.read()
            elif current.st_size < self._handle.tell():
                log.info("%s was truncated: reading it from the start", self.path)
                self._handle.seek(0)
                data += self._handle.read()
        self._buffer += data
        *complete, self._buffer = self._buffer.split(b"\n")
        return [raw.decode(errors="replace") for raw in complete if raw]

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


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
        self._challenged: dict[str, list[_Challenged]] = defaultdict(list)  # by SessionID
        self._named: tuple[AuthFailure, float] | None = None  # InvalidAccountID / FailedACL before its decoy event
        self._last_counted: dict[str, tuple[str, float]] = {}  # by address: (SessionID, when)
        self._unstored: dict[str, Ban] = {}  # bans in force that the database could not take yet
        self._store_retry_at = 0.0
        self._forget_at = 0.0

    def active_bans(self, now: float | None = None) -> list[str]:
        """Addresses banned now, whether or not the database holds the ban (LineSync pushes both)."""
        now = asyncio.get_running_loop().time() if now is None else now
        return sorted(address for address, until in self._banned.items() if until > now)

    async def run(self) -> None:
        log_file = FollowedFile(self.log_file)
        try:
            while True:
                for line in log_file.read_lines():
                    self.handle_line(line)
                self.flush()
                await asyncio.sleep(0.2)
        finally:
            log_file.close()

    def handle_line(self, line: str, now: float | None = None) -> None:
        now = asyncio.get_running_loop().time() if now is None else now
        succeeded = successful_request(line)
        if succeeded is not None:
            session, address = succeeded
            # The unidentified request's authenticated retry got in: its challenge is forgiven.
            self._challenged[session] = [c for c in self._challenged.pop(session, []) if c.failure.address != address]
            if not self._challenged[session]:
                del self._challenged[session]
            if self._named and (self._named[0].session, self._named[0].address) == (session, address):
                self._named = None
            return
        failure = AuthFailure.parse(line)
        if failure is None:
            return
        if not failure.decoy:
            self._settle_named(now)
            if failure.kind in (FAILURES["InvalidAccountID"], FAILURES["FailedACL"]):
                self._named = (failure, now)  # its request's decoy event follows
            else:
                self._count(failure, now)  # a wrong password for a line's own user
            return
        named = self._named[0] if self._named and self._named[0].session == failure.session else None
        if named is not None:
            self._named = None
        else:
            self._settle_named(now)
        request = named or failure  # the same request, with the user it named and the precise reason
        if failure.challenged:
            # An unidentified request can still be cured by its authenticated retry; an untrusted address cannot.
            definite = request.kind != FAILURES["InvalidAccountID"]
            if definite:
                self._count(request, now)
            self._challenged[request.session].append(_Challenged(request, now, definite))
            return
        # Credentials for no usable endpoint: a failed attempt, together with the challenge it answers, if any.
        waiting = self._challenged.get(request.session)
        challenge = waiting.pop(0) if waiting else None
        if waiting is not None and not waiting:
            del self._challenged[request.session]
        if challenge is None:
            self._count(request, now)
        elif not challenge.counted:
            self._count(request if challenge.failure.decoy else challenge.failure, now)

    def _settle_named(self, now: float) -> None:
        """A named failure whose decoy event never came is a request of its own."""
        if self._named is None:
            return
        failure, seen = self._named
        self._named = None
        counted = failure.kind != FAILURES["InvalidAccountID"]
        if counted:
            self._count(failure, now)
        self._challenged[failure.session].append(_Challenged(failure, seen, counted))

    def flush(self, now: float | None = None) -> None:
        """Count the challenged requests that were not retried successfully in time."""
        now = asyncio.get_running_loop().time() if now is None else now
        if self._named and now - self._named[1] >= RETRY_GRACE_S:
            self._settle_named(now)
        for session, waiting in list(self._challenged.items()):
            while waiting and now - waiting[0].seen >= RETRY_GRACE_S:
                first = waiting.pop(0)
                if not first.counted:
                    self._count(first.failure, now)
            if not waiting:
                del self._challenged[session]
        if self._unstored and now >= self._store_retry_at:
            self._store_unstored(now)
        if now >= self._forget_at:
            self._forget_at = now + FORGET_EVERY_S
            self._forget(now)

    def _forget(self, now: float) -> None:
        """What is kept per address lasts no longer than it counts: failures from many addresses (a spray, a
        NATed crowd) must not grow the gateway for ever."""
        for address in [a for a, times in self._failures.items() if not times or now - times[-1] > self.window_s]:
            del self._failures[address]
        for address in [a for a, (_, at) in self._last_counted.items() if now - at > self.window_s]:
            del self._last_counted[address]
        for address in [a for a, until in self._banned.items() if until <= now]:
            del self._banned[address]

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
        # A client retrying one request with new credentials at once (baresip sends a dozen within milliseconds,
        # same Call-ID) makes one attempt: a Call-ID counts at most once a second.
        session, counted_at = self._last_counted.get(failure.address, ("", 0.0))
        if failure.session and failure.session == session and now - counted_at < 1.0:
            return
        self._last_counted[failure.address] = (failure.session, now)
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
        self._last_counted.pop(failure.address, None)
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
