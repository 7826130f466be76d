"""Call recording: the call's audio, as the recording chat receives it, and a post that fails until it works."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from pathlib import Path

import pytest
import soundfile

from app.store.callrecord import recording_where
from app.telegram.sim import Behaviour
from tests.audio import dominant_frequency, rms_dbfs
from tests.e2e.test_notifications import wait_until
from tests.e2e.test_sip_to_telegram import sent_and_heard


async def recorded_call(sim_gateway, sim_phone, baresip_factory, seconds: float) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    """baresip (a 1 kHz tone) calls a silent Telegram user on a line recorded to @recbox; the call's length."""
    await sim_gateway.add_line("office", username="pbx1", password="pw", record=True, record_chat="@recbox")
    await sim_phone("recbox")
    alice = await sim_phone("alice", Behaviour(tone_hz=None))
    peer = await baresip_factory("127.0.0.2", tone_hz=1000)
    assert (await peer.register("pbx1", "pw", sim_gateway.sip_server))["type"] == "REGISTER_OK"
    await peer.command("dial", f"sip:alice@{sim_gateway.sip_server}")
    await peer.wait_event("CALL_ESTABLISHED", timeout=15)
    established = time.monotonic()
    await alice.wait_heard(int(seconds * 16000), timeout=seconds + 15)
    await peer.command("hangup")
    await peer.wait_event("CALL_CLOSED", timeout=10)
    return time.monotonic() - established, peer


async def test_a_recorded_call_is_posted_to_the_chat_with_the_tone_that_was_sent(sim_gateway, sim_phone,
                                                                                  baresip_factory) -> None:
    network = sim_gateway.network
    length, peer = await recorded_call(sim_gateway, sim_phone, baresip_factory, seconds=5)
    await wait_until(lambda: network.media, timeout=20)
    posted = network.media[0]
    recbox, me = network.user("recbox"), sim_gateway.account.me
    assert (posted.from_id, posted.to_id, posted.mime_type) == (me.id, recbox.id, "audio/ogg")
    assert "Call from PBX" in posted.caption and "to Telegram @alice" in posted.caption
    assert "line office" in posted.caption and "started " in posted.caption

    audio, rate = soundfile.read(io.BytesIO(posted.data), dtype="int16")
    assert rate == 8000
    # The call's connected time as the gateway recorded it (the test's own clock hears baresip's events late on a
    # loaded machine: 0.6 s off once).
    record = await sim_gateway.wait_record()
    connected = (record.ended_at - record.answered_at).total_seconds()
    assert len(audio) / rate == pytest.approx(connected, abs=0.5)
    assert connected == pytest.approx(length, abs=1.5)
    sent, _, _ = sent_and_heard(peer)
    recorded = audio[rate:-rate].tobytes()  # the tone without the edges (answer, hang-up)
    assert dominant_frequency(recorded, rate) == pytest.approx(1000, rel=0.02)
    assert rms_dbfs(recorded) == pytest.approx(rms_dbfs(sent), abs=3)

    record = await sim_gateway.wait_record()
    await wait_until(lambda: not Path(record.recording).exists())  # removed once posted
    record = await sim_gateway.wait_record()
    assert recording_where(record) == "posted to @recbox"


async def test_a_failed_post_is_kept_and_retried_until_it_works(sim_gateway, sim_phone, baresip_factory,
                                                                 caplog) -> None:
    caplog.set_level(logging.INFO)
    network = sim_gateway.network
    network.inject("messages.SendMedia", "FLOOD_WAIT_3")  # Telegram asks to wait 3 s
    network.inject("messages.SendMedia", "INTERNAL_SERVER_ERROR", times=1)
    await recorded_call(sim_gateway, sim_phone, baresip_factory, seconds=2)
    record = await sim_gateway.wait_record()
    path = Path(record.recording)

    def failures() -> list[str]:
        return [r.getMessage() for r in caplog.records if "could not be posted" in r.getMessage()]
    await wait_until(lambda: len(failures()) >= 1, timeout=10)
    assert "FLOOD_WAIT" in failures()[0] and "tried again in 3 s" in failures()[0]
    assert path.exists() and not network.media  # kept while it is not posted
    stored = await sim_gateway.wait_record()
    assert stored.recording_state == "pending" and stored.recording_error.startswith("FLOOD_WAIT")
    assert recording_where(stored) == f"pending {path}: {stored.recording_error}"  # what `tgtrunk calls` shows
    await asyncio.sleep(2)
    assert len(failures()) == 1  # the FLOOD_WAIT is honoured: no try before 3 s
    await wait_until(lambda: len(failures()) >= 2, timeout=10)
    assert path.exists() and not network.media
    await wait_until(lambda: network.media, timeout=15)  # the third try works
    await wait_until(lambda: not path.exists())
    assert len(soundfile.read(io.BytesIO(network.media[0].data))[0]) > 8000
    assert (await sim_gateway.wait_record()).recording_state == "posted"
