"""Telegram -> PBX the way FreePBX receives it: the Caller ID on every line mode, and failover between lines."""

from __future__ import annotations

import asyncio

import pytest

from app.ari.client import AriEvent
from app.telegram.sim import Behaviour
from tests.e2e.conftest import GATEWAY_PHONE
from tests.pbx import PbxAsterisk, freepbx_extension, freepbx_global, freepbx_transport, freepbx_trunk
from tests.peers import free_port

PBX_EXTENSIONS = """
[general]
static = yes

[from-tgtrunk]
exten => 486,1,Hangup(17)
exten => _X.,1,Stasis(pbx,${EXTEN},${PJSIP_HEADER(read,P-Asserted-Identity)})
"""

TRUSTED = ("trust_id_inbound = yes",)


def pbx_conf(mode: str, port: int, gateway: str) -> str:
    """Each mode as FreePBX writes its side: a trunk registering to the gateway, an extension the gateway
    registers as, or a trunk without registration that knows the gateway by its address."""
    conf = freepbx_global() + freepbx_transport("0.0.0.0-udp", "127.0.0.5", port)
    if mode == "register":
        return conf + freepbx_trunk(gateway, "0.0.0.0-udp", "from-tgtrunk", endpoint_options=TRUSTED)
    if mode == "outbound":
        return conf + freepbx_extension("7001", "0.0.0.0-udp", "from-tgtrunk", endpoint_options=TRUSTED)
    return conf + IP_TRUNK


IP_TRUNK = """
[gateway]
type = endpoint
transport = 0.0.0.0-udp
context = from-tgtrunk
disallow = all
allow = alaw,ulaw
trust_id_inbound = yes
[gateway]
type = identify
endpoint = gateway
match = 127.0.0.1
"""

LINE_OPTIONS = {
    "register": dict(username="pbx1", password="pbx-side-secret"),
    "outbound": dict(server="127.0.0.5:{port}", username="7001", password="gateway-side-secret"),
    "ip": dict(host="127.0.0.5:{port}"),
}


