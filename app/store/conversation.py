"""The previous conversation of each Telegram user with an account: what Redial dials again."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from app.store.line import utcnow


class LastConversation(SQLModel, table=True):
    __tablename__ = "last_conversation"

    account: str = Field(primary_key=True)
    peer_id: int = Field(primary_key=True)
    line: str
    number: str = ""  # the PBX side: the caller's number (PBX -> Telegram) or the number rung (Telegram -> PBX)
    updated_at: datetime = Field(default_factory=utcnow)
