"""Adding, changing and removing lines: the one way the CLI, the admin API and the admin pages do it.

Every function validates through `build_line` and raises `LineError` (bad input) or `LineNotFound` (no such
line) with a message meant for the operator. They are blocking database calls: from the event loop, run them
with `asyncio.to_thread`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any

from sqlmodel import Session, select

from app.sip.line import LineError, LineRequest, build_line, check_unique, generate_password, password_digest
from app.store.db import Database
from app.store.line import Line, LineMode, LineStatus, utcnow

REQUEST_FIELDS = frozenset(f.name for f in fields(LineRequest))


class LineNotFound(LineError):
    """No line has the given name."""


def add_line(db: Database, request: LineRequest) -> tuple[Line, str | None]:
    """Store a new line; returns it and the generated password (to show once), if any."""
    line, generated = build_line(request)
    with db.session() as session:
        check_unique(list(session.exec(select(Line))), line)
        session.add(line)
    return line, generated


def update_line(db: Database, name: str, changes: Mapping[str, Any]) -> tuple[Line, str | None]:
    """Change some settings of a line (`changes` holds LineRequest fields); the others stay as they are.

    Without a new password the stored digest is kept, as long as what it was made from (mode, username,
    realm) stays; returns the line and a generated password (to show once), if one was made."""
    unknown = sorted(set(changes) - REQUEST_FIELDS)
    if unknown:
        raise LineError(f"unknown line setting {unknown[0]!r}")
    with db.session() as session:
        line = _get(session, name)
        request = replace(request_of(line), **changes)
        keep_digest = (not request.password and line.mode in (LineMode.REGISTER, LineMode.OUTBOUND)
                       and request.mode == line.mode.value
                       and request.username == line.username and (request.realm or None) == line.realm)
        if keep_digest:
            request.password = "unchanged"  # only to pass validation: the stored digest replaces it below
        elif not request.password and request.mode == LineMode.OUTBOUND.value:
            raise LineError("changing the mode, username or realm of an outbound line needs --password: only a "
                            "digest of the old one is stored, and it cannot be made again for the new values")
        updated, generated = build_line(request)
        if keep_digest:
            updated.password_digest, generated = line.password_digest, None
        check_unique(list(session.exec(select(Line))), updated, exclude_id=line.id)
        for key, value in updated.model_dump(exclude={"id", "created_at"}).items():
            setattr(line, key, value)
        line.updated_at = utcnow()
        session.add(line)
    return line, generated


def remove_line(db: Database, name: str) -> None:
    with db.session() as session:
        session.delete(_get(session, name))
        status = session.get(LineStatus, name)
        if status:
            session.delete(status)


def reset_password(db: Database, name: str, password: str | None = None) -> str:
    """Set a line's password: the given one, or (register lines only) a generated one. Returns the password."""
    with db.session() as session:
        line = _get(session, name)
        if line.mode is LineMode.IP:
            raise LineError(f"line {name} is an ip line: it has no password")
        if line.mode is LineMode.OUTBOUND and not password:
            raise LineError(f"line {name} is an outbound line: its password is the PBX's, so it cannot be "
                            "generated here; give it with --password")
        password = password or generate_password()
        assert line.username and line.realm
        line.password_digest = password_digest(line.username, line.realm, password)
        line.updated_at = utcnow()
        session.add(line)
    return password


def request_of(line: Line) -> LineRequest:
    """A stored line as the request that makes it again (without its password: only a digest is stored)."""
    return LineRequest(
        name=line.name, mode=line.mode.value, username=line.username, realm=line.realm,
        trusted_ips=tuple(line.trusted_ips), server=line.server, domain=line.domain, proxy=line.proxy,
        host=line.host, headers=tuple(line.headers), pbx_number=line.pbx_number, codecs=line.codecs,
        dtmf=line.dtmf.value, rules=tuple(line.rules), callerid_templates=tuple(line.callerid_templates),
        callername_template=line.callername_template, identity_header=line.identity_header,
        callerid_in_from=line.callerid_in_from, priority=line.priority, max_calls=line.max_calls,
        account=line.account, callback_number=line.callback_number,
        callback_take_number=line.callback_take_number, record=line.record, record_chat=line.record_chat,
        originate=line.originate)


def _get(session: Session, name: str) -> Line:
    line = session.exec(select(Line).where(Line.name == name)).first()
    if line is None:
        raise LineNotFound(f"no line named {name!r}")
    return line
