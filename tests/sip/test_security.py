"""Failed authentications are logged with line and address; repeat offenders are banned."""

from __future__ import annotations

import asyncio
import secrets

from tests.peers import register_guess


async def test_failures_are_logged_and_repeat_offender_is_banned(make_gateway, baresip_factory):
    gateway = await make_gateway(TGTRUNK_BAN_THRESHOLD="3", TGTRUNK_BAN_WINDOW="60", TGTRUNK_BAN_SECONDS="300")
    assert (await gateway.cli("line", "add", "pbx1", "--mode", "register", "--password", "right")).code == 0
    await gateway.wait_log(r"lines in sync")

    attacker = await baresip_factory("127.0.0.4")
    assert (await attacker.register("nobody", "x", gateway.sip_server))["type"] == "REGISTER_FAIL"
    # Asterisk names the user in some of its events only (InvalidAccountID), not in the decoy challenge's
    await gateway.wait_log(r"unknown user '(nobody|<unknown>)' \(no line\) from 127\.0\.0\.4:")
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


async def test_slow_guesses_for_an_unknown_user_are_all_counted_and_banned(make_gateway):
    """A scanner guessing passwords for a user that does not exist, one guess every 1.2 s, one Call-ID."""
    gateway = await make_gateway(TGTRUNK_BAN_THRESHOLD="12", TGTRUNK_BAN_WINDOW="60", TGTRUNK_BAN_SECONDS="300")
    server = ("127.0.0.1", gateway.sip_port)
    call_id = secrets.token_hex(8)
    for n in range(12):
        code = await asyncio.to_thread(register_guess, "127.0.0.8", server, "nobody", f"guess{n}", call_id, 1 + 2 * n)
        assert code == 401
        await asyncio.sleep(1.2)  # the attacker's pace, not a wait for the gateway
    await gateway.wait_log(r"banned 127\.0\.0\.8 for 300 s after 12 failed authentications", timeout=5)
    failures = [line for line in gateway.lines if "unknown user" in line and "from 127.0.0.8:" in line]
    assert len(failures) == 12, failures
    status = await gateway.cli("status")
    assert "127.0.0.8" in status.out and "12 failures" in status.out
