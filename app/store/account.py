"""A Telegram account the gateway uses: its encrypted session and its session settings (reference page,
"SIP.TG Session Settings"). What they do in the chat is app/calls/chatside.py."""

from __future__ import annotations

from datetime import datetime

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator
from pydantic import Field as Check
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
    autoreply: str | None = None  # template: {text} {phone} {username} {userid} {name}
    # at most one autoreply per user in this many seconds (a server default too: rows written by older code)
    autoreply_interval_s: int = Field(default=600, sa_column_kwargs={"server_default": "600"})
    inline_bot: str | None = None  # an external inline bot's username: messages no line takes go to it
    inline_query: str | None = None  # the query template for it (default "{text}")
    max_calls: int | None = None  # concurrent calls on this account, both directions; None: no limit
    record: bool = False  # record its calls and post them to record_chat (the account's Saved Messages if unset)
    record_chat: str | None = None


SESSION_SETTINGS = ("dtmf_in", "dtmf_out", "redial", "lines", "messages", "callback", "autoreply",
                    "autoreply_interval_s", "inline_bot", "inline_query", "max_calls")
Template = Annotated[str, StringConstraints(max_length=4096)]


class SessionSettingsPatch(BaseModel):
    """A change to an account's session settings (CLI and admin API): strict types, unknown fields refused.
    An empty text turns autoreply / inline bot / inline query off; max_calls 0 means no limit."""

    model_config = ConfigDict(strict=True, extra="forbid")
    dtmf_in: bool | None = None
    dtmf_out: bool | None = None
    redial: bool | None = None
    lines: bool | None = None
    messages: bool | None = None
    callback: bool | None = None
    autoreply: Template | None = None
    autoreply_interval_s: Annotated[int, Check(ge=0, le=30 * 86_400)] | None = None
    inline_bot: str | None = None
    inline_query: Template | None = None
    max_calls: Annotated[int, Check(ge=0, le=1_000_000)] | None = None

    @field_validator("inline_bot")
    @classmethod
    def _bot_username(cls, value: str | None) -> str | None:
        import re

        if value and not re.fullmatch(r"@?[A-Za-z][A-Za-z0-9_]{3,31}", value):
            raise ValueError("give the inline bot's @username")
        return value

    def changes(self) -> dict[str, object]:
        """Column values to store (empty text and max_calls 0 stored as None)."""
        out: dict[str, object] = {}
        for key, value in self.model_dump(exclude_none=True).items():
            if key in ("autoreply", "inline_bot", "inline_query", "max_calls"):
                value = value or None
            if key == "inline_bot" and value:
                value = str(value).lstrip("@")
            out[key] = value
        return out


def session_settings(row: TelegramAccountRow) -> dict[str, object]:
    return {key: getattr(row, key) for key in SESSION_SETTINGS}
