"""Failed authentications are logged with line and address; repeat offenders are banned."""

from __future__ import annotations


async def test_failures_are_logged_and_repeat_offender_is_banned(make_gateway, baresip_factory):
    gateway = await make_gateway(TGTRUNK_BAN_THRESHOLD="3", TGTRUNK_BAN_WINDOW="60", TGTRUNK_BAN_SECONDS="300")
    assert (await gateway.cli("line", "add", "pbx1", "--mode", "register", "--password", "right")).code == 0
    await gateway.wait_log(r"lines in sync")

    attacker = await baresip_factory("127.0.0.4")
    assert (await attacker.register("nobody", "x", gateway.sip_server))["type"] == "REGISTER_FAIL"
    await gateway.wait_log(r"unknown user 'nobody' \(no line\) from 127\.0\.0\.4:")
    for guess in ("guess1", "guess2"):
        assert (await attacker.register("pbx1", guess, gateway.sip_server))["type"] == "REGISTER_FAIL"
        await gateway.wait_log(r"wrong password 'pbx1' \(line pbx1\) from 127\.0\.0\.4:")
    await gateway.wait_log(r"banned 127\.0\.0\.4 for 300 s after 3 failed authentications")

    status = await gateway.cli("status")
    assert "127.0.0.4" in status.out and "3 failures" in status.out

    # The banned address is refused even with the right password; others are not affected.
    refused = await attacker.register("pbx1", "right", gateway.sip_server)
    assert refused["type"] == "REGISTER_FAIL", refused
    friend = await baresip_factory("127.0.0.2")
    assert (await friend.register("pbx1", "right", gateway.sip_server))["type"] == "REGISTER_OK"