class Pbx:
    """The PBX Asterisk with its calls arriving in its Stasis app `pbx`."""

    def __init__(self, asterisk_install, pjsip_conf: str) -> None:  # type: ignore[no-untyped-def]
        self.asterisk = PbxAsterisk(asterisk_install, pjsip_conf, extensions_conf=PBX_EXTENSIONS)
        self.arrived: asyncio.Queue[AriEvent] = asyncio.Queue()
        self.destroyed: dict[str, asyncio.Event] = {}
        self.asterisk.ari.on("StasisStart", self.arrived.put_nowait)
        self.asterisk.ari.on("StasisEnd", lambda e: self.gone(e["channel"]["id"]).set())
        self._events: asyncio.Task[None] | None = None

    def gone(self, channel_id: str) -> asyncio.Event:
        return self.destroyed.setdefault(channel_id, asyncio.Event())

    async def __aenter__(self) -> "Pbx":
        await self.asterisk.start()
        self._events = asyncio.create_task(self.asterisk.ari.run_events())
        await asyncio.wait_for(self.asterisk.ari.connected.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._events:
            self._events.cancel()
        await self.asterisk.stop()

    async def ringing(self, timeout: float = 15) -> AriEvent:
        return await asyncio.wait_for(self.arrived.get(), timeout)

    async def answer(self, event: AriEvent) -> None:
        await self.asterisk.ari.request("POST", f"/channels/{event['channel']['id']}/answer")


async def wait_ready(mode: str, pbx: Pbx) -> None:
    if mode == "register":
        await pbx.asterisk.wait_registration("tgtrunk", timeout=20)
    elif mode == "outbound":
        async def registered() -> None:
            while "7001/sip:7001@" not in await pbx.asterisk.contacts():
                await asyncio.sleep(0.2)
        await asyncio.wait_for(registered(), 20)


@pytest.mark.parametrize("mode", ["register", "outbound", "ip"])
async def test_caller_id_reaches_the_pbx_on_every_line_mode(mode, sim_gateway, sim_phone, asterisk_install):
    port = free_port("127.0.0.5")
    options = {k: v.format(port=port) for k, v in LINE_OPTIONS[mode].items()}
    await sim_gateway.add_line("pbx", mode, pbx_number="100", callerid_templates=("+{phone}",),
                               callername_template="{name_ascii} via TG", **options)
    bjorn = await sim_phone("bjorn", Behaviour(record=False), last_name="Ørsted")
    conf = pbx_conf(mode, port, sim_gateway.sip_server)
    async with Pbx(asterisk_install, conf) as pbx:
        await wait_ready(mode, pbx)
        call = await bjorn.call(GATEWAY_PHONE)
        event = await pbx.ringing()
        number = f"+{bjorn.user.phone.lstrip('+')}"
        assert event["args"][0] == "100"
        # What the PBX shows (From, or the P-Asserted-Identity it trusts) and the header itself.
        assert event["channel"]["caller"] == {"name": "Bjorn Orsted via TG", "number": number}
        assert event["args"][1].replace('"', "").startswith(f"Bjorn Orsted via TG <sip:{number}@")
        await pbx.answer(event)
        await call.wait_connected(10)
        await call.hangup()


FAILOVER_PBX = """
[global]
type = global
[first]
type = transport
protocol = udp
bind = 127.0.0.8:{first}
[second]
type = transport
protocol = udp
bind = 127.0.0.9:{second}
[gateway]
type = endpoint
context = from-tgtrunk
disallow = all
allow = alaw,ulaw
[gateway]
type = identify
endpoint = gateway
match = 127.0.0.1
"""


@pytest.fixture
async def failover_pbx(asterisk_install):  # type: ignore[no-untyped-def]
    first, second = free_port("127.0.0.8"), free_port("127.0.0.9")
    async with Pbx(asterisk_install, FAILOVER_PBX.format(first=first, second=second)) as pbx:
        pbx.first, pbx.second = f"127.0.0.8:{first}", f"127.0.0.9:{second}"  # type: ignore[attr-defined]
        yield pbx


async def test_unregistered_higher_priority_line_passes_the_call_to_the_next(sim_gateway, sim_phone, failover_pbx):
    await sim_gateway.add_line("desk", username="desk1", password="pw", pbx_number="100", priority=10)
    await sim_gateway.add_line("backup", "ip", host=failover_pbx.first, pbx_number="201", priority=0)
    carol = await sim_phone("carol", Behaviour(record=False))
    call = await carol.call(GATEWAY_PHONE)
    event = await failover_pbx.ringing()
    assert event["args"][0] == "201"
    await failover_pbx.answer(event)
    await call.wait_connected(10)
    await call.hangup()
    record = await sim_gateway.wait_record()
    assert (record.line, record.result_code) == ("backup", 200)


async def test_busy_line_passes_the_call_to_the_next_priority(sim_gateway, sim_phone, failover_pbx):
    await sim_gateway.add_line("main", "ip", host=failover_pbx.first, pbx_number="486", priority=10)
    await sim_gateway.add_line("backup", "ip", host=failover_pbx.second, pbx_number="202", priority=0)
    carol = await sim_phone("carol", Behaviour(record=False))
    call = await carol.call(GATEWAY_PHONE)
    event = await failover_pbx.ringing()  # 486 at the first line's number never reaches Stasis
    assert event["args"][0] == "202"
    await failover_pbx.answer(event)
    await call.wait_connected(10)
    await call.hangup()
    record = await sim_gateway.wait_record()
    assert (record.line, record.result_code) == ("backup", 200)


async def test_equal_priority_lines_ring_at_once_and_the_first_to_answer_wins(sim_gateway, sim_phone, failover_pbx):
    await sim_gateway.add_line("left", "ip", host=failover_pbx.first, pbx_number="201", priority=5)
    await sim_gateway.add_line("right", "ip", host=failover_pbx.second, pbx_number="202", priority=5)
    carol = await sim_phone("carol", Behaviour(record=False))
    call = await carol.call(GATEWAY_PHONE)
    ringing = {e["args"][0]: e for e in [await failover_pbx.ringing(), await failover_pbx.ringing()]}
    assert set(ringing) == {"201", "202"}  # both ring before anyone answers
    await failover_pbx.answer(ringing["202"])
    # The other line's INVITE is CANCELed: its channel on the PBX ends without anyone touching it.
    await asyncio.wait_for(failover_pbx.gone(ringing["201"]["channel"]["id"]).wait(), 10)
    await call.wait_connected(10)
    assert not failover_pbx.gone(ringing["202"]["channel"]["id"]).is_set()
    await call.hangup()
    record = await sim_gateway.wait_record()
    assert (record.line, record.result_code) == ("right", 200)


async def test_all_lines_failing_refuses_with_the_last_failure(sim_gateway, sim_phone, failover_pbx):
    await sim_gateway.add_line("main", "ip", host=failover_pbx.first, pbx_number="486", priority=10)
    await sim_gateway.add_line("desk", username="desk1", password="pw", pbx_number="100", priority=0)
    carol = await sim_phone("carol")
    call = await carol.call(GATEWAY_PHONE)
    end = await asyncio.wait_for(call.ended, 15)
    assert not end.answered
    record = await sim_gateway.wait_record()
    assert (record.result_code, record.reason) == (503, "SIP account is unavailable")


NAT_EXTENSIONS = """
[general]
static = yes
[from-tgtrunk]
exten => _X.,1,Stasis(pbx,${PJSIP_HEADER(read,Contact)})
"""
PUBLIC = "203.0.113.7"


async def contact_and_media_seen_by_pbx(sim_gateway, sim_phone, asterisk_install) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    port = free_port("127.0.0.5")
    await sim_gateway.add_line("sbc", "ip", host=f"127.0.0.5:{port}", pbx_number="100")
    dave = await sim_phone("dave", Behaviour(record=False))
    pbx = Pbx(asterisk_install, pbx_conf("ip", port, ""))
    pbx.asterisk.instance.config.overrides = {**pbx.asterisk.instance.config.overrides,
                                              "extensions.conf": NAT_EXTENSIONS}
    async with pbx:
        call = await dave.call(GATEWAY_PHONE)
        event = await pbx.ringing()
        channel_id = event["channel"]["id"]
        await pbx.answer(event)
        await call.wait_connected(10)
        # The address the PBX sends RTP to: the c= line of the gateway's SDP (no symmetric RTP on this PBX).
        media = await pbx.asterisk.ari.request("GET", f"/channels/{channel_id}/variable",
                                               params={"variable": "CHANNEL(rtp,dest,audio)"})
        await call.hangup()
        return event["args"][0], media["value"]


@pytest.mark.gateway_env(TGTRUNK_EXTERNAL_ADDRESS=PUBLIC)
async def test_external_address_is_in_contact_and_sdp(sim_gateway, sim_phone, asterisk_install):
    contact, media = await contact_and_media_seen_by_pbx(sim_gateway, sim_phone, asterisk_install)
    assert f"@{PUBLIC}:{sim_gateway.gateway.settings.sip_bind.port}" in contact
    assert media.startswith(f"{PUBLIC}:")


@pytest.mark.gateway_env(TGTRUNK_EXTERNAL_ADDRESS=PUBLIC, TGTRUNK_LOCAL_NETS="127.0.0.0/8")
async def test_local_networks_get_the_private_address(sim_gateway, sim_phone, asterisk_install):
    contact, media = await contact_and_media_seen_by_pbx(sim_gateway, sim_phone, asterisk_install)
    assert f"@127.0.0.1:{sim_gateway.gateway.settings.sip_bind.port}" in contact
    assert media.startswith("127.0.0.1:")
