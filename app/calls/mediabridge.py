"""A SIP channel and an externalMedia channel in one mixing bridge; the RTP ends in an RtpRelay, in this process
or (with media workers) in the worker that carries the call's NTgCalls."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from app.ari.bridge import Bridge
from app.ari.channel import Channel
from app.ari.client import ARI_FAILURES, AriClient, AriError
from app.media.relay import RtpRelay
from app.media.rtp import FORMATS
from app.workers import protocol as p
from app.workers.pool import RemoteRtp

log = logging.getLogger(__name__)

# slin at 8 kHz both ways: Asterisk's externalMedia only takes audio back with a static payload type (see
# docs/decisions.md), and NTgCalls resamples to Opus' 48 kHz natively. Every account's CallEngine runs at it.
MEDIA_SAMPLE_RATE = 8_000


class MediaBridge:
    def __init__(self, ari: AriClient, app: str, sample_rate: int,
                 wait_in_stasis: Callable[[str], Awaitable[None]] | None = None, rtp_host: str = "127.0.0.1",
                 remote: RemoteRtp | None = None) -> None:
        """`remote`: the call's RTP ends in a media worker (RTP then never passes through this process);
        else in an `RtpRelay` here (`relay`)."""
        self.ari = ari
        self.wait_in_stasis = wait_in_stasis
        self.app = app
        self.rtp_host = rtp_host  # where Asterisk sends the RTP: loopback, or TGTRUNK_MEDIA_ADDRESS
        self.format, self.payload_type = FORMATS[sample_rate]
        self.remote = remote
        self.relay = RtpRelay(self.payload_type, sample_rate) if remote is None else None
        self.stats: dict[str, int | float] = {}  # the record's media fields, once closed
        self.external: Channel | None = None
        self.bridge: Bridge | None = None
        self.port = 0  # where Asterisk sends the call's RTP

    async def open(self, sip_channel_id: str) -> None:
        if self.relay is not None:
            self.port = await self.relay.open(self.rtp_host)
        else:
            assert self.remote is not None
            self.port = await self.remote.open(self.rtp_host, self.payload_type)
        self.external, variables = await Channel.external_media(
            self.ari, app=self.app, external_host=f"{self.rtp_host}:{self.port}", format=self.format)
        address = variables.get("UNICASTRTP_LOCAL_ADDRESS")
        rtp_port = variables.get("UNICASTRTP_LOCAL_PORT")
        if address and rtp_port:
            if self.relay is not None:
                self.relay.remote = (address, int(rtp_port))
            else:
                assert self.remote is not None
                await self.remote.aim(address, int(rtp_port))
        if self.wait_in_stasis is not None:
            await self.wait_in_stasis(self.external.id)
        self.bridge = await Bridge.create(self.ari, f"tgtrunk-{sip_channel_id}")
        await self.bridge.add(Channel(self.ari, sip_channel_id), self.external)

    async def close(self) -> p.MediaSummary | None:
        """Close the RTP end; a worker's also answers with its counters and how its recording went."""
        summary = None
        if self.relay is not None:
            self.relay.close()
            self.stats = self.relay.stats.to_record()
        elif self.remote is not None:
            summary = await self.remote.close()
            self.stats = summary.stats
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
        return summary
