"""A line: one SIP connection between the gateway and a PBX (SIP.TG's "Interaction with PBX")."""

from __future__ import annotations

from datetime import datetime, timezone
from enum import StrEnum

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class LineMode(StrEnum):
    REGISTER = "register"  # PBX -> gateway: the PBX registers here with username/password
    OUTBOUND = "outbound"  # gateway -> PBX: the gateway registers to the PBX
    IP = "ip"  # IP <-> IP: no registration, trusted by address
    STASIS = "stasis"  # a route on the user's own Asterisk (TGTRUNK_ARI_URL): Stasis(tgtrunk,ROUTE,${EXTEN})


class DtmfMethod(StrEnum):
    RFC4733 = "rfc4733"
    INFO = "info"
    INBAND = "inband"
    AUTO = "auto"


class Line(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    mode: LineMode
    # register: the username the PBX authenticates with; outbound: the login at the PBX.
    username: str | None = None
    # md5(username:realm:password), Asterisk's password_digest; the password itself is never stored.
    password_digest: str | None = None
    realm: str | None = None
    trusted_ips: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    server: str | None = None  # outbound: registrar host[:port]
    domain: str | None = None  # outbound: SIP domain of the account
    proxy: str | None = None  # outbound: outbound proxy host[:port]
    host: str | None = None  # ip: the PBX's host[:port]
    headers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    pbx_number: str | None = None
    # stasis: the dial string Telegram calls are originated with, {number} being pbx_number
    # ('PJSIP/{number}', 'Local/{number}@from-internal').
    originate: str | None = None
    codecs: str = "alaw,ulaw"
    dtmf: DtmfMethod = DtmfMethod.RFC4733
    rules: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    callerid_templates: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    callername_template: str | None = None
    # How the Caller ID travels besides From: P-Asserted-Identity, Remote-Party-ID, both or none.
    identity_header: str = "pai"
    # outbound: From carries the Caller ID instead of the login (a PBX that knows the gateway by IP or auth
    # username); by default From is the login, which a PBX uses to tell which account calls.
    callerid_in_from: bool = False
    priority: int = 0
    max_calls: int | None = None
    account: str | None = None
    # Callback (a chat message makes the gateway call the sender back, then this line's PBX):
    callback_number: str | None = None  # the number rung when the message holds none (or numbers are ignored)
    callback_take_number: bool = True  # a number in the message is dialled (after the rules)
    record: bool = False  # record this line's calls (whatever the account's setting) and post them to record_chat
    record_chat: str | None = None  # unset: the account's record_chat, else its Saved Messages
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class LineStatus(SQLModel, table=True):
    """What `serve` last saw of a line in Asterisk, for `tgtrunk status` and `line show`."""

    name: str = Field(primary_key=True)
    state: str
    detail: str = ""
    updated_at: datetime = Field(default_factory=utcnow)
