"""`tgtrunk serve --simulate-telegram`: a softphone calls the seeded users; `tgtrunk sim call` rings it."""

from __future__ import annotations


async def test_demo_mode_from_a_softphone(make_gateway, baresip_factory):
    gateway = await make_gateway(start=False)
    assert (await gateway.cli("line", "add", "desk", "--mode", "register", "--username", "desk",
                              "--password", "pw")).code == 0
    await gateway.start("--simulate-telegram")
    await gateway.wait_log(r"lines in sync")
    phone = await baresip_factory("127.0.0.2")
    await phone.command("uanew", f"<sip:desk@{gateway.sip_server}>;auth_pass=pw;regint=60;answermode=auto")
    assert (await phone.wait_event("REGISTER_OK", "REGISTER_FAIL"))["type"] == "REGISTER_OK"

    assert (await phone.dial_until_closed(f"sip:busy@{gateway.sip_server}")).startswith("486")
    assert (await phone.dial_until_closed(f"sip:private@{gateway.sip_server}")).startswith("403")
    await phone.command("dial", f"sip:echo@{gateway.sip_server}")
    await phone.wait_event("CALL_ESTABLISHED", timeout=15)
    await phone.command("hangup")
    await phone.wait_event("CALL_CLOSED")

    called = await gateway.cli("sim", "call", "tone")
    assert called.code == 0, called.err + "\n".join(gateway.lines[-15:])
    incoming = await phone.wait_event("CALL_ESTABLISHED", timeout=15)
    assert incoming["direction"] == "incoming" and incoming["peerdisplayname"] == "Tone Test"
    await phone.command("hangup")
    await phone.wait_event("CALL_CLOSED")

    records = (await gateway.cli("calls", "--last", "10")).out
    assert records.count("SIP->Telegram") == 3 and records.count("Telegram->SIP") == 1
    assert " 486 " in records and " 403 " in records
