"""Bots on the simulated network, at the raw TL level: token logins, inline queries and their answers, messages
sent "via" a bot with its inline keyboard, and button presses answered by the bot (the toast).

Mixed into `SimNetwork`; the handlers are found by the TL function name like the network's own.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyrogram import raw

if TYPE_CHECKING:
    from app.telegram.sim.network import SimUser, _Conn

BOT_ANSWER_TIMEOUT_S = 5.0  # Telegram gives a bot about this long before BOT_RESPONSE_TIMEOUT


@dataclass
class SimMessage:
    """A message as its receiver has it (what a test or a simulated person looks at or presses)."""

    id: int
    from_id: int
    text: str
    via_bot_id: int | None = None
    buttons: list[list[tuple[str, bytes]]] = field(default_factory=list)  # rows of (label, callback data)

    def button(self, label: str) -> bytes | None:
        for row in self.buttons:
            for text, data in row:
                if text == label:
                    return data
        return None


def markup_buttons(markup: Any) -> list[list[tuple[str, bytes]]]:
    rows = []
    for row in getattr(markup, "rows", None) or []:
        rows.append([(b.text, getattr(b.type, "data", b"")) for b in row.buttons
                     if isinstance(b.type, raw.types.InlineButtonTypeCallback)])
    return rows


class BotServer:
    """The bot half of `SimNetwork` (which provides users, _push, _view, _input_user, deliver_message)."""

    def _bots_init(self) -> None:
        self._inline_waits: dict[int, asyncio.Future[list[Any]]] = {}
        self._inline_results: dict[tuple[int, int], tuple[int, list[Any]]] = {}  # (asker, query_id) -> bot, results
        self._press_waits: dict[int, asyncio.Future[Any]] = {}
        self._inline_messages: dict[int, tuple[int, int]] = {}  # inline message id -> (receiver, message id)

    def add_bot(self, username: str, token: str, first_name: str = "", inline: bool = True) -> "SimUser":
        """A bot account (BotFather's part): logs in with `token`; `inline`: inline mode is on."""
        bot = self.add_user(f"42{len(self.users):08d}", first_name or username, username=username)  # type: ignore[attr-defined]
        bot.bot_token, bot.bot_inline = token, inline
        return bot

    def _auth_ImportBotAuthorization(self, conn: "_Conn", q: Any) -> Any:
        from app.telegram.sim.network import RpcFail

        bot = next((u for u in self.users.values() if u.bot_token and u.bot_token == q.bot_auth_token), None)  # type: ignore[attr-defined]
        if bot is None:
            raise RpcFail("ACCESS_TOKEN_INVALID")
        self._authorize(conn.auth_key, bot.id)  # type: ignore[attr-defined]
        return raw.types.auth.Authorization(user=self._view(bot.id, bot))  # type: ignore[attr-defined]

    def _bot(self, viewer: int, input_user: Any) -> "SimUser":
        from app.telegram.sim.network import RpcFail

        bot = self._input_user(viewer, input_user)  # type: ignore[attr-defined]
        if not bot.bot_token:
            raise RpcFail("BOT_INVALID")
        if not bot.bot_inline:
            raise RpcFail("BOT_INLINE_DISABLED")
        return bot

    async def _messages_GetInlineBotResults(self, conn: "_Conn", q: Any) -> Any:
        from app.telegram.sim.network import RpcFail

        asker = conn.user_id
        bot = self._bot(asker, q.bot)  # type: ignore[arg-type]
        query_id = int.from_bytes(os.urandom(8), "big") >> 1
        waiter = asyncio.get_running_loop().create_future()
        self._inline_waits[query_id] = waiter
        self._push(bot.id, [raw.types.UpdateBotInlineQuery(  # type: ignore[attr-defined]
            query_id=query_id, user_id=asker, query=q.query, offset=q.offset or "")], [self.users[asker]])  # type: ignore[attr-defined]
        try:
            results = await asyncio.wait_for(waiter, BOT_ANSWER_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise RpcFail("BOT_RESPONSE_TIMEOUT") from None
        finally:
            self._inline_waits.pop(query_id, None)
        self._inline_results[(asker, query_id)] = (bot.id, results)  # type: ignore[index]
        as_sent = [raw.types.BotInlineResult(
            id=r.id, type=r.type, title=r.title, description=r.description,
            send_message=raw.types.BotInlineMessageText(message=r.send_message.message,
                                                        reply_markup=r.send_message.reply_markup))
            for r in results]
        return raw.types.messages.BotResults(query_id=query_id, results=as_sent, cache_time=0,
                                             users=[self._view(asker, bot)])  # type: ignore[attr-defined,arg-type]

    def _messages_SetInlineBotResults(self, conn: "_Conn", q: Any) -> Any:
        from app.telegram.sim.network import RpcFail

        waiter = self._inline_waits.get(q.query_id)
        if waiter is None or waiter.done():
            raise RpcFail("QUERY_ID_INVALID")
        for result in q.results:
            if not isinstance(result, raw.types.InputBotInlineResult) or not isinstance(
                    result.send_message, raw.types.InputBotInlineMessageText):
                raise RpcFail("RESULT_TYPE_INVALID")
        waiter.set_result(list(q.results))
        return True

    def _messages_SendInlineBotResult(self, conn: "_Conn", q: Any) -> Any:
        from app.telegram.sim.network import RpcFail

        sender = self.users[conn.user_id]  # type: ignore[attr-defined,index]
        found = self._inline_results.get((sender.id, q.query_id))
        result = next((r for r in found[1] if r.id == q.id), None) if found else None
        if found is None or result is None:
            raise RpcFail("RESULT_ID_INVALID")
        to = self._input_user(sender.id, raw.types.InputUser(  # type: ignore[attr-defined]
            user_id=q.peer.user_id, access_hash=q.peer.access_hash))
        message = result.send_message
        received = self.deliver_message(sender.id, to.id, message.message, via_bot_id=found[0],  # type: ignore[attr-defined]
                                        reply_markup=message.reply_markup)
        self._inline_messages[received.id] = (to.id, received.id)
        return self._sent(sender, to, message.message, q.random_id)  # type: ignore[attr-defined]

    async def _messages_GetBotCallbackAnswer(self, conn: "_Conn", q: Any) -> Any:
        """A person presses a button of a message in their chat with `peer`."""
        from app.telegram.sim.network import RpcFail

        presser = self.users[conn.user_id]  # type: ignore[attr-defined,index]
        message = next((m for m in presser.received if m.id == q.msg_id), None)
        if message is None or message.via_bot_id is None:
            raise RpcFail("MESSAGE_ID_INVALID")
        if q.data not in {data for row in message.buttons for _label, data in row}:
            raise RpcFail("DATA_INVALID")
        bot = self.users[message.via_bot_id]  # type: ignore[attr-defined]
        query_id = int.from_bytes(os.urandom(8), "big") >> 1
        waiter = asyncio.get_running_loop().create_future()
        self._press_waits[query_id] = waiter
        msg_id = raw.types.InputBotInlineMessageID(dc_id=2, id=message.id, access_hash=presser.id)
        self._push(bot.id, [raw.types.UpdateInlineBotCallbackQuery(  # type: ignore[attr-defined]
            query_id=query_id, user_id=presser.id, msg_id=msg_id, chat_instance=presser.id, data=q.data)],
            [presser])
        try:
            answer = await asyncio.wait_for(waiter, BOT_ANSWER_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise RpcFail("BOT_RESPONSE_TIMEOUT") from None
        finally:
            self._press_waits.pop(query_id, None)
        return raw.types.messages.BotCallbackAnswer(cache_time=answer.cache_time, alert=answer.alert,
                                                    message=answer.message)

    def _messages_SetBotCallbackAnswer(self, conn: "_Conn", q: Any) -> Any:
        from app.telegram.sim.network import RpcFail

        waiter = self._press_waits.get(q.query_id)
        if waiter is None or waiter.done():
            raise RpcFail("QUERY_ID_INVALID")
        waiter.set_result(q)
        return True
