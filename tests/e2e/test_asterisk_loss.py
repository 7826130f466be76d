"""Asterisk dies during calls (SIGKILL of the gateway's Asterisk): every call ends at once on the Telegram side,
is recorded, and gives its place back; calls made while the Stasis application is not connected get 503."""

from __future__ import annotations

import asyncio
import os
import signal

from app.ari.client import AriClient, AriError
from app.telegram.sim import Behaviour
from tests.e2e.conftest import GATEWAY_PHONE, SimGateway
from tests.pbx import PbxAsterisk, freepbx_with_trunk


async def app_registered(ari: AriClient) -> bool:
    """Asterisk's own answer: is the Stasis application tgtrunk registered?"""
    try:
        await ari.request("GET", f"/applications/{ari.app}")
        return True
    except AriError as exc:
        assert exc.status == 404, exc
        return False


async def kill_asterisk(sim_gateway: SimGateway) -> None:
    """SIGKILL the gateway's Asterisk and wait until the supervisor has seen it die."""
    supervisor = sim_gateway.gateway.supervisor
    pid = sim_gateway.gateway.instance.pid
    assert pid is not None and supervisor.ready.is_set()
    os.kill(pid, signal.SIGKILL)

    async def noticed() -> None:
        while supervisor.ready.is_set():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(noticed(), 5)


async def wait_back(sim_gateway: SimGateway, restarts: int = 1) -> None:
    supervisor = sim_gateway.gateway.supervisor

    async def back() -> None:
        while not (supervisor.ready.is_set() and supervisor.restarts >= restarts):
            await asyncio.sleep(0.01)
    await asyncio.wait_for(back(), 30)


async def test_sip_to_telegram_call_ends_when_asterisk_is_killed(sim_gateway, sim_phone, baresip_factory):
    await sim_gateway.add_line("office", username="pbx1", password="pw", max_calls=1)
    echo = await sim_phone("echo", Behaviour(echo=True, record=False))
    peer = await baresip_factory("127.0.0.2")
    assert (await peer.register("pbx1", "pw", sim_gateway.sip_server))["type"] == "REGISTER_OK"
    await peer.command("dial", f"sip:echo@{sim_gateway.sip_server}")
    await peer.wait_event("CALL_ESTABLISHED", timeout=15)
    telegram_call = echo.calls[-1]
    await telegram_call.wait_connected(10)

    await kill_asterisk(sim_gateway)
    end = await asyncio.wait_for(telegram_call.ended, 5)  # the Telegram user sees the call end
    assert end.by_peer and end.answered
    record = await sim_gateway.wait_record(timeout=5)
    assert (record.direction, record.result_code, record.reason) == ("sip-to-telegram", 500, "Asterisk was lost")
    assert sim_gateway.gateway.stasis.active_per_line["office"] == 0

    # Asterisk is back: the line (max-calls 1) takes the next call, and it works.
    await wait_back(sim_gateway)
    again = await baresip_factory("127.0.0.3")
    assert (await again.register("pbx1", "pw", sim_gateway.sip_server))["type"] == "REGISTER_OK"
    await again.command("dial", f"sip:echo@{sim_gateway.sip_server}")
    await again.wait_event("CALL_ESTABLISHED", timeout=15)
    await echo.calls[-1].wait_connected(10)
    await again.command("hangup")
    await again.wait_event("CALL_CLOSED", timeout=10)
    record = await sim_gateway.wait_record(count=2)
    assert (record.result_code, record.reason) == (200, "SIP side hung up")


