"""What crosses the socket between the gateway and a media worker: typed messages, one per frame.

A frame is a 4-byte big-endian length and a pickled message. Both ends are this program, connected by a
socketpair the gateway made for its own child, so pickle reads only what we wrote. Requests carry an `id` the
worker answers with a `Reply`; events (`Signaling`, `State`) come from the worker unasked. Audio never crosses:
the worker's RTP socket faces Asterisk, and frames go NTgCalls <-> RTP inside the worker.
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from dataclasses import dataclass, field
from typing import Any

_LENGTH = struct.Struct(">I")
MAX_MESSAGE = 1 << 20


@dataclass
class Request:
    call: int  # the call's key in the worker (also its NTgCalls id there)
    id: int = field(default=0, kw_only=True)


@dataclass
class Create(Request):
    sample_rate: int


@dataclass
class InitExchange(Request):
    g: int
    p: bytes
    random: bytes
    g_a_hash: bytes | None


@dataclass
class ExchangeKeys(Request):
    g_a_or_b: bytes
    fingerprint: int


@dataclass
class Connect(Request):
    servers: list[tuple[Any, ...]]  # ntgcalls.RTCServer's constructor arguments
    versions: list[str]
    p2p: bool
    custom: str | None


@dataclass
class AttachPlayback(Request):
    pass


@dataclass
class Signal(Request):
    data: bytes


@dataclass
class OpenRtp(Request):
    """Bind the call's RTP socket on `host`; the reply is `RtpOpened` (the port for Asterisk's externalMedia)."""

    host: str
    payload_type: int
    record_path: str | None = None  # record the call there (OGG/Opus), where the audio is


@dataclass
class RtpOpened:
    port: int
    recording_error: str | None = None  # the recording could not start (the call goes on unrecorded)


@dataclass
class AimRtp(Request):
    """Asterisk's side of the externalMedia channel (UNICASTRTP_LOCAL_ADDRESS/PORT)."""

    host: str
    port: int


@dataclass
class CloseRtp(Request):
    """Close the RTP socket (and the recording); the reply is a `MediaSummary`."""


@dataclass
class Release(Request):
    """Stop the NTgCalls call once idle (CallEngine.release); replied when it is stopped."""


@dataclass
class Reply:
    id: int
    value: Any = None
    error: BaseException | None = None


@dataclass
class Signaling:
    call: int
    data: bytes


@dataclass
class State:
    call: int
    state: int  # ntgcalls.ConnectionState's value


@dataclass
class Counters:
    """A call's RTP counters so far, sent every `COUNTERS_EVERY_S` while its RTP is open (the admin pages' live
    calls); the record gets the final ones with `CloseRtp`."""

    call: int
    packets_in: int
    lost_in: int
    late_in: int
    packets_out: int
    jitter_ms: float


COUNTERS_EVERY_S = 1.0


@dataclass
class Keys:
    """ntgcalls.AuthParams, as PrivateCall reads it."""

    g_a_or_b: bytes
    key_fingerprint: int


@dataclass
class MediaSummary:
    stats: dict[str, int | float]  # RtpStats.to_record()
    recording_s: float | None = None
    recording_error: str | None = None


async def read_message(reader: asyncio.StreamReader) -> Any:
    """The next message; raises asyncio.IncompleteReadError at the end of the stream."""
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if length > MAX_MESSAGE:
        raise ValueError(f"a {length}-byte message from the other end")
    return pickle.loads(await reader.readexactly(length))


def pack(message: Any) -> bytes:
    try:
        body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - e.g. an exception object that does not pickle: send its text
        if isinstance(message, Reply) and message.error is not None:
            message = Reply(message.id, error=RuntimeError(f"{type(message.error).__name__}: {message.error}"))
            body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        else:
            raise
    return _LENGTH.pack(len(body)) + body
