"""RtpRelay: one UDP socket per call between Asterisk's externalMedia channel and NTgCalls.

Asterisk sends slin (8 kHz, big-endian) in 20 ms RTP packets; NTgCalls takes and gives little-endian PCM
frames. Each packet from Asterisk is byte-swapped and handed on at once; each frame from Telegram goes
out at once as its own RTP packet (10 ms frames make 10 ms packets), so the relay adds no buffering.
When Telegram sends nothing, the shared 20 ms clock (`app.pacing`) has it send silence so Asterisk's side never starves.

Sending is thread-safe: frames from Telegram are sent on NTgCalls' own thread, straight from its callback,
so audio towards SIP never waits for the event loop; the silence clock runs on the loop. Both send through
the relay's own socket under one lock (the asyncio transport is only used for receiving).

Every packet passes here (50 a second in, 100 out, per call), so the per-packet work is kept to a few C calls:
no objects but the swapped samples and the header bytes, one clock reading at each end (issue 12).
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import sys
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field

from app.media.delays import DelayHistogram
from app.media.rtp import HEADER, RtpError, RtpHeader, pack_header_into, parse
from app.pacing import MediaClock

log = logging.getLogger(__name__)

PACKET_MS = 20
_SWAP = sys.byteorder == "little"  # host order is little-endian: swap to and from network order


def swap16(data: bytes | memoryview) -> bytes:
    """16-bit samples between big-endian (RTP) and little-endian (NTgCalls)."""
    samples = array("h")
    samples.frombytes(data)
    if _SWAP:
        samples.byteswap()
    return samples.tobytes()


@dataclass
class RtpStats:
    """What one relay saw and sent; `to_record()` gives the call record's media fields."""

    packets_in: int = 0
    packets_out: int = 0
    lost_in: int = 0
    late_in: int = 0
    jitter_ms: float = 0.0
    silence_out: int = 0
    bad_in: int = 0
    send_errors: int = 0
    # Time tgtrunk holds audio, in microseconds: RTP received -> handed to NTgCalls (the frames are in NTgCalls'
    # hands when on_pcm returns), and NTgCalls' frame callback -> the RTP packet handed to the kernel (taken just
    # before sendto: once the packet is sent, the time this thread then waits for the GIL again is not the
    # audio's). Fixed-size histograms, so an hours-long call costs no more memory than a short one.
    delay_to_telegram_us: DelayHistogram = field(default_factory=DelayHistogram)
    delay_to_sip_us: DelayHistogram = field(default_factory=DelayHistogram)

    def percentile(self, which: str, q: float) -> float:
        histogram: DelayHistogram = getattr(self, which)
        return histogram.percentile(q)

    def to_record(self) -> dict[str, int | float]:
        return {
            "packets_in": self.packets_in, "packets_out": self.packets_out, "lost_in": self.lost_in,
            "late_in": self.late_in, "jitter_ms": round(self.jitter_ms, 2), "silence_out": self.silence_out,
            "delay_to_telegram_p50_us": round(self.percentile("delay_to_telegram_us", 50), 1),
            "delay_to_telegram_p99_us": round(self.percentile("delay_to_telegram_us", 99), 1),
            "delay_to_sip_p50_us": round(self.percentile("delay_to_sip_us", 50), 1),
            "delay_to_sip_p99_us": round(self.percentile("delay_to_sip_us", 99), 1),
        }


