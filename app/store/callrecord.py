"""A call record: every call, both directions, answered or not."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from app.store.line import utcnow


class CallRecord(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    direction: str  # "sip-to-telegram" | "telegram-to-sip"
    line: str | None = Field(default=None, index=True)
    account: str | None = None
    dialled: str | None = None
    peer_id: int | None = None
    peer_username: str | None = None
    peer_phone: str | None = None
    started_at: datetime = Field(default_factory=utcnow, index=True)
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    result_code: int | None = None
    reason: str = ""
    duration_s: int = 0
    packets_in: int = 0
    packets_out: int = 0
    lost_in: int = 0
    late_in: int = 0
    jitter_ms: float = 0.0
    silence_out: int = 0
    # Time tgtrunk itself held the audio (see app/media/relay.py), microseconds
    delay_to_telegram_p50_us: float = 0.0
    delay_to_telegram_p99_us: float = 0.0
    delay_to_sip_p50_us: float = 0.0
    delay_to_sip_p99_us: float = 0.0
    setup_ms: float | None = None  # sip-to-telegram: INVITE in Stasis -> RequestCall sent
    caller: str | None = None  # sip-to-telegram: the PBX's caller number
    trigger: str | None = None  # a call the chat started: "redial" | "lines" | "callback"
    # The call's recording (app/media/recorder.py): its file while it waits to be posted to `recording_chat`.
    recording: str | None = None
    recording_chat: str | None = None
    recording_state: str | None = None  # recording | pending | posted | failed
    recording_error: str | None = None  # why the last post failed (it is retried) or why recording failed
    recording_s: float | None = None


def recording_where(record: CallRecord) -> str:
    """Where a call's recording is, for `tgtrunk calls` and the admin pages ("" when the call was not recorded)."""
    state = record.recording_state
    if state is None:
        return ""
    if state == "posted":
        return f"posted to {record.recording_chat}"
    error = f": {record.recording_error}" if record.recording_error else ""
    return f"{state} {record.recording or ''}{error}".strip()
