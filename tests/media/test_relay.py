"""RtpRelay: RTP (big-endian slin, 8 kHz) <-> little-endian PCM, counters, silence when Telegram is quiet."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.media.relay import RtpRelay, swap16
from app.media.rtp import RtpError, RtpHeader, pack_header, parse
from tests.audio import dominant_frequency, rms_dbfs, tone


def test_header_round_trip_and_payload_offset():
    header = RtpHeader(126, 65535, 4294967000, 0xDEADBEEF, marker=True)
    parsed, payload = parse(pack_header(header) + b"\x01\x02")
    assert parsed == header
    assert bytes(payload) == b"\x01\x02"
    with pytest.raises(RtpError):
        parse(b"\x00" * 12)


def _packet(first: int, second: int, extra: bytes, payload: bytes, trailer: bytes = b"") -> bytes:
    return bytes([first, second]) + (4660).to_bytes(2, "big") + (160).to_bytes(4, "big") + \
        (0x11223344).to_bytes(4, "big") + extra + payload + trailer


@pytest.mark.parametrize(("packet", "payload"), [
    # two CSRCs (CC = 2): 8 bytes of contributing sources before the payload
    (_packet(0x82, 0x0A, (2882400001).to_bytes(4, "big") + (3735928559).to_bytes(4, "big"), b"\x01\x02"),
     b"\x01\x02"),
    # padding (P): 3 bytes, the last one says how many
    (_packet(0xA0, 0x0A, b"", b"\x01\x02\x03\x04", b"\x00\x00\x03"), b"\x01\x02\x03\x04"),
    # a one-byte header extension (X, profile 0xBEDE) of one word, as WebRTC's MID / audio level
    (_packet(0x90, 0x0A, b"\xbe\xde\x00\x01" + b"\x10\xff\x00\x00", b"\x05\x06"), b"\x05\x06"),
    # all three at once
    (_packet(0xB1, 0x8A, (7).to_bytes(4, "big") + b"\xbe\xde\x00\x01\x10\xff\x00\x00", b"\x07\x08",
             b"\x00\x02"), b"\x07\x08"),
])
def test_payload_after_csrcs_extension_and_before_padding(packet: bytes, payload: bytes) -> None:
    header, found = parse(packet)
    assert (header.payload_type, header.sequence, header.timestamp, header.ssrc) == (10, 4660, 160, 0x11223344)
    assert bytes(found) == payload


@pytest.mark.parametrize("packet", [
    _packet(0x82, 0x0A, b"\x00\x00\x00\x01", b""),  # says two CSRCs, carries one
    _packet(0x90, 0x0A, b"\xbe\xde\x00\x04\x10\xff\x00\x00", b""),  # extension of 4 words, only 1 there
    _packet(0x90, 0x0A, b"\xbe\xde", b""),  # extension header cut short
    _packet(0xA0, 0x0A, b"", b"\x01", b"\x09"),  # padding longer than the packet's payload
])
def test_malformed_packets_are_refused(packet: bytes) -> None:
    with pytest.raises(RtpError):
        parse(packet)


async def test_tone_crosses_two_relays_with_byte_order_and_level_kept():
    received: list[bytes] = []
    done = asyncio.Event()

    def collect(pcm: bytes) -> None:
        if not any(pcm):
            return  # the media clock's silence before the first frame
        received.append(pcm)
        if len(received) == 50:
            done.set()

    sender, receiver = RtpRelay(10, 8000), RtpRelay(10, 8000, on_pcm=collect)
    await sender.open()
    port = await receiver.open()
    sender.remote = ("127.0.0.1", port)
    try:
        sent = tone(1000, 0.5)
        for offset in range(0, len(sent), 160):  # 10 ms frames at 8 kHz, as NTgCalls gives them
            sender.send_pcm(sent[offset : offset + 160])
        await asyncio.wait_for(done.wait(), 5)
        audio = b"".join(received)
        assert audio == sent
        assert dominant_frequency(audio) == pytest.approx(1000, rel=0.02)
        assert rms_dbfs(audio) == pytest.approx(rms_dbfs(sent), abs=0.1)
        assert receiver.stats.lost_in == 0
    finally:
        sender.close()
        receiver.close()


async def test_gaps_count_as_loss_and_silence_fills_a_quiet_telegram_side():
    got: list[bytes] = []
    arrived = asyncio.Event()
    receiver = RtpRelay(10, 8000, on_pcm=lambda pcm: (got.append(pcm), arrived.set()))
    port = await receiver.open()
    sender = RtpRelay(10, 8000)
    await sender.open()
    sender.remote = ("127.0.0.1", port)
    try:
        sender.send_pcm(bytes(320))
        sender._sequence += 3  # three packets lost on the way
        sender.send_pcm(bytes(320))
        # Telegram sends nothing now: the media clock keeps Asterisk fed with silence.
        async def silence() -> None:
            while receiver.stats.packets_in < 6:
                arrived.clear()
                await arrived.wait()
        await asyncio.wait_for(silence(), 2)
        assert receiver.stats.lost_in == 3
        assert sender.stats.silence_out >= 4
        assert all(not any(p) for p in got)
    finally:
        sender.close()
        receiver.close()


async def test_frames_sent_from_another_thread_keep_one_clean_rtp_stream():
    """NTgCalls hands frames over on its own thread; the relay sends them from there while the loop's media
    clock may send silence: every packet must still be whole, in order, with no sequence number used twice."""
    packets: list[tuple[RtpHeader, bytes]] = []
    arrived = asyncio.Event()
    frames = 300

    class Sink(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            header, payload = parse(data)
            packets.append((header, bytes(payload)))
            arrived.set()

    async def until(condition) -> None:
        while not condition():
            arrived.clear()
            await arrived.wait()

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Sink, local_addr=("127.0.0.1", 0))
    relay = RtpRelay(10, 8000)
    await relay.open()
    relay.remote = transport.get_extra_info("sockname")
    frame = tone(1000, 0.01)

    def ntgcalls_thread() -> None:
        for i in range(frames):
            relay.send_pcm(frame)
            if i % 10 == 9:
                time.sleep(0.035)  # quiet long enough for the media clock to step in with silence

    try:
        await asyncio.to_thread(ntgcalls_thread)
        relay.close()
        relay.send_pcm(frame)  # a frame still in flight after the call ended is dropped, not sent
        await asyncio.wait_for(until(lambda: len(packets) == relay.stats.packets_out), 5)
        sequences = [header.sequence for header, _ in packets]
        assert sequences == [(sequences[0] + i) & 0xFFFF for i in range(len(sequences))]
        payloads = [payload for _, payload in packets]
        assert sum(1 for p in payloads if p == swap16(frame)) == frames
        assert sum(1 for p in payloads if not any(p)) == relay.stats.silence_out > 0
    finally:
        relay.close()
        transport.close()


def test_delay_percentiles_come_from_a_fixed_size_histogram():
    stats = RtpRelay(10, 8000).stats
    for i in range(1, 1001):
        stats.delay_to_sip_us.record(i / 1e6)  # 1 .. 1000 us
    stats.delay_to_sip_us.record(3600.0)  # an hour-long stall is clamped, not an error
    assert stats.percentile("delay_to_sip_us", 50) == pytest.approx(500, rel=0.01)
    assert stats.percentile("delay_to_sip_us", 99) == pytest.approx(990, rel=0.01)
    assert stats.percentile("delay_to_sip_us", 100) == 60_000_000
    assert stats.percentile("delay_to_telegram_us", 99) == 0.0
    assert len(stats.delay_to_sip_us.counts) * stats.delay_to_sip_us.counts.itemsize < 6 * 1024
