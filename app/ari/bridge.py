"""A typed handle on one ARI bridge."""

from __future__ import annotations

from dataclasses import dataclass

from app.ari.channel import Channel
from app.ari.client import AriClient


@dataclass(frozen=True)
class Bridge:
    ari: AriClient
    id: str

    @classmethod
    async def create(cls, ari: AriClient, name: str, kind: str = "mixing") -> Bridge:
        bridge = await ari.request("POST", "/bridges", params={"type": kind, "name": name})
        return cls(ari, bridge["id"])

    async def add(self, *channels: Channel) -> None:
        await self.ari.request("POST", f"/bridges/{self.id}/addChannel",
                               params={"channel": ",".join(c.id for c in channels)})

    async def remove(self, *channels: Channel) -> None:
        await self.ari.request("POST", f"/bridges/{self.id}/removeChannel",
                               params={"channel": ",".join(c.id for c in channels)})

    async def destroy(self) -> None:
        await self.ari.request("DELETE", f"/bridges/{self.id}")
