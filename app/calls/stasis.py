"""The Stasis application `tgtrunk`: every call from a line arrives here and Python decides."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from app.ari.client import AriClient, AriError, AriEvent

log = logging.getLogger(__name__)

APP_NAME = "tgtrunk"
REJECT_CONTEXT = "tgtrunk-reject"


@dataclass(frozen=True)
class InboundCall:
    channel_id: str
    line: str
    dialled: str
    caller: str

    @classmethod
    def from_event(cls, event: AriEvent) -> "InboundCall | None":
        args = event.get("args") or []
        if len(args) < 2:
            return None  # a channel tgtrunk created itself
        channel = event["channel"]
        return cls(channel["id"], args[0], args[1], channel.get("caller", {}).get("number", ""))


class StasisApp:
    def __init__(self, ari: AriClient) -> None:
        self.ari = ari
        ari.on("StasisStart", self.on_stasis_start)

    async def on_stasis_start(self, event: AriEvent) -> None:
        call = InboundCall.from_event(event)
        if call is None:
            return
        log.info("call from line %s (caller %s) to %r", call.line, call.caller or "unknown", call.dialled)
        log.warning("call on line %s to %r refused with 480: no Telegram side is connected yet", call.line, call.dialled)
        await self.reject(call.channel_id, 480)

    async def reject(self, channel_id: str, code: int) -> None:
        """Answer the INVITE with an exact SIP code (PJSIPHangup in the reject context)."""
        try:
            await self.ari.request(
                "POST", f"/channels/{channel_id}/continue",
                params={"context": REJECT_CONTEXT, "extension": str(code), "priority": 1},
            )
        except AriError as exc:
            if exc.status != 404:  # the caller may already have hung up
                raise
