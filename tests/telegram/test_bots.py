"""Bots on the simulated network and the rate-limited chat sender, at the raw TL level."""

from __future__ import annotations

import logging
import time

import pytest

from app.telegram.bot import InlineBot, Menu
from app.telegram.chat import ChatSender, NoInlineResult
from app.telegram.sim import SimClient, SimNetwork


TOKEN = "123456:bot-token"


async def start_bot(network: SimNetwork, username: str, on_inline, on_press=None) -> InlineBot:  # type: ignore[no-untyped-def]
    if not any(u.username == username for u in network.users.values()):
        network.add_bot(username, TOKEN if username == "menu_bot" else f"9:{username}")
    token = TOKEN if username == "menu_bot" else f"9:{username}"
    return await InlineBot(SimClient(username, network, bot_token=token), on_inline, on_press).start()


async def test_bot_logs_in_with_its_token_and_a_wrong_token_is_refused(network: SimNetwork):
    network.add_bot("menu_bot", TOKEN)
    bot = await start_bot(network, "menu_bot", lambda user, query: None)
    try:
        assert bot.username == "menu_bot"
    finally:
        await bot.stop()
    with pytest.raises(Exception, match="ACCESS_TOKEN_INVALID"):
        await InlineBot(SimClient("bad", network, bot_token="1:wrong"), lambda u, q: None).start()


async def test_inline_result_with_buttons_reaches_the_chat_and_a_press_is_answered(network, gateway, make_phone):
    presses: list[tuple[int, str]] = []

    async def on_press(user_id: int, data: str) -> str:
        presses.append((user_id, data))
        return "Calling you back"

    bot = await start_bot(network, "menu_bot", lambda user, query: Menu(f"Call ended ({query})", (
        (("Redial", "redial"), ("Lines", "lines")),)), on_press)
    try:
        bob = await make_phone("bob")
        chat = ChatSender(gateway)
        peer = await gateway.resolve_username("bob")
        assert await chat.inline(peer, await gateway.resolve("@menu_bot"), "menu 1")
        message = await bob.wait_message(lambda m: m.via_bot_id == bot.id)
        assert message.text == "Call ended (menu 1)" and message.from_id == gateway.me.id
        assert message.buttons == [[("Redial", b"redial"), ("Lines", b"lines")]]
        assert await bob.press("Redial") == "Calling you back"
        assert presses == [(bob.user.id, "redial")]  # the press names who pressed
    finally:
        await bot.stop()


async def test_an_inline_bot_without_results_or_offline_is_a_clear_error(network, gateway, make_phone):
    await make_phone("bob")
    bot = await start_bot(network, "menu_bot", lambda user, query: None)
    chat = ChatSender(gateway)
    peer = await gateway.resolve_username("bob")
    try:
        with pytest.raises(NoInlineResult, match="answered no result"):
            await chat.inline(peer, await gateway.resolve("@menu_bot"), "anything")
    finally:
        await bot.stop()
    with pytest.raises(NoInlineResult, match="BOT_RESPONSE_TIMEOUT|did not answer"):
        await chat.inline(peer, await gateway.resolve("@menu_bot"), "anything")  # the bot is offline now


@pytest.mark.parametrize("function", ["messages.SendMessage", "messages.SendInlineBotResult"])
async def test_flood_wait_is_waited_out_then_sent_once(network, gateway, make_phone, caplog, function):
    bob = await make_phone("bob")
    bot = await start_bot(network, "menu_bot", lambda user, query: Menu("hello"))
    chat = ChatSender(gateway)
    peer, menu_bot = await gateway.resolve_username("bob"), await gateway.resolve("@menu_bot")
    network.inject(function, "FLOOD_WAIT_2", user_id=gateway.me.id)
    started = time.monotonic()
    try:
        with caplog.at_level(logging.WARNING, logger="app.telegram.chat"):
            sent = await (chat.text(peer, "hello") if function == "messages.SendMessage"
                          else chat.inline(peer, menu_bot, "x"))
        assert sent and time.monotonic() - started >= 2.0
        assert [m.text for m in bob.user.received] == ["hello"]
        assert [name for _, name in network.requests].count(function) == 2  # no tight loop
        assert "FLOOD_WAIT of 2 s from Telegram" in caplog.text
    finally:
        await bot.stop()


async def test_long_flood_wait_and_peer_flood_drop_the_message_with_a_log_line(network, gateway, make_phone, caplog):
    bob = await make_phone("bob")
    chat = ChatSender(gateway, max_wait_s=60)
    peer = await gateway.resolve_username("bob")
    network.inject("messages.SendMessage", "FLOOD_WAIT_3600", user_id=gateway.me.id)
    network.inject("messages.SendMessage", "PEER_FLOOD", user_id=gateway.me.id)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="app.telegram.chat"):
        assert not await chat.text(peer, "one")
        assert not await chat.text(peer, "two")
    assert time.monotonic() - started < 2
    assert not bob.user.received
    assert "dropped: FLOOD_WAIT of 3600 s" in caplog.text and "dropped: PEER_FLOOD" in caplog.text
    assert [name for _, name in network.requests].count("messages.SendMessage") == 2
