"""One PBX configured the way FreePBX writes pjsip (a trunk registering to the gateway, an extension the gateway
registers to), both on the PBX's one address: registrations, retries after a refusal, calls on the right line."""

from __future__ import annotations

import asyncio

from tests.conftest import GatewayProcess
from tests.pbx import PbxAsterisk
from tests.peers import free_port

PBX_ADDRESS = "127.0.0.5"

# FreePBX writes one transport per protocol: the trunk and the extensions share the PBX's address.
PBX_ONE_ADDRESS = """
[global]
type = global
user_agent = FPBX-test
endpoint_identifier_order = ip,username,anonymous

[0.0.0.0-udp]
type = transport
protocol = udp
bind = {address}:{port}

; Connectivity > Trunks > pjsip "tgtrunk" (registration: Send, Authentication: Outbound)
[tgtrunk]
type = registration
transport = 0.0.0.0-udp
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
transport = 0.0.0.0-udp
context = from-trunk
disallow = all
allow = alaw,ulaw
outbound_auth = tgtrunk
aors = tgtrunk
rtp_symmetric = yes
rewrite_contact = yes

; Applications > Extensions > 7001 (pjsip): the extension the gateway's outbound line registers as
[7001]
type = auth
auth_type = userpass
username = 7001
password = gateway-side-secret

[7001]
type = aor
max_contacts = 1

[7001]
type = endpoint
transport = 0.0.0.0-udp
context = from-internal
disallow = all
allow = alaw,ulaw
auth = 7001
aors = 7001
trust_id_inbound = yes
"""


async def add_lines(gateway: GatewayProcess, port: int, outbound_password: str = "gateway-side-secret") -> None:
    added = await gateway.cli("line", "add", "pbx-in", "--mode", "register", "--username", "pbx1",
                              "--password", "pbx-side-secret")
    assert added.code == 0, added.err
    added = await gateway.cli("line", "add", "pbx-out", "--mode", "outbound", "--server", f"{PBX_ADDRESS}:{port}",
                              "--username", "7001", "--password", outbound_password)
    assert added.code == 0, added.err


async def line_state(gateway: GatewayProcess, name: str, state: str, timeout: float) -> str:
    async def poll() -> str:
        while True:
            out = (await gateway.cli("status")).out
            row = next((l for l in out.splitlines() if l.strip().startswith(name + " ")), "")
            if f" {state} (" in row:
                return row
            await asyncio.sleep(0.3)  # polling the CLI, as an admin would
    return await asyncio.wait_for(poll(), timeout)


async def test_one_pbx_address_registers_to_a_register_line_and_is_registrar_of_an_outbound_line(
        gateway, asterisk_install):
    port = free_port(PBX_ADDRESS)
    await add_lines(gateway, port)
    await gateway.wait_log(r"lines in sync")
    pbx = await PbxAsterisk(asterisk_install, PBX_ONE_ADDRESS.format(
        address=PBX_ADDRESS, port=port, gateway=gateway.sip_server)).start()
    try:
        # The outbound line's identify matches the PBX's address: the PBX's own REGISTER must still reach pbx1.
        await pbx.wait_registration("tgtrunk", timeout=20)
        await line_state(gateway, "pbx-out", "registered", 20)
        await line_state(gateway, "pbx-in", "registered", 15)

        # FreePBX's Custom trunk for outbound mode dials PJSIP/$OUTNUM$@7001: the registered contact with the
        # number as user (its `line` parameter kept) arrives on the outbound line.
        mark = len(gateway.lines)
        await pbx.ari.request("POST", "/channels", params={"endpoint": "PJSIP/+15550001@7001", "extension": "s",
                                                            "context": "default"})
        await gateway.wait_log(r"call from line pbx-out .* to '\+15550001'", start=mark)
        # The trunk that registered here sends its calls to the register line.
        mark = len(gateway.lines)
        await pbx.ari.request("POST", "/channels", params={"endpoint": "PJSIP/+15550002@tgtrunk", "extension": "s",
                                                            "context": "default"})
        await gateway.wait_log(r"call from line pbx-in .* to '\+15550002'", start=mark)
    finally:
        await pbx.stop()


async def test_rejected_registration_is_tried_again_once_the_password_is_fixed(gateway, asterisk_install):
    port = free_port(PBX_ADDRESS)
    await add_lines(gateway, port, outbound_password="a-wrong-password")
    pbx = await PbxAsterisk(asterisk_install, PBX_ONE_ADDRESS.format(
        address=PBX_ADDRESS, port=port, gateway=gateway.sip_server)).start()
    try:
        await line_state(gateway, "pbx-out", "rejected", 20)  # 401 with the wrong password
        fixed = await gateway.cli("line", "reset-password", "pbx-out", "--password", "gateway-side-secret")
        assert fixed.code == 0, fixed.err
        # Asterisk starts a pushed registration after a random 1-10 s.
        await line_state(gateway, "pbx-out", "registered", 20)
    finally:
        await pbx.stop()
