"""A Telegram user calls the gateway account: the PBX extension rings with the templated caller id."""

from __future__ import annotations

import asyncio

import pytest

from app.telegram.sim import Behaviour
from tests.audio import RATE, dominant_frequency, rms_dbfs
from tests.e2e.conftest import GATEWAY_PHONE
from app.ari.client import AriEvent
from tests.e2e.test_sip_to_telegram import sent_and_heard
from tests.pbx import PbxAsterisk, freepbx_with_trunk
from tests.peers import free_port

PBX_EXTENSIONS = """
[general]
static = yes

[from-tgtrunk]
exten => _X.,1,Stasis(pbx,${EXTEN})
"""


async def test_telegram_user_rings_registered_softphone_with_audio_both_ways(sim_gateway, sim_phone, baresip_factory):
    await sim_gateway.add_line("office", username="pbx1", password="pw",
                               callerid_templates=("{username}x", "+{phone}"), callername_template="{name} (TG)")
    bob = await sim_phone("bob", Behaviour(tone_hz=600, tone_dbfs=-12))
    pbx = await baresip_factory("127.0.0.2", tone_hz=1000)
    await pbx.command("uanew", f"<sip:pbx1@{sim_gateway.sip_server}>;auth_pass=pw;regint=60;answermode=auto")
    assert (await pbx.wait_event("REGISTER_OK", "REGISTER_FAIL"))["type"] == "REGISTER_OK"

    call = await bob.call(GATEWAY_PHONE)
    answered = await pbx.wait_event("CALL_ESTABLISHED", timeout=15)  # answermode=auto
    assert answered["peeruri"].startswith("sip:bobx@")  # the first template whose fields are all known
    assert answered["peerdisplayname"] == "Bob Sim (TG)"
    await call.wait_connected(10)
    await bob.wait_heard(RATE * 2 * 3, timeout=15)
    await call.hangup()  # the Telegram side hangs up
    await pbx.wait_event("CALL_CLOSED", timeout=10)

    sent, heard_sip, rate = sent_and_heard(pbx)
    heard_tg = bob.heard_since(RATE * 2)
    assert dominant_frequency(heard_tg) == pytest.approx(1000, rel=0.02)
    assert rms_dbfs(heard_tg) == pytest.approx(rms_dbfs(sent), abs=3)
    assert dominant_frequency(heard_sip, rate) == pytest.approx(600, rel=0.02)
    assert rms_dbfs(heard_sip) == pytest.approx(-15, abs=3)


async def test_nothing_registered_refuses_telegram_caller_with_503_in_chat(sim_gateway, sim_phone):
    await sim_gateway.add_line("office", username="pbx1", password="pw", pbx_number="100")
    bob = await sim_phone("bob")
    call = await bob.call(GATEWAY_PHONE)
    end = await asyncio.wait_for(call.ended, 15)
    assert end.by_peer and not end.answered

    async def told() -> str:
        while not bob.messages:
            await asyncio.sleep(0.05)
        return bob.messages[-1][1]
    assert await asyncio.wait_for(told(), 5) == "503 SIP account is unavailable"


