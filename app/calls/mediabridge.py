"""A SIP channel and an externalMedia channel in one mixing bridge; the RTP ends in an RtpRelay."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from app.ari.bridge import Bridge
from app.ari.channel import Channel
from app.ari.client import ARI_FAILURES, AriClient, AriError
from app.media.relay import RtpRelay
from app.media.rtp import FORMATS

log = logging.getLogger(__name__)

# slin at 8 kHz both ways: Asterisk's externalMedia only takes audio back with a static payload type (see
# docs/decisions.md), and NTgCalls resamples to Opus' 48 kHz natively. Every account's CallEngine runs at it.
MEDIA_SAMPLE_RATE = 8_000


class MediaBridge:
    def __init__(self, ari: AriClient, app: str, sample_rate: int,
                 wait_in_stasis: Callable[[str], Awaitable[None]] | None = None, address: str = "127.0.0.1") -> None:
        self.ari = ari
        self.address = address  # where Asterisk sends the RTP: loopback, or TGTRUNK_MEDIA_ADDRESS
        self.wait_in_stasis = wait_in_stasis
        self.app = app
        self.format, payload_type = FORMATS[sample_rate]
        self.relay = RtpRelay(payload_type, sample_rate)
        self.external: Channel | None = None
        self.bridge: Bridge | None = None

    async def open(self, sip_channel_id: str) -> RtpRelay:
        port = await self.relay.open(self.address)
        self.external, variables = await Channel.external_media(
            self.ari, app=self.app, external_host=f"{self.address}:{port}", format=self.format)
        address = variables.get("UNICASTRTP_LOCAL_ADDRESS")
        rtp_port = variables.get("UNICASTRTP_LOCAL_PORT")
        if address and rtp_port:
            self.relay.remote = (address, int(rtp_port))
        if self.wait_in_stasis is not None:
            await self.wait_in_stasis(self.external.id)
        self.bridge = await Bridge.create(self.ari, f"tgtrunk-{sip_channel_id}")
        await self.bridge.add(Channel(self.ari, sip_channel_id), self.external)
        return self.relay

    async def close(self) -> None:
        self.relay.close()
        for part, remove in (("externalMedia channel", self.external.hangup if self.external else None),
                             ("bridge", self.bridge.destroy if self.bridge else None)):
            if remove is None:
                continue
            try:
                await remove()
            except AriError as exc:
                if exc.status != 404:
                    log.warning("cleaning up the %s: %s", part, exc)
            except ARI_FAILURES:
                pass  # Asterisk is gone: nothing left to clean
