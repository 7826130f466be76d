"""RTP packets (RFC 3550) as Asterisk's externalMedia sends and takes them: slin (8 kHz), 20 ms, payload type 10."""

from __future__ import annotations

import struct
from typing import NamedTuple

HEADER = struct.Struct("!BBHII")
VERSION = 2
# Asterisk's externalMedia channel only maps *received* payload types from its static table, so audio sent
# back must use a static type. Measured on Asterisk 22.10: `slin` (PT 10) flows both ways; `slin16` (118) and
# `slin48` (126) reach the app but what the app sends back is silently dropped.
FORMATS = {8000: ("slin", 10)}


class RtpError(ValueError):
    pass


class RtpHeader(NamedTuple):  # a tuple: made for every packet received, and a frozen dataclass costs ~1 us more
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool = False


def parse(packet: bytes) -> tuple[RtpHeader, memoryview]:
    """Header and payload of one packet (CSRCs, extension and padding are skipped)."""
    if len(packet) < HEADER.size:
        raise RtpError("packet shorter than an RTP header")
    first, second, sequence, timestamp, ssrc = HEADER.unpack_from(packet)
    if first >> 6 != VERSION:
        raise RtpError("not RTP version 2")
    offset = HEADER.size + 4 * (first & 0x0F)
    end = len(packet)
    if first & 0x20:  # padding: the last byte says how much
        end -= packet[-1]
    if first & 0x10:  # header extension
        if end < offset + 4:
            raise RtpError("truncated header extension")
        (words,) = struct.unpack_from("!H", packet, offset + 2)
        offset += 4 + 4 * words
    if offset > end:
        raise RtpError("truncated packet")
    header = RtpHeader(second & 0x7F, sequence, timestamp, ssrc, bool(second & 0x80))
    return header, memoryview(packet)[offset:end]


def pack_header_into(buffer: bytearray, payload_type: int, sequence: int, timestamp: int, ssrc: int,
                     marker: bool) -> None:
    """A header into the start of `buffer`, with no object made (the relay sends 100 packets a second per call)."""
    HEADER.pack_into(buffer, 0, VERSION << 6, (0x80 if marker else 0) | payload_type, sequence & 0xFFFF,
                     timestamp & 0xFFFFFFFF, ssrc)


def pack_header(header: RtpHeader) -> bytes:
    buffer = bytearray(HEADER.size)
    pack_header_into(buffer, *header)
    return bytes(buffer)
