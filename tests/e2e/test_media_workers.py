"""Media worker processes (TGTRUNK_WORKERS): calls spread over the workers, their RTP ends in the worker (never in
the gateway's process), and a worker that dies ends only its own calls and is restarted."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from app.calls.callsession import CallSession
from app.telegram.sim import Behaviour
from tests.audio import RATE, dominant_frequency, level_dbfs
from tests.e2e.test_sip_to_telegram import sent_and_heard

pytestmark = pytest.mark.gateway_env(TGTRUNK_WORKERS="2")


def udp_ports_of(pid: int) -> set[int]:
    """The local ports of the UDP sockets process `pid` holds (its fds matched against its net namespace's table)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for line in Path(f"/proc/{pid}/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[9] in inodes:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


async def until(condition: Callable[[], object], timeout: float = 15.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), timeout)


def worker_pids(sim_gateway) -> list[int]:  # type: ignore[no-untyped-def]
    return [worker["pid"] for worker in sim_gateway.gateway.health()["media_workers"]["workers"]]


def session_with(sim_gateway, username: str) -> CallSession:  # type: ignore[no-untyped-def]
    for session in sim_gateway.gateway.stasis.live:
        if session.tg_call and session.tg_call.peer.username == username and session.media:
            return session
    raise AssertionError(f"no live call with {username}")


async def two_calls(sim_gateway, sim_phone, baresip_factory):  # type: ignore[no-untyped-def]
    """alice (600 Hz) called from one softphone, carol (800 Hz) from another, both talking."""
    await sim_gateway.add_line("one", username="pbx1", password="pw")
    await sim_gateway.add_line("two", username="pbx2", password="pw")
    alice = await sim_phone("alice", Behaviour(tone_hz=600, tone_dbfs=-12))
    carol = await sim_phone("carol", Behaviour(tone_hz=800, tone_dbfs=-12))
    peer1 = await baresip_factory("127.0.0.2", tone_hz=1000)
    peer2 = await baresip_factory("127.0.0.3", tone_hz=1400)
    for peer, user in ((peer1, "pbx1"), (peer2, "pbx2")):
        assert (await peer.register(user, "pw", sim_gateway.sip_server))["type"] == "REGISTER_OK"
    await peer1.command("dial", f"sip:alice@{sim_gateway.sip_server}")
    await peer1.wait_event("CALL_ESTABLISHED", timeout=15)
    await peer2.command("dial", f"sip:carol@{sim_gateway.sip_server}")
    await peer2.wait_event("CALL_ESTABLISHED", timeout=15)
    await alice.wait_heard(RATE * 2 * 2, timeout=15)
    await carol.wait_heard(RATE * 2 * 2, timeout=15)
    return alice, carol, peer1, peer2


async def test_calls_spread_over_the_workers_and_rtp_ends_in_the_worker(sim_gateway, sim_phone, baresip_factory):
    alice, carol, peer1, peer2 = await two_calls(sim_gateway, sim_phone, baresip_factory)

    health = sim_gateway.gateway.health()
    workers = health["media_workers"]["workers"]
    assert health["media_workers"]["ok"] and len(workers) == 2
    assert sorted(worker["calls"] for worker in workers) == [1, 1]  # one call on each worker
    pids = worker_pids(sim_gateway)
    assert os.getpid() not in pids and len(set(pids)) == 2
    for username in ("alice", "carol"):
        media = session_with(sim_gateway, username).media
        assert media is not None and media.remote is not None and media.relay is None
        # The port Asterisk's externalMedia channel sends to is a socket of the call's worker, not of the gateway.
        assert media.port in udp_ports_of(media.remote.worker_pid)
        assert media.remote.worker_pid in pids
        assert media.port not in udp_ports_of(os.getpid())
    assert {session_with(sim_gateway, u).media.remote.worker_pid for u in ("alice", "carol")} == set(pids)
    # The admin pages' live calls show the worker's RTP counters while the calls run.
    await until(lambda: all(call["packets_in"] >= 50 and call["packets_out"] >= 50
                            for call in sim_gateway.gateway.live_calls()))

    await alice.wait_heard(RATE * 2 * 4, timeout=15)
    await peer1.command("hangup")
    await peer1.wait_event("CALL_CLOSED", timeout=10)
    first = await sim_gateway.wait_record(1)
    # SIP -> Telegram and Telegram -> SIP through the worker: the tones, at their levels
    sent, heard_sip, rate = sent_and_heard(peer1)
    heard_tg = alice.heard_since(RATE * 2)
    assert dominant_frequency(heard_tg) == pytest.approx(1000, rel=0.02)
    assert dominant_frequency(heard_sip, rate) == pytest.approx(600, rel=0.02)
    assert level_dbfs(heard_sip) == pytest.approx(-12, abs=3)
    # The record's media counters come from the worker.
    assert (first.peer_username, first.result_code) == ("alice", 200)
    assert first.packets_in >= 150 and first.lost_in == 0 and first.packets_out >= 150

    await peer2.command("hangup")
    await peer2.wait_event("CALL_CLOSED", timeout=10)
    second = await sim_gateway.wait_record(2)
    assert (second.peer_username, second.result_code) == ("carol", 200)
    assert dominant_frequency(carol.heard_since(RATE * 2)) == pytest.approx(1400, rel=0.02)


