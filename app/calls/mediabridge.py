"""A SIP channel and an externalMedia channel in one mixing bridge; the RTP ends in an RtpRelay."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from app.ari.client import ARI_FAILURES, AriClient, AriError
from app.media.relay import RtpRelay
from app.media.rtp import FORMATS

log = logging.getLogger(__name__)

# slin at 8 kHz both ways: Asterisk's externalMedia only takes audio back with a static payload type (see
# docs/decisions.md), and NTgCalls resamples to Opus' 48 kHz natively. Every account's CallEngine runs at it.
MEDIA_SAMPLE_RATE = 8_000


class MediaBridge:
    def __init__(self, ari: AriClient, app: str, sample_rate: int,
                 wait_in_stasis: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.ari = ari
        self.wait_in_stasis = wait_in_stasis
        self.app = app
        self.format, payload_type = FORMATS[sample_rate]
        self.relay = RtpRelay(payload_type, sample_rate)
        self.external_id: str | None = None
        self.bridge_id: str | None = None

    async def open(self, sip_channel_id: str) -> RtpRelay:
        port = await self.relay.open("127.0.0.1")
        external = await self.ari.request("POST", "/channels/externalMedia", params={
            "app": self.app, "external_host": f"127.0.0.1:{port}", "format": self.format,
            "encapsulation": "rtp", "transport": "udp", "direction": "both",
        })
        self.external_id = external["id"]
        variables = external.get("channelvars") or {}
        address = variables.get("UNICASTRTP_LOCAL_ADDRESS")
        rtp_port = variables.get("UNICASTRTP_LOCAL_PORT")
        if address and rtp_port:
            self.relay.remote = (address, int(rtp_port))
        if self.wait_in_stasis is not None:
            await self.wait_in_stasis(self.external_id)
        bridge = await self.ari.request("POST", "/bridges", params={"type": "mixing", "name": f"tgtrunk-{sip_channel_id}"})
        self.bridge_id = bridge["id"]
        await self.ari.request("POST", f"/bridges/{self.bridge_id}/addChannel",
                               params={"channel": f"{sip_channel_id},{self.external_id}"})
        return self.relay

    async def close(self) -> None:
        self.relay.close()
        for path in (f"/channels/{self.external_id}" if self.external_id else None,
                     f"/bridges/{self.bridge_id}" if self.bridge_id else None):
            if path is None:
                continue
            try:
                await self.ari.request("DELETE", path)
            except AriError as exc:
                if exc.status != 404:
                    log.warning("cleaning up %s: %s", path, exc)
            except ARI_FAILURES:
                pass  # Asterisk is gone: nothing left to clean
