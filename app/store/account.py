"""A Telegram account the gateway uses: its encrypted session and its session settings (reference page,
"SIP.TG Session Settings"). What they do in the chat is app/calls/chatside.py."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class TelegramAccountRow(SQLModel, table=True):
    __tablename__ = "telegram_account"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    phone: str
    user_id: int | None = Field(default=None, index=True)
    username: str | None = None
    first_name: str = ""
    last_name: str = ""
    api_id: int
    # pyrogram session string, encrypted with app.store.secretbox (context = name); never stored in clear.
    session_encrypted: str
    logged_in_at: datetime = Field(default_factory=utcnow)
    privacy_applied_at: datetime | None = None
    # Session settings
    dtmf_in: bool = True
    dtmf_out: bool = True
    redial: bool = True
    lines: bool = True
    messages: bool = False  # "Messages processing": react to incoming chat messages
    callback: bool = False
    autoreply: str | None = None  # template: {text} {phone} {username} {userid} {name}
    autoreply_interval_s: int = 600  # at most one autoreply per user in this many seconds
    inline_bot: str | None = None  # an external inline bot's username: messages no line takes go to it
    inline_query: str | None = None  # the query template for it (default "{text}")
    max_calls: int | None = None  # concurrent calls on this account, both directions; None: no limit
