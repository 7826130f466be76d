"""A second Asterisk as the PBX: it registers to the gateway, and the gateway registers to it."""

from __future__ import annotations

import asyncio

from tests.peers import free_port
from tests.pbx import PbxAsterisk, freepbx_extension, freepbx_global, freepbx_transport, freepbx_trunk


def pbx_pjsip(to_gateway_port: int, registrar_port: int, gateway: str) -> str:
    """The trunk to the gateway as FreePBX writes it, and the PBX account the gateway's outbound line registers to."""
    return (freepbx_global("username,ip") + freepbx_transport("to-gateway", "127.0.0.5", to_gateway_port)
            + freepbx_transport("registrar", "127.0.0.6", registrar_port)
            + freepbx_trunk(gateway, "to-gateway", "from-tgtrunk",
                            endpoint_options=("rtp_symmetric = yes", "rewrite_contact = yes"))
            + freepbx_extension("gw7001", "registrar", "from-tgtrunk"))


async def test_pbx_registers_to_gateway_and_gateway_registers_to_pbx(gateway, asterisk_install):
    to_gateway_port, registrar_port = free_port("127.0.0.5"), free_port("127.0.0.6")
    added = await gateway.cli("line", "add", "pbx-in", "--mode", "register", "--username", "pbx1",
                              "--password", "pbx-side-secret")
    assert added.code == 0, added.err
    added = await gateway.cli("line", "add", "pbx-out", "--mode", "outbound",
                              "--server", f"127.0.0.6:{registrar_port}", "--username", "gw7001",
                              "--password", "gateway-side-secret")
    assert added.code == 0, added.err
    pbx = PbxAsterisk(asterisk_install, pbx_pjsip(to_gateway_port, registrar_port, gateway.sip_server))
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
