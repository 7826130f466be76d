"""Administrators of a Telegram account: who is told when something needs a person (reference: "Session and
Administrator Account Roles")."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from app.store.line import utcnow

_ADMIN = re.compile(r"^(@[A-Za-z][A-Za-z0-9_]{3,31}|[1-9][0-9]{0,15})$")


class AdminError(ValueError):
    """An administrator that cannot be stored; the message says why."""


def check_admin(who: str) -> str:
    """A Telegram user id (digits) or @username, as stored."""
    who = who.strip()
    if _ADMIN.match(who):
        return who
    if _ADMIN.match("@" + who) and not who.isdigit():
        return "@" + who
    raise AdminError(f"{who!r} is neither a Telegram user id (digits) nor an @username (5-32 letters, digits, _)")


class AccountAdmin(SQLModel, table=True):
    __tablename__ = "account_admin"
    __table_args__ = (UniqueConstraint("account", "who"),)

    id: int | None = Field(default=None, primary_key=True)
    account: str = Field(index=True)
    who: str
    added_at: datetime = Field(default_factory=utcnow)
