"""The chat side of an account (the reference's session settings Redial, Lines, Messages processing, Callback,
inline bot, Autoreply): what the gateway says after a call and how it answers messages and button presses.

After a call (Redial or Lines on) the Telegram user gets a menu: with the operator's bot, a message sent through
it carrying Redial / Lines buttons; without one, a text naming the commands `/redial` and `/lines` (a numbered
list; the user answers with the number). A message the call side does not take (DTMF during a call) is handled:

1. a command or a numbered choice (`/redial`, `/lines`, `2`): always, when that feature is on;
2. Messages processing off: nothing more;
3. Callback on and a line fits (by priority, with room, with a number): the user is called back, then the PBX;
4. else an inline bot is named: its first result for the formatted query goes into the chat;
5. else (or when the bot answers nothing) the autoreply, at most once per user per interval.

One reaction per message. Every call started here is a call record with its trigger.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from app.calls.accounts import AccountHandle, Accounts
from app.calls.callsession import CallSession
from app.calls.stasis import StasisApp
from app.sip.callerid import caller_fields
from app.sip.dialplan import RuleError, apply_rules
from app.store.conversation import LastConversation
from app.store.db import Database
from app.store.line import utcnow
from app.telegram.bot import InlineBot, Menu, MenuBoard
from app.telegram.chat import NoInlineResult
from app.telegram.peer import Peer

log = logging.getLogger(__name__)

NUMBER_IN_TEXT = re.compile(r"(?<![\w@])\+?\d[\d\s().-]{1,30}\d|(?<![\w@])\d{2,}")
LINES_CHOICE_TTL_S = 600.0
MENU_PRESS_VALID_S = 86_400.0  # a menu's buttons work this long for a user with no conversation on record
FORGET_EVERY_S = 60.0  # how often per-user state that is of no more use is forgotten
DEFAULT_INLINE_QUERY = "{text}"


@dataclass
class _Choice:
    lines: list[str]
    at: float


def template_fields(peer: Peer, text: str) -> dict[str, str]:
    fields = {k: v or "" for k, v in caller_fields(peer.phone, peer.username, peer.id, peer.name).items()}
    return {**fields, "text": text}


def fill(template: str, fields: dict[str, str]) -> str:
    """`{field}` replaced; unknown fields and stray braces are left as written (never an error)."""
    return re.sub(r"\{(\w+)\}", lambda m: fields.get(m.group(1), m.group(0)), template)


def number_in(text: str) -> str | None:
    match = NUMBER_IN_TEXT.search(text)
    if match is None:
        return None
    number = re.sub(r"[\s().-]", "", match.group(0))
    return number if len(number.lstrip("+")) >= 2 else None


class ChatSide:
    def __init__(self, stasis: StasisApp, db: Database, accounts: Accounts, bot: InlineBot | None = None) -> None:
        self.stasis = stasis
        self.db = db
        self.accounts = accounts
        self.bot: InlineBot | None = None
        self.board = MenuBoard()
        self._choices: dict[tuple[str, int], _Choice] = {}
        self._autoreplied: dict[tuple[str, int], float] = {}
        self._menus_to: dict[tuple[str, int], float] = {}  # -> time.monotonic() of the last menu sent
        self._forget_at = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()
        stasis.on_chat_message = self.on_message
        if bot is not None:
            self.use_bot(bot)

    def use_bot(self, bot: InlineBot) -> None:
        """Menus go through this (started) bot from now on; its inline queries and presses come here."""
        bot.on_inline, bot.on_press = self._on_inline, self.on_press
        self.bot = bot

    def attach(self) -> None:
        for handle in self.accounts.handles.values():
            handle.on_call_end = lambda session, h=handle: self._spawn(self.after_call(h, session))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Awaitable[None]) -> None:
        # Never awaited in the account's update handler: it must go on routing call updates meanwhile.
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("chat side: a task failed", exc_info=task.exception())

    # --- after a call ----------------------------------------------------------------------------

    async def after_call(self, handle: AccountHandle, session: CallSession) -> None:
        call = session.tg_call
        if call is None or not session.sip_channel_id or not session.line:
            return  # refused before the PBX or Telegram was reached: no conversation
        peer = call.peer
        self._remember(handle.name, peer.id, session.line, session.pbx_party)
        if handle.redial or handle.lines:
            await self._send_menu(handle, peer, self._after_call_menu(handle))

    def _remember(self, account: str, peer_id: int, line: str, number: str) -> None:
        try:
            with self.db.session() as s:
                row = s.get(LastConversation, (account, peer_id)) or LastConversation(account=account, peer_id=peer_id, line=line)
                row.line, row.number, row.updated_at = line, number, utcnow()
                s.add(row)
        except Exception as exc:  # noqa: BLE001 - a full disk costs Redial, not the gateway
            log.warning("chat side: the previous conversation of %s could not be stored: %s", peer_id, exc)

    def _previous(self, account: str, peer_id: int) -> LastConversation | None:
        with self.db.session() as s:
            return s.get(LastConversation, (account, peer_id))

    def _after_call_menu(self, handle: AccountHandle) -> Menu:
        buttons = []
        if handle.redial:
            buttons.append(("Redial", f"redial:{handle.name}"))
        if handle.lines:
            buttons.append(("Lines", f"lines:{handle.name}"))
        return Menu("Call ended.", (tuple(buttons),))

    async def _send_menu(self, handle: AccountHandle, peer: Peer, menu: Menu) -> None:
        assert handle.chat is not None
        self._forget_old()
        self._menus_to[(handle.name, peer.id)] = time.monotonic()
        if self.bot is not None:
            try:
                bot_peer = await handle.account.resolve_username(self.bot.username)
                if await handle.chat.inline(peer, bot_peer, self.board.put(menu)):
                    return
                return  # dropped by flood limits: said in the log
            except Exception as exc:  # noqa: BLE001 - the text commands still work
                log.warning("chat side: the bot's menu could not be sent to %s (%s); sending the text instead",
                            peer.id, exc)
        await handle.chat.text(peer, self._as_text(handle, peer, menu))

    def _as_text(self, handle: AccountHandle, peer: Peer, menu: Menu) -> str:
        lines = [menu.text]
        choices = []
        for row in menu.rows:
            for label, data in row:
                kind = data.split(":", 1)[0]
                if kind == "redial":
                    lines.append("/redial: call me back and connect me to the same person again")
                elif kind == "lines":
                    lines.append("/lines: choose a line to call through")
                elif kind == "line":
                    choices.append(label)
                    lines.append(f"{len(choices)}. {label}")
        if choices:
            lines.append("Answer with the number of the line.")
            self._choices[(handle.name, peer.id)] = _Choice(choices, time.monotonic())
        return "\n".join(lines)

    # --- button presses (the bot) and their text commands -----------------------------------------

    def _on_inline(self, user_id: int, query: str) -> Menu | None:
        accounts = {h.account.me.id for h in self.accounts.handles.values() if h.account.me}
        return self.board.take(query) if user_id in accounts else None

    async def on_press(self, user_id: int, data: str) -> str:
        kind, _, rest = data.partition(":")
        name, _, line_name = rest.partition(":")
        handle = self.accounts.handles.get(name)
        if handle is None or (name, user_id) not in self._menus_to and self._previous(name, user_id) is None:
            return "This button is no longer valid"
        peer = await handle.account.resolve_user_id(user_id)
        return await self._act(handle, peer, kind, line_name)

    async def _act(self, handle: AccountHandle, peer: Peer, kind: str, line_name: str = "") -> str:
        if kind == "redial" and handle.redial:
            return self._redial(handle, peer)
        if kind == "lines" and handle.lines:
            menu = self._lines_menu(handle)
            if menu is None:
                return "No line can take a call now"
            self._spawn(self._send_menu(handle, peer, menu))
            return "Choose a line"
        if kind == "line" and handle.lines:
            return self._call_via(handle, peer, line_name)
        return "This is switched off"

    def _redial(self, handle: AccountHandle, peer: Peer) -> str:
        previous = self._previous(handle.name, peer.id)
        if previous is None:
            return "There is no previous call to redial"
        line = self.stasis.lines.lines.get(previous.line)
        if line is None or not self.stasis.has_room(line, handle):
            return "That line cannot take a call now"
        self._spawn(self.stasis.call_back(handle, peer, line, previous.number, "redial"))  # no number rules
        return "Calling you back…"

    def _lines_menu(self, handle: AccountHandle) -> Menu | None:
        usable = [line for line in self.stasis.lines_for(handle) if self.stasis.has_room(line, handle)]
        if not usable:
            return None
        return Menu("Choose a line:", tuple(((line.name, f"line:{handle.name}:{line.name}"),) for line in usable))

    def _call_via(self, handle: AccountHandle, peer: Peer, line_name: str) -> str:
        line = self.stasis.lines.lines.get(line_name)
        if line is None or self.stasis.accounts.for_line(line) is not handle or not self.stasis.has_room(line, handle):
            return "That line cannot take a call now"
        previous = self._previous(handle.name, peer.id)
        number = previous.number if previous and previous.number else (line.callback_number or line.pbx_number or "")
        try:
            number = apply_rules(line.rules, number)  # Lines: the chosen line's number rules apply
        except RuleError as exc:
            log.warning("lines: %s", exc)
            return "That line cannot take this number"
        self._spawn(self.stasis.call_back(handle, peer, line, number, "lines"))
        return f"Calling you back, then {line.name}…"

    # --- messages ------------------------------------------------------------------------------------

    async def on_message(self, handle: AccountHandle, peer: Peer, text: str) -> None:
        self._spawn(self._on_message(handle, peer, text))

    async def _on_message(self, handle: AccountHandle, peer: Peer, text: str) -> None:
        assert handle.chat is not None
        self._forget_old()
        command = text.strip().lower()
        if command in ("/redial", "/lines") or self._choice(handle, peer, command):
            await self._command(handle, peer, command)
            return
        if not handle.messages:
            return
        if handle.callback and self._callback(handle, peer, text):
            return
        if handle.inline_bot:
            query = fill(handle.inline_query or DEFAULT_INLINE_QUERY, template_fields(peer, text))
            try:
                bot = await handle.account.resolve_username(handle.inline_bot.lstrip("@"))
                await handle.chat.inline(peer, bot, query)
                log.info("message from %s handed to inline bot @%s", peer.id, bot.username)
                return
            except NoInlineResult as exc:
                log.warning("inline bot: %s; %s", exc, "the autoreply goes instead" if handle.autoreply else
                            "nothing is sent")
            except Exception as exc:  # noqa: BLE001 - e.g. the bot's username does not exist
                log.warning("inline bot @%s cannot be used: %s", handle.inline_bot.lstrip("@"), exc)
        if handle.autoreply:
            key = (handle.name, peer.id)
            last = self._autoreplied.get(key)
            if last is not None and time.monotonic() - last < handle.autoreply_interval_s:
                log.info("autoreply to %s skipped: one was sent %.0f s ago", peer.id, time.monotonic() - last)
                return
            self._autoreplied[key] = time.monotonic()
            await handle.chat.text(peer, fill(handle.autoreply, template_fields(peer, text)))

    def _forget_old(self) -> None:
        """What is kept per Telegram user lasts no longer than it is of use: every user who ever wrote or was
        called must not grow the gateway for ever."""
        now = time.monotonic()
        if now < self._forget_at:
            return
        self._forget_at = now + FORGET_EVERY_S
        for key, at in list(self._autoreplied.items()):
            handle = self.accounts.handles.get(key[0])
            if handle is None or now - at >= handle.autoreply_interval_s:
                del self._autoreplied[key]
        for key in [key for key, choice in self._choices.items() if now - choice.at > LINES_CHOICE_TTL_S]:
            del self._choices[key]
        for key in [key for key, at in self._menus_to.items() if now - at > MENU_PRESS_VALID_S]:
            del self._menus_to[key]

    def _choice(self, handle: AccountHandle, peer: Peer, text: str) -> str | None:
        choice = self._choices.get((handle.name, peer.id))
        if choice is None or time.monotonic() - choice.at > LINES_CHOICE_TTL_S or not text.isdigit():
            return None
        index = int(text) - 1
        return choice.lines[index] if 0 <= index < len(choice.lines) else None

    async def _command(self, handle: AccountHandle, peer: Peer, command: str) -> None:
        assert handle.chat is not None
        if command == "/redial":
            answer = self._redial(handle, peer) if handle.redial else "Redial is switched off"
        elif command == "/lines":
            answer = await self._act(handle, peer, "lines")
            if answer == "Choose a line":
                return  # the list is the answer
        else:
            line_name = self._choice(handle, peer, command) or ""
            self._choices.pop((handle.name, peer.id), None)
            answer = self._call_via(handle, peer, line_name)
        if handle.chat_allowed():
            await handle.chat.text(peer, answer)

    def _callback(self, handle: AccountHandle, peer: Peer, text: str) -> bool:
        """Call the sender back through the first line (by priority, with room) that has a number for them."""
        written = number_in(text)
        for line in self.stasis.lines_for(handle):
            if not self.stasis.has_room(line, handle):
                continue
            number = None
            if written and line.callback_take_number:
                try:
                    number = apply_rules(line.rules, written)
                except RuleError as exc:
                    log.warning("callback: %s", exc)
            number = number or line.callback_number
            if number:
                self._spawn(self.stasis.call_back(handle, peer, line, number, "callback"))
                return True
        log.info("callback: no line has a number for the message from %s", peer.id)
        return False
