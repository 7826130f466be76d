"""A PBX registering to a `register` line: digest auth, trusted IPs, calls into Stasis."""

from __future__ import annotations

import asyncio

from tests.conftest import GatewayProcess


async def add_line(gateway: GatewayProcess, *args: str) -> str:
    result = await gateway.cli("line", "add", *args)
    assert result.code == 0, result.err
    await gateway.wait_log(r"lines in sync")
    return result.out


async def test_right_password_registers_and_wrong_one_is_refused(gateway, baresip_factory):
    await add_line(gateway, "pbx1", "--mode", "register", "--password", "s3cret-one")
    peer = await baresip_factory("127.0.0.2")

    ok = await peer.register("pbx1", "s3cret-one", gateway.sip_server)
    assert ok["type"] == "REGISTER_OK"
    assert ok["param"].startswith("200")

    bad = await peer.register("pbx1", "not-the-password", gateway.sip_server)
    assert bad["type"] == "REGISTER_FAIL"
    assert bad["param"].startswith(("401", "403")), bad


async def test_generated_password_is_shown_once_and_works(gateway, baresip_factory):
    out = await add_line(gateway, "pbx2", "--mode", "register", "--username", "office")
    password = out.split("stored only as a digest): ", 1)[1].split()[0]
    peer = await baresip_factory("127.0.0.2")
    assert (await peer.register("office", password, gateway.sip_server))["type"] == "REGISTER_OK"
    shown = await gateway.cli("line", "show", "pbx2")
    assert password not in shown.out
    assert "stored as digest" in shown.out


async def test_trusted_ips_refuse_other_address_even_with_right_password(gateway, baresip_factory):
    await add_line(gateway, "pbx1", "--mode", "register", "--password", "pw-trusted",
                   "--trusted-ip", "127.0.0.2/32")
    outsider = await baresip_factory("127.0.0.3")
    refused = await outsider.register("pbx1", "pw-trusted", gateway.sip_server)
    # Asterisk answers an ACL failure like a wrong password (401), so nothing is learnt by probing.
    assert refused["type"] == "REGISTER_FAIL"
    assert refused["param"].startswith(("401", "403")), refused
    await gateway.wait_log(r"untrusted address 'pbx1' \(line pbx1\) from 127\.0\.0\.3:")

    insider = await baresip_factory("127.0.0.2")
    assert (await insider.register("pbx1", "pw-trusted", gateway.sip_server))["type"] == "REGISTER_OK"


async def test_call_reaches_stasis_with_line_and_number_and_gets_503_without_account(gateway, baresip_factory):
    await add_line(gateway, "office", "--mode", "register", "--username", "pbx1", "--password", "pw-call")
    peer = await baresip_factory("127.0.0.2")
    assert (await peer.register("pbx1", "pw-call", gateway.sip_server))["type"] == "REGISTER_OK"

    status = await peer.dial_until_closed(f"sip:+15550001@{gateway.sip_server}")

    assert status.startswith("503"), status  # in Stasis, no Telegram account: 503 Session is not running
    await gateway.wait_log(r"call from line office .* to '\+15550001'")
    await gateway.wait_log(r"line office: call to '\+15550001' refused with 503 Session is not running")


async def test_register_line_state_is_visible_in_status(gateway, baresip_factory):
    await add_line(gateway, "pbx1", "--mode", "register", "--password", "pw-status")
    peer = await baresip_factory("127.0.0.2")
    assert (await peer.register("pbx1", "pw-status", gateway.sip_server))["type"] == "REGISTER_OK"

    async def registered() -> str:
        while True:
            out = (await gateway.cli("status")).out
            if "pbx1" in out and " registered (" in out:
                return out
            await asyncio.sleep(0.3)  # polling the CLI, as an admin would
    out = await asyncio.wait_for(registered(), 10)
    assert "gateway:  running" in out