async def test_telegram_to_sip_call_ends_when_asterisk_is_killed(sim_gateway, sim_phone, baresip_factory):
    await sim_gateway.add_line("office", username="pbx1", password="pw", max_calls=1)
    bob = await sim_phone("bob", Behaviour(record=False))
    softphone = await baresip_factory("127.0.0.2")
    await softphone.command("uanew", f"<sip:pbx1@{sim_gateway.sip_server}>;auth_pass=pw;regint=60;answermode=auto")
    assert (await softphone.wait_event("REGISTER_OK", "REGISTER_FAIL"))["type"] == "REGISTER_OK"
    call = await bob.call(GATEWAY_PHONE)
    await softphone.wait_event("CALL_ESTABLISHED", timeout=15)
    await call.wait_connected(10)

    await kill_asterisk(sim_gateway)
    end = await asyncio.wait_for(call.ended, 5)
    assert end.by_peer and end.answered
    record = await sim_gateway.wait_record(timeout=5)
    assert (record.direction, record.result_code, record.reason) == ("telegram-to-sip", 500, "Asterisk was lost")
    assert sim_gateway.gateway.stasis.active_per_line["office"] == 0

    await wait_back(sim_gateway)
    again = await baresip_factory("127.0.0.3")
    await again.command("uanew", f"<sip:pbx1@{sim_gateway.sip_server}>;auth_pass=pw;regint=60;answermode=auto")
    assert (await again.wait_event("REGISTER_OK", "REGISTER_FAIL"))["type"] == "REGISTER_OK"
    call = await bob.call(GATEWAY_PHONE)
    await again.wait_event("CALL_ESTABLISHED", timeout=15)
    await call.wait_connected(10)
    await call.hangup()
    await again.wait_event("CALL_CLOSED", timeout=10)
    record = await sim_gateway.wait_record(count=2)
    assert (record.result_code, record.reason) == (200, "Telegram side hung up")


async def test_ready_after_a_restart_means_the_stasis_app_is_registered(sim_gateway):
    gateway = sim_gateway.gateway
    await kill_asterisk(sim_gateway)
    await wait_back(sim_gateway)
    # Checked at the moment `ready` is set, before any other await lets the events websocket catch up.
    assert gateway.ari.connected.is_set()
    assert await app_registered(gateway.ari)


async def test_call_while_the_stasis_app_is_not_connected_gets_503(sim_gateway, sim_phone, baresip_factory):
    await sim_gateway.add_line("office", username="pbx1", password="pw")
    await sim_phone("echo", Behaviour(echo=True, record=False))
    peer = await baresip_factory("127.0.0.2")
    assert (await peer.register("pbx1", "pw", sim_gateway.sip_server))["type"] == "REGISTER_OK"
    ari = sim_gateway.gateway.ari
    events = next(task for task in asyncio.all_tasks() if task.get_name() == "ari-events")  # the supervised task
    events.cancel()  # the events websocket closes: Asterisk has no application to hand the call to

    async def unregistered() -> None:
        while await app_registered(ari):
            await asyncio.sleep(0.02)
    await asyncio.wait_for(unregistered(), 5)
    status = await peer.dial_until_closed(f"sip:echo@{sim_gateway.sip_server}")
    assert status.startswith("503"), status  # retryable, so the PBX fails over (a bare Hangup() gave 603)


PBX_HANGS_UP_WHEN_ANSWERED = """
[general]
static = yes

[hang-up-when-answered]
exten => s,1,Hangup()
"""


async def test_pbx_caller_hanging_up_right_after_the_200_is_a_normal_hang_up(sim_gateway, sim_phone, asterisk_install):
    await sim_gateway.add_line("office", username="pbx1", password="pbx-side-secret")
    echo = await sim_phone("echo", Behaviour(echo=True, record=False))
    pbx = PbxAsterisk(asterisk_install, freepbx_with_trunk(sim_gateway.sip_server),
                      extensions_conf=PBX_HANGS_UP_WHEN_ANSWERED)
    await pbx.start()
    try:
        await pbx.wait_registration("tgtrunk")
        # The PBX's leg runs Hangup() the moment the 200 arrives: its BYE follows the ACK at once.
        await pbx.ari.request("POST", "/channels", params={
            "endpoint": "PJSIP/echo@tgtrunk", "context": "hang-up-when-answered", "extension": "s", "priority": 1})
        record = await sim_gateway.wait_record(timeout=15)
        assert (record.direction, record.result_code, record.reason) == ("sip-to-telegram", 200, "SIP side hung up")
        end = await asyncio.wait_for(echo.calls[-1].ended, 5)
        assert end.by_peer and end.answered
    finally:
        await pbx.stop()