async def test_a_killed_worker_ends_only_its_calls_and_is_restarted(sim_gateway, sim_phone, baresip_factory):
    alice, carol, peer1, peer2 = await two_calls(sim_gateway, sim_phone, baresip_factory)
    alice_worker = session_with(sim_gateway, "alice").media.remote.worker_pid
    carol_worker = session_with(sim_gateway, "carol").media.remote.worker_pid
    assert alice_worker != carol_worker

    os.kill(alice_worker, signal.SIGKILL)
    # alice's call ends, with the cause in its record; the SIP side hears a hang-up
    await peer1.wait_event("CALL_CLOSED", timeout=10)
    record = await sim_gateway.wait_record(1)
    assert (record.peer_username, record.result_code, record.reason) == ("alice", 500, "media worker lost")
    end = await asyncio.wait_for(alice.calls[-1].ended, 10)
    assert end.by_peer  # Telegram was told: alice's phone sees the call discarded

    # carol's call, on the other worker, goes on: two more seconds of his caller's tone reach him
    heard_before = len(carol.heard)
    await carol.wait_heard(heard_before + RATE * 2 * 2, timeout=5)
    assert dominant_frequency(carol.heard_since(heard_before)) == pytest.approx(1400, rel=0.02)
    assert not carol.calls[-1].ended.done()

    # the dead worker is replaced; the next call works (it may land on either worker)
    await until(lambda: sim_gateway.gateway.health()["media_workers"]["ok"]
                and alice_worker not in worker_pids(sim_gateway))
    assert carol_worker in worker_pids(sim_gateway)
    restarted = [w for w in sim_gateway.gateway.health()["media_workers"]["workers"] if w["restarts"] == 1]
    assert len(restarted) == 1
    heard_before = len(alice.heard)
    await peer1.command("dial", f"sip:alice@{sim_gateway.sip_server}")
    await peer1.wait_event("CALL_ESTABLISHED", timeout=15)
    await alice.wait_heard(heard_before + RATE * 2 * 3, timeout=15)
    assert dominant_frequency(alice.heard_since(heard_before + RATE * 2)) == pytest.approx(1000, rel=0.02)
    await peer1.command("hangup")
    await peer1.wait_event("CALL_CLOSED", timeout=10)
    await peer2.command("hangup")
    await peer2.wait_event("CALL_CLOSED", timeout=10)
    await sim_gateway.wait_record(3)


@pytest.mark.gateway_env(TGTRUNK_WORKERS="0")
async def test_without_workers_the_media_stays_in_the_gateway(sim_gateway, sim_phone, baresip_factory):
    await sim_gateway.add_line("one", username="pbx1", password="pw")
    alice = await sim_phone("alice", Behaviour(tone_hz=600, tone_dbfs=-12))
    peer = await baresip_factory("127.0.0.2", tone_hz=1000)
    assert (await peer.register("pbx1", "pw", sim_gateway.sip_server))["type"] == "REGISTER_OK"
    await peer.command("dial", f"sip:alice@{sim_gateway.sip_server}")
    await peer.wait_event("CALL_ESTABLISHED", timeout=15)
    await alice.wait_heard(RATE * 2 * 3, timeout=15)
    assert "media_workers" not in sim_gateway.gateway.health()
    media = session_with(sim_gateway, "alice").media
    assert media is not None and media.remote is None and media.relay is not None
    assert media.port in udp_ports_of(os.getpid())
    await peer.command("hangup")
    await peer.wait_event("CALL_CLOSED", timeout=10)
    record = await sim_gateway.wait_record()
    assert record.result_code == 200 and record.packets_in >= 100 and record.lost_in == 0
    sent, heard_sip, rate = sent_and_heard(peer)
    assert dominant_frequency(alice.heard_since(RATE * 2)) == pytest.approx(1000, rel=0.02)
    assert dominant_frequency(heard_sip, rate) == pytest.approx(600, rel=0.02)