async def test_pbx_extension_rings_with_templated_caller_id_and_pbx_hangs_up(sim_gateway, sim_phone, asterisk_install):
    await sim_gateway.add_line("office", username="pbx1", password="pbx-side-secret", pbx_number="100",
                               callerid_templates=("+{phone}",), callername_template="{name_ascii} via TG")
    bob = await sim_phone("bjorn", Behaviour(record=False), last_name="Ørsted")
    pbx = PbxAsterisk(asterisk_install, freepbx_with_trunk(sim_gateway.sip_server), extensions_conf=PBX_EXTENSIONS)
    await pbx.start()
    ringing: asyncio.Future[AriEvent] = asyncio.get_running_loop().create_future()
    pbx.ari.on("StasisStart", lambda event: ringing.done() or ringing.set_result(event))
    events = asyncio.create_task(pbx.ari.run_events())
    try:
        await pbx.wait_registration("tgtrunk")
        await asyncio.wait_for(pbx.ari.connected.wait(), 10)
        call = await bob.call(GATEWAY_PHONE)
        event = await asyncio.wait_for(ringing, 15)
        channel = event["channel"]
        assert event["args"] == ["100"]  # the extension dialled on the PBX
        assert channel["caller"] == {"name": "Bjorn Orsted via TG", "number": f"+{bob.user.phone}"}
        await pbx.ari.request("POST", f"/channels/{channel['id']}/answer")
        await call.wait_connected(10)
        await pbx.ari.request("DELETE", f"/channels/{channel['id']}")  # the PBX hangs up
        end = await asyncio.wait_for(call.ended, 10)
        assert end.by_peer and end.answered
    finally:
        events.cancel()
        await pbx.stop()


async def test_call_from_another_gateway_account_is_refused_with_482(sim_gateway):
    from app.telegram.account import TelegramAccount
    from app.telegram.sim import SimClient

    await sim_gateway.add_line("office", username="pbx1", password="pw", pbx_number="100", account="main")
    other_user = sim_gateway.network.add_user("+15550008888", "Second", username="second_gw")
    other = TelegramAccount(SimClient("second", sim_gateway.network, user_id=other_user.id), ring_timeout=4.0)
    await other.start()
    try:
        sim_gateway.gateway.accounts.add("second", other)  # both accounts are gateways of this installation
        sim_gateway.gateway.stasis.attach_accounts()
        call = await other.call(GATEWAY_PHONE)
        end = await asyncio.wait_for(call.ended, 10)
        assert end.by_peer and not end.answered
        record = await sim_gateway.wait_record()
        assert (record.direction, record.result_code, record.reason) == (
            "telegram-to-sip", 482, "Caller has active gateway accounts")
    finally:
        sim_gateway.gateway.accounts.handles.pop("second", None)
        await other.stop()


PBX_IP_PEER = """
[global]
type = global
[pbx-transport]
type = transport
protocol = udp
bind = 127.0.0.8:{port}
[gateway]
type = endpoint
transport = pbx-transport
context = from-tgtrunk
disallow = all
allow = alaw,ulaw
[gateway]
type = identify
endpoint = gateway
match = 127.0.0.1
"""
PBX_HEADER_EXTENSIONS = """
[general]
static = yes
[from-tgtrunk]
exten => _X.,1,Stasis(pbx,${EXTEN},${PJSIP_HEADER(read,X-Trunk)})
"""


async def test_ip_line_sends_calls_to_its_host_with_extra_headers(sim_gateway, sim_phone, asterisk_install):
    port = free_port("127.0.0.8")
    await sim_gateway.add_line("sbc", mode="ip", host=f"127.0.0.8:{port}", pbx_number="200",
                               headers=("X-Trunk: telegram",))
    dora = await sim_phone("dora", Behaviour(record=False))
    pbx = PbxAsterisk(asterisk_install, PBX_IP_PEER.format(port=port), extensions_conf=PBX_HEADER_EXTENSIONS)
    await pbx.start()
    ringing: asyncio.Future[AriEvent] = asyncio.get_running_loop().create_future()
    pbx.ari.on("StasisStart", lambda event: ringing.done() or ringing.set_result(event))
    events = asyncio.create_task(pbx.ari.run_events())
    try:
        await asyncio.wait_for(pbx.ari.connected.wait(), 10)
        call = await dora.call(GATEWAY_PHONE)
        event = await asyncio.wait_for(ringing, 15)
        assert event["args"] == ["200", "telegram"]  # the number on the PBX and the line's extra header
        await pbx.ari.request("DELETE", f"/channels/{event['channel']['id']}", params={"reason": "busy"})
        end = await asyncio.wait_for(call.ended, 10)
        assert not end.answered
    finally:
        events.cancel()
        await pbx.stop()
