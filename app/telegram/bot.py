"""A Telegram bot that tgtrunk runs (kurigram, bot login): answers inline queries with messages carrying
callback buttons, and button presses with a toast.

A user account cannot put buttons under its own messages; it can send a bot's inline result (with the bot's
inline keyboard) into any chat. So the gateway account asks this bot for a menu (`messages.getInlineBotResults`)
and sends it (`messages.sendInlineBotResult`); a press reaches this bot as an inline callback query naming who
pressed. The bot only answers the gateway accounts' inline queries: a stranger gets no results.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pyrogram import Client, raw
from pyrogram.handlers import RawUpdateHandler

log = logging.getLogger(__name__)

Button = tuple[str, str]  # (label, callback data)
InlineAnswer = Callable[[int, str], "Menu | None"]  # (asking user id, query) -> what to answer
PressAnswer = Callable[[int, str], Awaitable[str]]  # (pressing user id, data) -> toast text
MENU_TTL_S = 600.0


@dataclass(frozen=True)
class Menu:
    text: str
    rows: tuple[tuple[Button, ...], ...] = ()

    def markup(self) -> raw.types.ReplyInlineMarkup | None:
        if not self.rows:
            return None
        return raw.types.ReplyInlineMarkup(rows=[
            raw.types.KeyboardInlineButtonRow(buttons=[
                raw.types.KeyboardInlineButton(text=label, type=raw.types.InlineButtonTypeCallback(data=data.encode()))
                for label, data in row])
            for row in self.rows])


@dataclass
class InlineBot:
    """A started bot client; `on_inline` decides what an inline query gets, `on_press` what a press does."""

    client: Client
    on_inline: InlineAnswer
    on_press: PressAnswer | None = None
    username: str = ""
    id: int = 0
    _handler: tuple[RawUpdateHandler, int] | None = None
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    async def start(self) -> "InlineBot":
        if not self.client.is_connected:
            await self.client.start()
        full = await self.client.invoke(raw.functions.users.GetFullUser(id=raw.types.InputUserSelf()))
        self.username, self.id = full.users[0].username or "", full.users[0].id
        handler = RawUpdateHandler(self._on_raw_update)
        self.client.add_handler(handler, group=-100)
        self._handler = (handler, -100)
        log.info("bot @%s is running (inline menus and buttons)", self.username)
        return self

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._handler is not None:
            self.client.remove_handler(*self._handler)
            self._handler = None
        if self.client.is_connected:
            await self.client.stop()

    async def _on_raw_update(self, _client: Client, update: Any, _users: dict, _chats: dict) -> None:
        # Answered in tasks of their own: the update handler must not wait for a press's work.
        if isinstance(update, raw.types.UpdateBotInlineQuery):
            self._spawn(self._answer_inline(update))
        elif isinstance(update, raw.types.UpdateInlineBotCallbackQuery):
            self._spawn(self._answer_press(update))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer_inline(self, update: raw.types.UpdateBotInlineQuery) -> None:
        menu = self.on_inline(update.user_id, update.query)
        results = [] if menu is None else [raw.types.InputBotInlineResult(
            id=os.urandom(6).hex(), type="article", title=menu.text.splitlines()[0][:64] or "menu",
            send_message=raw.types.InputBotInlineMessageText(message=menu.text, reply_markup=menu.markup()))]
        try:
            await self.client.invoke(raw.functions.messages.SetInlineBotResults(
                query_id=update.query_id, results=results, cache_time=0, private=True))
        except Exception as exc:  # noqa: BLE001 - the asker sees no result and says so
            log.warning("bot @%s: answering an inline query failed: %s", self.username, exc)

    async def _answer_press(self, update: raw.types.UpdateInlineBotCallbackQuery) -> None:
        data = (update.data or b"").decode(errors="replace")
        try:
            toast = await self.on_press(update.user_id, data) if self.on_press else ""
        except Exception:  # noqa: BLE001 - a bug must still answer the press
            log.exception("bot @%s: handling the button %r of user %s failed", self.username, data, update.user_id)
            toast = "Something went wrong; try again later"
        try:
            await self.client.invoke(raw.functions.messages.SetBotCallbackAnswer(
                query_id=update.query_id, cache_time=0, message=toast or None))
        except Exception as exc:  # noqa: BLE001
            log.warning("bot @%s: answering a button press failed: %s", self.username, exc)


class MenuBoard:
    """Menus waiting for the gateway account's inline query: the query names one by a random key."""

    def __init__(self) -> None:
        self._menus: dict[str, tuple[float, Menu]] = {}

    def put(self, menu: Menu) -> str:
        now = asyncio.get_running_loop().time()
        for key in [k for k, (at, _) in self._menus.items() if now - at > MENU_TTL_S]:
            del self._menus[key]
        key = "menu " + os.urandom(8).hex()
        self._menus[key] = (now, menu)
        return key

    def take(self, key: str) -> Menu | None:
        found = self._menus.pop(key, None)
        return found[1] if found else None
