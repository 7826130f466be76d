"""One PBX configured the way FreePBX writes pjsip (a trunk registering to the gateway, an extension the gateway
registers to), both on the PBX's one address: registrations, retries after a refusal, calls on the right line."""

from __future__ import annotations

import asyncio

from tests.conftest import GatewayProcess
from tests.pbx import PbxAsterisk, freepbx_extension, freepbx_global, freepbx_transport, freepbx_trunk
from tests.peers import free_port

PBX_ADDRESS = "127.0.0.5"


def pbx_one_address(port: int, gateway: str) -> str:
    """FreePBX writes one transport per protocol: the trunk and the extensions share the PBX's address."""
    return (freepbx_global() + freepbx_transport("0.0.0.0-udp", PBX_ADDRESS, port)
            + freepbx_trunk(gateway, "0.0.0.0-udp", "from-trunk",
                            endpoint_options=("rtp_symmetric = yes", "rewrite_contact = yes"))
            + freepbx_extension("7001", "0.0.0.0-udp", "from-internal", endpoint_options=("trust_id_inbound = yes",)))


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
    pbx = await PbxAsterisk(asterisk_install, pbx_one_address(port, gateway.sip_server)).start()
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
    pbx = await PbxAsterisk(asterisk_install, pbx_one_address(port, gateway.sip_server)).start()
    try:
        await line_state(gateway, "pbx-out", "rejected", 20)  # 401 with the wrong password
        fixed = await gateway.cli("line", "reset-password", "pbx-out", "--password", "gateway-side-secret")
        assert fixed.code == 0, fixed.err
        # Asterisk starts a pushed registration after a random 1-10 s.
        await line_state(gateway, "pbx-out", "registered", 20)
    finally:
        await pbx.stop()
