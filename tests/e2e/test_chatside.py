"""The chat side, end to end: Redial, Lines, Callback, the inline-bot hand-off and Autoreply, through the real
bundled Asterisk to a PBX (baresip or a second Asterisk), Telegram played by the simulator with its bots."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from app.ari.client import AriEvent
from app.calls import chatside
from app.telegram.bot import InlineBot, Menu
from app.telegram.privatecall import PrivateCall
from app.telegram.sim import Behaviour, SimClient
from app.telegram.sim.phone import SimPhone
from tests.audio import RATE, dominant_frequency, rms_dbfs
from tests.e2e.conftest import GATEWAY_PHONE, SimGateway
from tests.e2e.test_sip_to_telegram import sent_and_heard
from tests.e2e.test_telegram_to_sip import PBX_HEADER_EXTENSIONS, PBX_IP_PEER
from tests.pbx import PbxAsterisk
from tests.peers import BaresipPeer, free_port

MENU_BOT = ("tgtrunk_menu_bot", "7001:menu-bot-token")
HELPDESK_BOT = ("helpdesk_bot", "7002:helpdesk-token")


async def until(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), timeout)


def handle(sim_gateway: SimGateway):  # type: ignore[no-untyped-def]
    return sim_gateway.gateway.accounts.handles["main"]


async def tone_both_ways(user: SimPhone, call: PrivateCall, phone: BaresipPeer) -> None:
    """Three seconds of a connected call, then the Telegram user hangs up: each side heard the other's tone
    (the user's 600 Hz at -12 dBFS, the PBX's 1 kHz), frequency within 2 %, level within 3 dB (first second skipped)."""
    start = len(user.heard)
    await user.wait_heard(start + RATE * 2 * 3, timeout=15)
    await call.hangup()
    await phone.wait_event("CALL_CLOSED", timeout=10)
    sent, heard_sip, rate = sent_and_heard(phone)
    heard_tg = user.heard_since(start + RATE * 2)
    assert dominant_frequency(heard_tg) == pytest.approx(1000, rel=0.02)
    assert rms_dbfs(heard_tg) == pytest.approx(rms_dbfs(sent), abs=3)
    assert dominant_frequency(heard_sip, rate) == pytest.approx(600, rel=0.02)
    assert rms_dbfs(heard_sip) == pytest.approx(-15, abs=3)  # a sine at -12 dBFS peak is -15 dBFS RMS


async def pbx_extensions(baresip_factory, server: str, *numbers: str) -> BaresipPeer:  # type: ignore[no-untyped-def]
    """baresip as the PBX an `ip` line reaches: one auto-answering extension per number (the request-URI user
    picks it, so the extension that answers shows the number that arrived), playing a 1 kHz tone."""
    pbx = await baresip_factory("127.0.0.2", tone_hz=1000)
    for number in numbers:
        await pbx.command("uanew", f"<sip:{number}@{server}>;regint=0;answermode=auto")
    return pbx


async def chat_idle(sim_gateway: SimGateway) -> None:
    """Every message and press the chat side took is handled (its tasks are done)."""
    chat_side = sim_gateway.gateway.chat_side
    assert chat_side is not None
    await until(lambda: not chat_side._tasks, 15)


@pytest.fixture
async def menu_bot(sim_gateway: SimGateway) -> AsyncIterator[InlineBot]:
    """The operator's own bot (`tgtrunk bot set`), running next to the gateway account."""
    sim_gateway.network.add_bot(*MENU_BOT)
    bot = await InlineBot(SimClient("menu-bot", sim_gateway.network, bot_token=MENU_BOT[1]), lambda u, q: None).start()
    assert sim_gateway.gateway.chat_side is not None
    sim_gateway.gateway.chat_side.use_bot(bot)
    yield bot
    await bot.stop()


@pytest.fixture
async def pbx(sim_gateway: SimGateway, asterisk_install) -> AsyncIterator[tuple[PbxAsterisk, list[AriEvent], str]]:
    """A second Asterisk as the PBX, reached by `ip` lines at 127.0.0.8; `StasisStart` events of calls it gets."""
    port = free_port("127.0.0.8")
    pbx = PbxAsterisk(asterisk_install, PBX_IP_PEER.format(port=port), extensions_conf=PBX_HEADER_EXTENSIONS)
    await pbx.start()
    ringing: list[AriEvent] = []
    pbx.ari.on("StasisStart", ringing.append)
    events = asyncio.create_task(pbx.ari.run_events())
    try:
        await asyncio.wait_for(pbx.ari.connected.wait(), 10)
        yield pbx, ringing, f"127.0.0.8:{port}"
    finally:
        events.cancel()
        await pbx.stop()


