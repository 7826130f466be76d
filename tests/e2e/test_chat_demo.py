"""The chat side from a newcomer's seat: `tgtrunk serve --simulate-telegram`, a softphone, the demo bots, and
the `tgtrunk sim message / press / chat` commands; the session settings through the admin API."""

from __future__ import annotations

import json

from app.store.account import TelegramAccountRow
from app.store.db import Database
from tests.web.test_admin_api import assert_no_traceback, http


async def test_demo_message_gets_a_helpdesk_ticket_and_a_number_gets_a_callback_to_the_softphone(
        make_gateway, baresip_factory):
    gateway = await make_gateway(start=False)
    await gateway.start("--simulate-telegram")
    added = await gateway.cli("line", "add", "desk", "--mode", "register", "--username", "desk", "--password", "pw")
    assert added.code == 0, added.err
    await gateway.wait_log(r"lines in sync: 1 line")  # the PBX can register once the line is in Asterisk
    phone = await baresip_factory("127.0.0.2")
    await phone.command("uanew", f"<sip:desk@{gateway.sip_server}>;auth_pass=pw;regint=60;answermode=auto")
    assert (await phone.wait_event("REGISTER_OK", "REGISTER_FAIL", timeout=15))["type"] == "REGISTER_OK"

    sent = await gateway.cli("sim", "message", "tone", "my printer is broken")
    assert sent.code == 0, sent.err
    await gateway.wait_log(r"handed to inline bot @helpdesk_demo_bot", timeout=15)
    chat = await gateway.cli("sim", "chat", "tone")
    assert chat.out.startswith("Ticket #1001 opened: my printer is broken (from Tone Test, +15550100002)")

    await gateway.cli("sim", "message", "tone", "call me at 100")  # Callback: the softphone on desk rings
    await gateway.wait_log(r"callback: calling Telegram \d+ back, then '100' on line desk", timeout=15)
    await gateway.wait_log(r"-> line desk, ringing the registered device", timeout=30)
    try:
        await phone.wait_event("CALL_ESTABLISHED", timeout=20)
    except TimeoutError:
        raise AssertionError("\n".join(gateway.lines[-25:]))
    await phone.command("hangup")
    await gateway.wait_log(r"ended: 200", timeout=15)
    menu = await gateway.cli("sim", "chat", "tone")
    assert "Call ended. [Redial] [Lines]" in menu.out  # through @tgtrunk_demo_bot, with its buttons
    pressed = await gateway.cli("sim", "press", "tone", "Redial")
    assert pressed.out.strip() == "Calling you back…", pressed.err
    await phone.wait_event("CALL_ESTABLISHED", timeout=20)
    await phone.command("hangup")
    calls = await gateway.cli("calls")
    assert "redial->SIP" in calls.out and "callback->SIP" in calls.out
    missing = await gateway.cli("sim", "press", "nobody", "Redial")
    assert missing.code == 2 and "no simulated user" in missing.err
    assert_no_traceback(gateway)


async def test_admin_api_reads_and_changes_session_settings_and_refuses_bad_bodies(make_gateway):
    gateway = await make_gateway(start=False)
    db = Database(gateway.env["TGTRUNK_DATABASE_URL"] if "TGTRUNK_DATABASE_URL" in gateway.env
                  else f"sqlite:///{gateway.data_dir / 'tgtrunk.db'}")
    with db.session() as session:
        session.add(TelegramAccountRow(name="sales", phone="+15550001", api_id=1, session_encrypted="x"))
    db.close()
    await gateway.start()
    status, body = await http(gateway, "GET", "/api/accounts/sales/settings")
    assert status == 200 and json.loads(body)["redial"] is True and json.loads(body)["autoreply_interval_s"] == 600
    patch = {"messages": True, "autoreply": "Calls only, {name}", "autoreply_interval_s": 60, "inline_bot": "@help_bot"}
    status, body = await http(gateway, "PATCH", "/api/accounts/sales/settings", json.dumps(patch).encode())
    assert status == 200, body
    assert {k: json.loads(body)[k] for k in patch} == {**patch, "inline_bot": "help_bot"}
    for bad, reason in ((b'{"redial": "yes"}', "valid boolean"), (b'{"colour": 1}', "unknown field"),
                        (b'{"autoreply_interval_s": -1}', "greater than or equal to 0"),
                        (b'{"inline_bot": "not a name"}', "@username"), (b"{bad", "Invalid JSON")):
        status, body = await http(gateway, "PATCH", "/api/accounts/sales/settings", bad)
        assert (status, reason in body) == (400, True), body
    status, _ = await http(gateway, "GET", "/api/accounts/nobody/settings")
    assert status == 404
    shown = await gateway.cli("account", "show", "sales")
    assert "autoreply:   Calls only, {name} (at most every 60 s)" in shown.out
    assert_no_traceback(gateway)
