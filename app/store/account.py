"""A Telegram account the gateway uses: its encrypted session and its session settings (reference page,
"SIP.TG Session Settings"). Only stored here; the behaviour behind the settings lives in later issues."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from app.store.line import utcnow

# The on/off session settings, as `tgtrunk account settings` flags (--dtmf-in/--no-dtmf-in, ...).
SETTING_FLAGS = ("dtmf_in", "dtmf_out", "redial", "lines", "messages", "callback")


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
    autoreply: str | None = None
    max_calls: int | None = None  # concurrent calls on this account, both directions; None: no limit
    record: bool = False  # record its calls and post them to record_chat (the account's Saved Messages if unset)
    record_chat: str | None = None