class RtpRelay(asyncio.DatagramProtocol):
    def __init__(self, payload_type: int, sample_rate: int, on_pcm: Callable[[bytes], None] | None = None) -> None:
        self.payload_type = payload_type
        self.sample_rate = sample_rate
        self.silence = bytes(sample_rate * 2 * PACKET_MS // 1000)
        self.on_pcm = on_pcm  # little-endian PCM from the SIP side, 20 ms pieces
        self.stats = RtpStats()
        self.remote: tuple[str, int] | None = None
        self.local_port = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._socket: socket.socket | None = None  # for sending, from any thread, under _send_lock
        self._send_lock = threading.Lock()
        self._ssrc = random.getrandbits(32)
        self._sequence = random.getrandbits(16)
        self._timestamp = random.getrandbits(32)
        self._last_sent = 0.0
        self._header = bytearray(HEADER.size)  # the next packet's header, rebuilt in place under _send_lock
        self._expected_seq: int | None = None
        self._last_transit: float | None = None
        self._jitter = 0.0
        self._marker = True

    async def open(self, host: str = "127.0.0.1") -> int:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((host, 0))
            sock.setblocking(False)
            transport, _ = await loop.create_datagram_endpoint(lambda: self, sock=sock)
        except BaseException:
            sock.close()
            raise
        self._transport = transport  # type: ignore[assignment]
        self._socket = sock
        self.local_port = sock.getsockname()[1]
        MediaClock.shared().add(self)
        return self.local_port

    def close(self) -> None:
        MediaClock.shared().remove(self)
        self.on_pcm = None  # the call's sink, whose own sink is this relay: a cycle left for a full collection
        with self._send_lock:  # a frame being sent on NTgCalls' thread finishes first; later ones see None
            self._socket = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    # From Asterisk ----------------------------------------------------------------------------
    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        arrived = time.perf_counter()
        try:
            header, payload = parse(data)
        except RtpError:
            self.stats.bad_in += 1
            return
        if self.remote is None:
            self.remote = addr  # symmetric RTP: answer where Asterisk sends from
        self._count(header, arrived)
        on_pcm = self.on_pcm
        if on_pcm is not None and payload:
            on_pcm(swap16(payload))
            self.stats.delay_to_telegram_us.record(time.perf_counter() - arrived)

    def _count(self, header: RtpHeader, arrived: float) -> None:
        stats = self.stats
        stats.packets_in += 1
        expected = self._expected_seq
        if expected is not None:
            gap = (header.sequence - expected) & 0xFFFF
            if gap >= 0x8000:  # behind what was expected: late or duplicate
                stats.late_in += 1
                return
            stats.lost_in += gap
        self._expected_seq = (header.sequence + 1) & 0xFFFF
        # RFC 3550 interarrival jitter, in timestamp units, kept as milliseconds.
        transit = arrived * self.sample_rate - header.timestamp
        if self._last_transit is not None:
            delta = abs(transit - self._last_transit)
            self._jitter += (delta - self._jitter) / 16
            stats.jitter_ms = self._jitter * 1000 / self.sample_rate
        self._last_transit = transit

    # To Asterisk ------------------------------------------------------------------------------
    def send_pcm(self, pcm: bytes, posted_at: float | None = None) -> None:
        """Little-endian PCM from Telegram (10 or 20 ms) goes out at once as one RTP packet; any thread.

        `posted_at` (perf_counter) is when NTgCalls handed the frame over, for the delay figures."""
        payload = swap16(pcm)
        with self._send_lock:
            sent_at = self._send(payload, len(pcm) // 2)
        if sent_at and posted_at:
            self.stats.delay_to_sip_us.record(sent_at - posted_at)

    def _send(self, payload: bytes, samples: int) -> float:
        """One RTP packet; the caller holds `_send_lock`. When it was handed to the kernel (perf_counter), or 0.0
        when there is nowhere to send it."""
        sock, remote = self._socket, self.remote
        if sock is None or remote is None:
            return 0.0
        header = self._header
        pack_header_into(header, self.payload_type, self._sequence, self._timestamp, self._ssrc, self._marker)
        sent_at = time.perf_counter()
        try:
            sock.sendmsg((header, payload), (), 0, remote)
        except OSError:  # socket buffer full or Asterisk's port gone: this packet is lost, the stream goes on
            self.stats.send_errors += 1
        self._marker = False
        self._sequence = (self._sequence + 1) & 0xFFFF
        self._timestamp = (self._timestamp + samples) & 0xFFFFFFFF
        self._last_sent = time.monotonic()
        self.stats.packets_out += 1
        return sent_at

    def tick(self, now: float) -> None:
        """Called every 20 ms: when Telegram has been quiet for a packet's time, send silence."""
        if now - self._last_sent < PACKET_MS / 1000 * 1.5:
            return
        with self._send_lock:
            # Checked again under the lock: a frame from Telegram may have gone out on NTgCalls' thread meanwhile.
            quiet = time.monotonic() - self._last_sent >= PACKET_MS / 1000 * 1.5
            if quiet and self._send(self.silence, len(self.silence) // 2):
                self.stats.silence_out += 1
