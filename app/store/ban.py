"""An address banned after repeated failed authentications."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from app.store.line import utcnow


class Ban(SQLModel, table=True):
    address: str = Field(primary_key=True)
    reason: str
    failures: int
    created_at: datetime = Field(default_factory=utcnow)
    until: datetime
