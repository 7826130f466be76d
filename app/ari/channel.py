"""A typed handle on one ARI channel: the calls' only way to ask Asterisk about a channel or act on it."""

from __future__ import annotations

from dataclasses import dataclass

from app.ari.client import AriClient, AriError

# The bundled dialplan's context that ends a ringing INVITE with the SIP code dialled into it (PJSIPHangup):
# dialplan/extensions.conf.
REJECT_CONTEXT = "tgtrunk-reject"


@dataclass(frozen=True)
class Channel:
    ari: AriClient
    id: str

    @classmethod
    async def originate(cls, ari: AriClient, channel_id: str, *, endpoint: str, app: str, app_args: str,
                        caller_id: str, timeout_s: int, variables: dict[str, str] | None = None) -> Channel:
        await ari.request("POST", "/channels", params={
            "endpoint": endpoint, "app": app, "appArgs": app_args, "channelId": channel_id,
            "callerId": caller_id, "timeout": timeout_s,
        }, json={"variables": variables} if variables else None)
        return cls(ari, channel_id)

    @classmethod
    async def external_media(cls, ari: AriClient, *, app: str, external_host: str,
                             format: str) -> tuple[Channel, dict[str, str]]:
        """An externalMedia channel sending RTP both ways to `external_host`; returns it and its channel
        variables (UNICASTRTP_LOCAL_ADDRESS/PORT: where Asterisk takes the RTP back)."""
        external = await ari.request("POST", "/channels/externalMedia", params={
            "app": app, "external_host": external_host, "format": format,
            "encapsulation": "rtp", "transport": "udp", "direction": "both",
        })
        return cls(ari, external["id"]), external.get("channelvars") or {}

    @classmethod
    async def all(cls, ari: AriClient) -> list[Channel]:
        return [cls(ari, channel["id"]) for channel in await ari.request("GET", "/channels") or []]

    async def exists(self) -> bool:
        """Whether Asterisk still has the channel."""
        try:
            await self.ari.request("GET", f"/channels/{self.id}")
        except AriError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def ring(self) -> None:
        await self.ari.request("POST", f"/channels/{self.id}/ring")

    async def answer(self) -> None:
        await self.ari.request("POST", f"/channels/{self.id}/answer")

    async def hangup(self, reason: str = "normal") -> None:
        await self.ari.request("DELETE", f"/channels/{self.id}", params={"reason": reason})

    async def reject(self, code: int, cause: int, context: str | None = REJECT_CONTEXT) -> None:
        """Answer a ringing INVITE with an exact SIP code: through the bundled dialplan's `context`, or (None, the
        user's own Asterisk) by leaving the code in TGTRUNK_SIP_CODE and the Q.850 cause in TGTRUNK_CAUSE and
        continuing the user's dialplan after its Stasis() (README: "Use your own Asterisk")."""
        if context is not None:
            await self.ari.request("POST", f"/channels/{self.id}/continue",
                                   params={"context": context, "extension": str(code), "priority": 1})
            return
        await self.set_variable("TGTRUNK_SIP_CODE", str(code))
        await self.set_variable("TGTRUNK_CAUSE", str(cause))
        await self.ari.request("POST", f"/channels/{self.id}/continue")

    async def set_variable(self, name: str, value: str) -> None:
        await self.ari.request("POST", f"/channels/{self.id}/variable", params={"variable": name, "value": value})

    async def dtmf(self, digits: str, *, between_ms: int = 100, duration_ms: int = 120) -> None:
        await self.ari.request("POST", f"/channels/{self.id}/dtmf",
                               params={"dtmf": digits, "between": between_ms, "duration": duration_ms})
