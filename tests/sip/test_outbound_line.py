"""A second Asterisk as the PBX: it registers to the gateway, and the gateway registers to it."""

from __future__ import annotations

import asyncio

from tests.peers import free_port
from tests.pbx import PbxAsterisk

PBX_PJSIP = """
[global]
type = global
user_agent = FPBX-test
endpoint_identifier_order = username,ip

[to-gateway]
type = transport
protocol = udp
bind = 127.0.0.5:{to_gateway_port}

[registrar]
type = transport
protocol = udp
bind = 127.0.0.6:{registrar_port}

; the trunk to the gateway, as FreePBX writes it
[tgtrunk]
type = registration
transport = to-gateway
outbound_auth = tgtrunk
server_uri = sip:{gateway}
client_uri = sip:pbx1@{gateway}
contact_user = pbx1
retry_interval = 2
expiration = 120
line = yes
endpoint = tgtrunk

[tgtrunk]
type = auth
auth_type = userpass
username = pbx1
password = pbx-side-secret

[tgtrunk]
type = aor
contact = sip:{gateway}

[tgtrunk]
type = endpoint
transport = to-gateway
context = from-tgtrunk
disallow = all
allow = alaw,ulaw
outbound_auth = tgtrunk
aors = tgtrunk
rtp_symmetric = yes
rewrite_contact = yes

; the PBX account that the gateway's outbound line registers to
[gw7001]
type = auth
auth_type = userpass
username = gw7001
password = gateway-side-secret

[gw7001]
type = aor
max_contacts = 1

[gw7001]
type = endpoint
transport = registrar
context = from-tgtrunk
auth = gw7001
aors = gw7001
"""


async def test_pbx_registers_to_gateway_and_gateway_registers_to_pbx(gateway, asterisk_install):
    to_gateway_port, registrar_port = free_port("127.0.0.5"), free_port("127.0.0.6")
    added = await gateway.cli("line", "add", "pbx-in", "--mode", "register", "--username", "pbx1",
                              "--password", "pbx-side-secret")
    assert added.code == 0, added.err
    added = await gateway.cli("line", "add", "pbx-out", "--mode", "outbound",
                              "--server", f"127.0.0.6:{registrar_port}", "--username", "gw7001",
                              "--password", "gateway-side-secret")
    assert added.code == 0, added.err
    pbx = PbxAsterisk(asterisk_install, PBX_PJSIP.format(
        to_gateway_port=to_gateway_port, registrar_port=registrar_port, gateway=gateway.sip_server))
    await pbx.start()
    try:
        await pbx.wait_registration("tgtrunk")  # the PBX's own registration to the gateway

        async def both_registered() -> str:
            while True:
                out = (await gateway.cli("status")).out
                if "pbx-out          outbound  registered" in out and "pbx-in           register  registered" in out:
                    return out
                await asyncio.sleep(0.3)  # polling the CLI, as an admin would
        await asyncio.wait_for(both_registered(), 15)
        assert "gw7001/sip:gw7001@127.0.0.1" in await pbx.contacts()  # the PBX sees the gateway's contact
        shown = (await gateway.cli("line", "show", "pbx-out")).out
        assert "registered (to 127.0.0.6" in shown
    finally:
        await pbx.stop()