async def test_redial_button_calls_the_user_back_then_the_extension_that_called_with_audio_both_ways(
        sim_gateway, sim_phone, baresip_factory, menu_bot):
    await sim_gateway.add_line("office", username="201", password="pw")
    alice = await sim_phone("alice", Behaviour(tone_hz=600, tone_dbfs=-12))
    phone = await baresip_factory("127.0.0.2", tone_hz=1000)  # the employee's extension 201
    await phone.command("uanew", f"<sip:201@{sim_gateway.sip_server}>;auth_pass=pw;regint=60;answermode=auto")
    assert (await phone.wait_event("REGISTER_OK", "REGISTER_FAIL"))["type"] == "REGISTER_OK"

    await phone.command("dial", f"sip:alice@{sim_gateway.sip_server}")  # PBX -> Telegram
    await phone.wait_event("CALL_ESTABLISHED", timeout=15)
    await alice.calls[-1].wait_connected(10)
    await alice.calls[-1].hangup()
    await phone.wait_event("CALL_CLOSED", timeout=10)

    menu = await alice.wait_message(lambda m: m.button("Redial") is not None)
    assert menu.via_bot_id == menu_bot.id and menu.button("Lines") is not None  # sent through our bot
    assert await alice.press("Redial") == "Calling you back…"

    await until(lambda: len(alice.calls) == 2)  # the gateway calls alice back; she answers
    callback = alice.calls[-1]
    assert not callback.outgoing and callback.peer.phone == GATEWAY_PHONE
    await phone.wait_event("CALL_ESTABLISHED", timeout=15)  # then extension 201 rings (auto answer)
    await callback.wait_connected(10)
    await tone_both_ways(alice, callback, phone)
    record = await sim_gateway.wait_record(2)
    assert (record.trigger, record.line, record.dialled, record.result_code) == ("redial", "office", "201", 200)
    assert record.direction == "telegram-to-sip" and record.answered_at is not None


async def test_redial_survives_a_restart_of_the_chat_side_from_the_database(sim_gateway, sim_phone, pbx):
    """The previous conversation is read from the database, not memory: a new ChatSide (as after a restart)
    redials it; the number goes out without the line's rules."""
    from app.calls.chatside import ChatSide
    from app.store.conversation import LastConversation

    _pbx, ringing, host = pbx
    await sim_gateway.add_line("sbc", mode="ip", host=host, rules=(r"(\d+)=9\1",))
    bob = await sim_phone("bob", Behaviour(record=False))
    with sim_gateway.gateway.db.session() as s:
        s.add(LastConversation(account="main", peer_id=bob.user.id, line="sbc", number="204"))
    gateway = sim_gateway.gateway
    await gateway.chat_side.stop()
    gateway.chat_side = ChatSide(gateway.stasis, gateway.db, gateway.accounts)  # no bot: text commands
    gateway.chat_side.attach()

    await bob.say(GATEWAY_PHONE, "/redial")
    await until(lambda: len(ringing) == 1, 20)
    assert ringing[0]["args"][0] == "204"  # not 9204: Redial sends the number as it was
    await _pbx.ari.request("DELETE", f"/channels/{ringing[0]['channel']['id']}")
    record = await sim_gateway.wait_record(1, timeout=15)
    assert (record.trigger, record.dialled) == ("redial", "204")


async def test_lines_by_text_lists_lines_and_the_choice_rings_the_pbx_with_that_lines_rules(sim_gateway, sim_phone, pbx):
    _pbx, ringing, host = pbx
    await sim_gateway.add_line("east", mode="ip", host=host, pbx_number="200", rules=(r"(\d+)=7\1",), priority=2)
    await sim_gateway.add_line("west", mode="ip", host=host, pbx_number="200", rules=(r"(\d+)=8\1",), priority=1)
    bob = await sim_phone("bob", Behaviour(record=False))

    await bob.say(GATEWAY_PHONE, "/lines")  # no bot: the menu is a numbered text
    listing = await bob.wait_message(lambda m: "Choose a line" in m.text)
    assert listing.text.splitlines()[1:3] == ["1. east", "2. west"]
    await bob.say(GATEWAY_PHONE, "2")
    await until(lambda: len(bob.calls) == 1)  # called back first
    await until(lambda: len(ringing) == 1, 15)
    assert ringing[0]["args"][0] == "8200"  # west's rule applied
    await _pbx.ari.request("POST", f"/channels/{ringing[0]['channel']['id']}/answer")
    await bob.calls[0].wait_connected(10)
    await bob.calls[0].hangup()
    record = await sim_gateway.wait_record(1, timeout=15)
    assert (record.trigger, record.line, record.dialled, record.result_code) == ("lines", "west", "8200", 200)


