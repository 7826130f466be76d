"""The simulator's socket framing: what `SimServer` and `RemoteSimClient` put on a loopback TCP connection.

One frame = `u32 length` (big-endian, of what follows) | `u8 kind` | `u32 request id` | payload.
The payloads are exactly the bytes the in-process transport carries (TL bytes of queries, results and updates);
only the auth-key step, RPC errors and the command channel need a tiny encoding of their own.

| kind | direction | payload | answered by |
|---|---|---|---|
| NEW_KEY | client → sim | `i64` user id (0 = none: a key to log in with) | RESULT: the 256-byte auth key |
| HELLO | client → sim | the auth key this connection's session uses | RESULT (empty) |
| QUERY | client → sim | TL bytes of the function | RESULT: TL bytes, or ERROR |
| COMMAND | client → sim | JSON `{"cmd": ..., ...}` (stats, info, call, last_code) | RESULT: JSON, or ERROR |
| UPDATE | sim → client | TL bytes of `Updates` (request id 0) | — |
| RESULT / ERROR | sim → client | see above; ERROR = `i32` code + UTF-8 message | — |
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from enum import IntEnum

HEADER = struct.Struct(">IBI")  # length, kind, request id
MAX_FRAME = 16 * 1024 * 1024
LOOPBACK = ("127.0.0.1", "::1", "localhost")


class Kind(IntEnum):
    NEW_KEY = 1
    HELLO = 2
    QUERY = 3
    COMMAND = 4
    RESULT = 10
    ERROR = 11
    UPDATE = 12


class WireError(ConnectionError):
    """The other side sent something that is not a frame of this protocol."""


@dataclass(frozen=True)
class Frame:
    kind: Kind
    request_id: int
    payload: bytes = b""

    def encode(self) -> bytes:
        return HEADER.pack(5 + len(self.payload), self.kind, self.request_id) + self.payload


async def read_frame(reader: asyncio.StreamReader) -> Frame:
    """The next frame; `asyncio.IncompleteReadError` at a clean end of stream."""
    length, kind, request_id = HEADER.unpack(await reader.readexactly(HEADER.size))
    if length < 5 or length > MAX_FRAME:
        raise WireError(f"bad frame length {length}")
    try:
        return Frame(Kind(kind), request_id, await reader.readexactly(length - 5))
    except ValueError:
        raise WireError(f"unknown frame kind {kind}") from None


def encode_error(code: int, message: str) -> bytes:
    return struct.pack(">i", code) + message.encode()


def decode_error(payload: bytes) -> tuple[int, str]:
    (code,) = struct.unpack(">i", payload[:4])
    return code, payload[4:].decode()


def encode_user_id(user_id: int | None) -> bytes:
    return struct.pack(">q", user_id or 0)


def decode_user_id(payload: bytes) -> int | None:
    (user_id,) = struct.unpack(">q", payload)
    return user_id or None


def check_loopback(host: str) -> None:
    """The simulator is a test fixture: it never listens on, or connects to, anything but loopback."""
    if host not in LOOPBACK:
        raise ValueError(f"the simulator is loopback-only (127.0.0.1), not {host!r}")
