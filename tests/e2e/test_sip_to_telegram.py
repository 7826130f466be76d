"""A PBX user dials a Telegram user: rings, connects, audio both ways, either side hangs up."""

from __future__ import annotations

import asyncio
import wave

import pytest

from app.telegram.sim import Behaviour
from tests.audio import RATE, dominant_frequency, rms_dbfs


def wav_pcm(path) -> tuple[bytes, int, int]:  # type: ignore[no-untyped-def]
    """sndfile's dump: the header's length is only final when baresip closes it, so read to the end."""
    with wave.open(str(path)) as w:
        rate, channels = w.getframerate(), w.getnchannels()
    data = path.read_bytes()
    start = data.index(b"data") + 8
    return data[start:], rate, channels


def sent_and_heard(peer) -> tuple[bytes, bytes, int]:  # type: ignore[no-untyped-def]
    """What baresip sent and what it heard in its last call (skipping the first second)."""
    sent, rate, _ = wav_pcm(peer.dump_wav("enc"))
    heard, heard_rate, _ = wav_pcm(peer.dump_wav("dec"))
    assert rate == heard_rate
    return sent[2 * rate :], heard[2 * rate :], rate


async def test_sip_calls_username_audio_both_ways_and_sip_hangs_up(sim_gateway, sim_phone, baresip_factory):
    await sim_gateway.add_line("office", username="pbx1", password="pw")
    alice = await sim_phone("alice", Behaviour(tone_hz=600, tone_dbfs=-12))
    peer = await baresip_factory("127.0.0.2", tone_hz=1000)
    assert (await peer.register("pbx1", "pw", sim_gateway.sip_server))["type"] == "REGISTER_OK"

    await peer.command("dial", f"sip:alice@{sim_gateway.sip_server}")
    await peer.wait_event("CALL_ESTABLISHED", timeout=15)
    await alice.wait_heard(RATE * 2 * 3, timeout=15)  # 3 s of what the SIP side sends
    await peer.command("hangup")
    await peer.wait_event("CALL_CLOSED", timeout=10)
    end = await asyncio.wait_for(alice.calls[-1].ended, 10)
    assert end.by_peer  # the SIP side's hang-up reached Telegram

    sent, heard_sip, rate = sent_and_heard(peer)
    heard_tg = alice.heard_since(RATE * 2)  # skip the first second (codec and jitter settling)
    # SIP -> Telegram: baresip's 1 kHz tone, at the level baresip sent it
    assert dominant_frequency(heard_tg) == pytest.approx(1000, rel=0.02)
    assert rms_dbfs(heard_tg) == pytest.approx(rms_dbfs(sent), abs=3)
    # Telegram -> SIP: the Telegram user's 600 Hz tone at -12 dBFS
    assert dominant_frequency(heard_sip, rate) == pytest.approx(600, rel=0.02)
    assert rms_dbfs(heard_sip) == pytest.approx(-12 - 3.01, abs=3)  # a sine at -12 dBFS peak has -15 dB RMS


async def test_telegram_user_hangs_up_and_the_call_is_recorded(sim_gateway, sim_phone, baresip_factory):
    await sim_gateway.add_line("office", username="pbx1", password="pw")
    carol = await sim_phone("carol", Behaviour(echo=True, hangup_after=2.0))
    peer = await baresip_factory("127.0.0.2")
    assert (await peer.register("pbx1", "pw", sim_gateway.sip_server))["type"] == "REGISTER_OK"

    await peer.command("dial", f"sip:+{carol.user.phone}@{sim_gateway.sip_server}")  # by phone number
    await peer.wait_event("CALL_ESTABLISHED", timeout=15)
    closed = await peer.wait_event("CALL_CLOSED", timeout=15)  # carol hung up after 2 s
    assert closed["direction"] == "outgoing"

    record = await sim_gateway.wait_record()
    assert (record.direction, record.line, record.dialled) == ("sip-to-telegram", "office", f"+{carol.user.phone}")
    assert (record.peer_username, record.result_code, record.reason) == ("carol", 200, "Telegram side hung up")
    assert record.duration_s >= 2 and record.answered_at is not None
    assert record.packets_in >= 80 and record.lost_in == 0  # ~50 packets/s from the SIP side
    assert record.packets_out >= 80
    assert 0 < record.setup_ms < 1000
    # Asterisk looked up no name for the call's RTP: in a root without /etc/hosts it asked DNS for the host name
    # and A.ROOT-SERVERS.NET on every call, and a lost reply stalled all calls for 5 s.
    assert "Unable to lookup" not in (sim_gateway.gateway.instance.log_dir / "messages.log").read_text()


async def test_an_ended_call_leaves_no_channel_behind(sim_gateway, sim_phone, baresip_factory):
    """Issue 8 item 8: the channels' entries waiting for StasisStart stayed for good when no ChannelDestroyed came
    (about one per call in the soak)."""
    await sim_gateway.add_line("office", username="pbx1", password="pw")
    dave = await sim_phone("dave", Behaviour(echo=True, hangup_after=1.0))
    peer = await baresip_factory("127.0.0.2")
    assert (await peer.register("pbx1", "pw", sim_gateway.sip_server))["type"] == "REGISTER_OK"

    await peer.command("dial", f"sip:dave@{sim_gateway.sip_server}")
    await peer.wait_event("CALL_ESTABLISHED", timeout=15)
    await peer.wait_event("CALL_CLOSED", timeout=15)
    await sim_gateway.wait_record()

    stasis = sim_gateway.gateway.stasis

    async def nothing_left() -> None:
        while stasis._in_stasis or stasis.by_channel:
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(nothing_left(), 5)
    except asyncio.TimeoutError:
        pytest.fail(f"channels still held after the call: {sorted(stasis._in_stasis)} {sorted(stasis.by_channel)}")