async def test_lines_button_offers_lines_as_buttons_and_calls_through_the_one_pressed_with_audio_both_ways(
        sim_gateway, sim_phone, baresip_factory, menu_bot):
    pbx = await pbx_extensions(baresip_factory, sim_gateway.sip_server, "7200", "8200")
    host = f"{pbx.address}:{pbx.sip_port}"
    await sim_gateway.add_line("east", mode="ip", host=host, pbx_number="200", rules=(r"(\d+)=7\1",), priority=2)
    await sim_gateway.add_line("west", mode="ip", host=host, pbx_number="200", rules=(r"(\d+)=8\1",), priority=1)
    bob = await sim_phone("bob", Behaviour(tone_hz=600, tone_dbfs=-12))
    await bob.say(GATEWAY_PHONE, "/lines")
    listing = await bob.wait_message(lambda m: m.button("east") is not None)
    assert [label for row in listing.buttons for label, _ in row] == ["east", "west"]
    assert await bob.press("east") == "Calling you back, then east…"
    await until(lambda: len(bob.calls) == 1)  # called back first; bob answers
    answered = await pbx.wait_event("CALL_ESTABLISHED", timeout=20)
    assert answered["accountaor"].startswith("sip:7200@")  # east's rule applied to its number 200
    await bob.calls[0].wait_connected(10)
    await tone_both_ways(bob, bob.calls[0], pbx)
    record = await sim_gateway.wait_record(1, timeout=15)
    assert (record.trigger, record.line, record.dialled, record.result_code) == ("lines", "east", "7200", 200)


@pytest.mark.parametrize(("text", "dialled"), [("please call me on 123", "9123"), ("hello there", "100")])
async def test_callback_calls_the_number_in_the_message_or_the_lines_default_with_audio_both_ways(
        sim_gateway, sim_phone, baresip_factory, text, dialled):
    pbx = await pbx_extensions(baresip_factory, sim_gateway.sip_server, "9123", "100")
    await sim_gateway.add_line("sbc", mode="ip", host=f"{pbx.address}:{pbx.sip_port}", rules=(r"(\d+)=9\1",),
                               callback_number="100")
    h = handle(sim_gateway)
    h.messages, h.callback, h.autoreply = True, True, "calls only"
    bob = await sim_phone("bob", Behaviour(tone_hz=600, tone_dbfs=-12))
    await bob.say(GATEWAY_PHONE, text)
    await until(lambda: len(bob.calls) == 1, 20)  # called back first; bob answers
    answered = await pbx.wait_event("CALL_ESTABLISHED", timeout=20)
    assert answered["accountaor"].startswith(f"sip:{dialled}@")  # the extension of the number that arrived
    await bob.calls[0].wait_connected(10)
    await tone_both_ways(bob, bob.calls[0], pbx)
    record = await sim_gateway.wait_record(1, timeout=15)
    assert (record.trigger, record.dialled, record.result_code) == ("callback", dialled, 200)
    await chat_idle(sim_gateway)
    assert not [m for m in bob.user.received if m.text == "calls only"]  # one reaction: the callback


async def test_no_line_fits_so_the_inline_bot_answers_and_a_silent_bot_gives_the_autoreply(sim_gateway, sim_phone, caplog):
    sim_gateway.network.add_bot(*HELPDESK_BOT)
    answers = iter([Menu("Ticket #1001 opened"), None])
    queries: list[str] = []

    def helpdesk(user_id: int, query: str) -> Menu | None:
        queries.append(query)
        return next(answers)
    bot = await InlineBot(SimClient("helpdesk", sim_gateway.network, bot_token=HELPDESK_BOT[1]), helpdesk).start()
    try:
        await sim_gateway.add_line("office", username="pbx1", password="pw")  # no number for a callback
        h = handle(sim_gateway)
        h.messages, h.callback, h.inline_bot = True, True, "@helpdesk_bot"
        h.inline_query, h.autoreply = "{text} | {username} +{phone}", "Hi {name}, calls only"
        bob = await sim_phone("bob", Behaviour(record=False))
        await bob.say(GATEWAY_PHONE, "printer broken")
        ticket = await bob.wait_message()
        assert (ticket.text, ticket.via_bot_id) == ("Ticket #1001 opened", bot.id)
        assert queries == [f"printer broken | bob +{bob.user.phone}"]
        with caplog.at_level(logging.WARNING, logger="app.calls.chatside"):
            await bob.say(GATEWAY_PHONE, "still broken")
            reply = await bob.wait_message(after=1)
        assert reply.text == "Hi Bob Sim, calls only" and reply.via_bot_id is None
        assert "inline bot: @helpdesk_bot answered no result; the autoreply goes instead" in caplog.text
    finally:
        await bot.stop()


