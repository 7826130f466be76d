"""Everything the gateway says in a chat goes through one `ChatSender` per account.

It spaces the account's messages (`min_interval_s`) and honours Telegram's flood limits: after FLOOD_WAIT_N it
waits N seconds (holding back the account's other messages too), then sends once more; a wait longer than
`max_wait_s`, a second FLOOD_WAIT or PEER_FLOOD drops the message with a log line. Nothing is retried in a loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pyrogram import errors as tg
from pyrogram import raw

from app.telegram.account import TelegramAccount
from app.telegram.peer import Peer

log = logging.getLogger(__name__)

MIN_INTERVAL_S = 0.1
MAX_WAIT_S = 60.0


class NoInlineResult(Exception):
    """The inline bot answered nothing usable (or failed); the reason is the message."""


class ChatSender:
    def __init__(self, account: TelegramAccount, min_interval_s: float = MIN_INTERVAL_S,
                 max_wait_s: float = MAX_WAIT_S) -> None:
        self.account = account
        self.min_interval_s = min_interval_s
        self.max_wait_s = max_wait_s
        self.sent = 0  # messages that reached Telegram (for status and tests)
        self._lock = asyncio.Lock()
        self._next_at = 0.0

    async def text(self, peer: Peer, text: str) -> bool:
        def send() -> Awaitable[Any]:
            return self.account.invoke(raw.functions.messages.SendMessage(
                peer=peer.input_peer(), message=text, random_id=_random_id()))
        return await self._send(f"message to {peer.id}", send)

    async def inline(self, peer: Peer, bot: Peer, query: str) -> bool:
        """Send the first inline result of `bot` for `query` into the chat with `peer`.

        Raises NoInlineResult when the bot answers nothing or fails; False when flood limits dropped it."""
        try:
            results = await self.account.invoke(raw.functions.messages.GetInlineBotResults(
                bot=bot.input_user(), peer=peer.input_peer(), query=query, offset=""))
        except tg.RPCError as exc:
            raise NoInlineResult(f"@{bot.username} failed: {exc.ID or exc}") from None
        except (TimeoutError, OSError) as exc:
            raise NoInlineResult(f"@{bot.username} did not answer: {exc}") from None
        if not results.results:
            raise NoInlineResult(f"@{bot.username} answered no result")

        def send() -> Awaitable[Any]:
            return self.account.invoke(raw.functions.messages.SendInlineBotResult(
                peer=peer.input_peer(), random_id=_random_id(), query_id=results.query_id,
                id=results.results[0].id))
        return await self._send(f"@{bot.username}'s result to {peer.id}", send)

    async def _send(self, what: str, send: Callable[[], Awaitable[Any]]) -> bool:
        async with self._lock:
            delay = self._next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                return await self._send_honouring_floods(what, send)
            finally:
                self._next_at = time.monotonic() + self.min_interval_s

    async def _send_honouring_floods(self, what: str, send: Callable[[], Awaitable[Any]]) -> bool:
        for attempt in (1, 2):
            try:
                await send()
            except tg.FloodWait as exc:
                wait = float(exc.value or 0)
                if attempt == 2 or wait > self.max_wait_s:
                    log.warning("chat: %s dropped: FLOOD_WAIT of %d s from Telegram%s", what, wait,
                                " again" if attempt == 2 else f" (longer than {self.max_wait_s:.0f} s)")
                    return False
                log.warning("chat: FLOOD_WAIT of %d s from Telegram; %s waits, then is sent", wait, what)
                await asyncio.sleep(wait)
                continue
            except tg.PeerFlood:
                log.warning("chat: %s dropped: PEER_FLOOD (Telegram limits this account's messages to strangers)",
                            what)
                return False
            except Exception as exc:  # noqa: BLE001 - a chat message is best effort
                log.warning("chat: %s not sent: %s", what, exc)
                return False
            self.sent += 1
            return True
        return False


def _random_id() -> int:
    return int.from_bytes(os.urandom(8), "big") >> 1