async def test_autoreply_is_sent_at_most_once_per_interval(sim_gateway, sim_phone):
    h = handle(sim_gateway)
    h.messages, h.autoreply, h.autoreply_interval_s = True, "For chat use @support_bot, {name}", 2
    bob = await sim_phone("bob", Behaviour(record=False))
    for text in ("hi", "hello?", "anyone?"):
        await bob.say(GATEWAY_PHONE, text)
    await chat_idle(sim_gateway)
    assert [m.text for m in bob.user.received] == ["For chat use @support_bot, Bob Sim"]
    await asyncio.sleep(2.1)  # the interval itself, not an event
    await bob.say(GATEWAY_PHONE, "hi again")
    await bob.wait_message(after=1)
    assert len(bob.user.received) == 2


async def test_who_wrote_is_forgotten_once_the_autoreply_interval_is_over(sim_gateway, sim_phone, monkeypatch):
    """Issue 8 item 8: every user who ever wrote was kept for ever (and every user called after a call with a
    menu): the gateway grew with each new user."""
    monkeypatch.setattr(chatside, "FORGET_EVERY_S", 0.0, raising=False)  # forget at every message
    h = handle(sim_gateway)
    h.messages, h.autoreply, h.autoreply_interval_s = True, "For chat use @support_bot, {name}", 1
    carol = await sim_phone("carol", Behaviour(record=False))
    bob = await sim_phone("bob", Behaviour(record=False))
    await carol.say(GATEWAY_PHONE, "hi")
    await carol.wait_message()
    await asyncio.sleep(1.1)  # the interval itself, not an event
    await bob.say(GATEWAY_PHONE, "hi")
    await bob.wait_message()
    assert sim_gateway.gateway.chat_side is not None
    assert list(sim_gateway.gateway.chat_side._autoreplied) == [(h.name, bob.user.id)]


async def test_with_every_switch_off_nothing_at_all_is_sent_into_any_chat(sim_gateway, sim_phone, baresip_factory):
    h = handle(sim_gateway)
    h.redial = h.lines = h.messages = h.dtmf_in = h.dtmf_out = False
    h.callback, h.autoreply = True, "never sent"  # under Messages processing, which is off
    await sim_gateway.add_line("office", username="pbx1", password="pw", pbx_number="100")
    bob = await sim_phone("bobby", Behaviour(record=False))
    phone = await baresip_factory("127.0.0.2")
    assert (await phone.register("pbx1", "pw", sim_gateway.sip_server))["type"] == "REGISTER_OK"
    await phone.command("dial", f"sip:bobby@{sim_gateway.sip_server}")
    await phone.wait_event("CALL_ESTABLISHED", timeout=15)
    await bob.calls[-1].wait_connected(10)
    await bob.say(GATEWAY_PHONE, "5")  # a digit during the call: DTMF In/Out are off, so nothing
    await phone.command("hangup")
    await sim_gateway.wait_record(1)
    call = await bob.call(GATEWAY_PHONE)  # refused (the line's device does not answer 100): no chat text either
    await asyncio.wait_for(call.ended, 30)
    await sim_gateway.wait_record(2, timeout=30)
    for text in ("/redial", "/lines", "call me on 100", "hello"):
        await bob.say(GATEWAY_PHONE, text)
    await chat_idle(sim_gateway)
    assert not bob.user.received
    sent = [name for user, name in sim_gateway.network.requests if user == sim_gateway.account.me.id
            and name in ("messages.SendMessage", "messages.SendInlineBotResult")]
    assert sent == []


async def test_after_a_call_without_a_bot_the_menu_is_text_and_slash_redial_works(sim_gateway, sim_phone, pbx):
    _pbx, ringing, host = pbx
    await sim_gateway.add_line("sbc", mode="ip", host=host, pbx_number="300")
    carol = await sim_phone("carol", Behaviour(record=False))
    call = await carol.call(GATEWAY_PHONE)  # Telegram -> PBX, extension 300
    await until(lambda: len(ringing) == 1, 15)
    await _pbx.ari.request("POST", f"/channels/{ringing[0]['channel']['id']}/answer")
    await call.wait_connected(10)
    await call.hangup()
    menu = await carol.wait_message(lambda m: m.text.startswith("Call ended."))
    assert "/redial" in menu.text and "/lines" in menu.text and menu.buttons == []
    await carol.say(GATEWAY_PHONE, "/redial")
    await until(lambda: len(ringing) == 2, 20)
    assert ringing[1]["args"][0] == "300"  # the number that was rung
    await _pbx.ari.request("DELETE", f"/channels/{ringing[1]['channel']['id']}")
    record = await sim_gateway.wait_record(2, timeout=15)
    assert (record.trigger, record.dialled) == ("redial", "300")
