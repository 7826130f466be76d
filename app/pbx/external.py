"""The user's own Asterisk (TGTRUNK_ARI_URL): tgtrunk starts and configures nothing there, it only checks that
the Asterisk can carry its calls, registers its Stasis application over ARI and follows that Asterisk's restarts.

It stands where `AsteriskSupervisor` stands for the bundled Asterisk: `ready`, `restarts`, `start()`, `watch()`,
`stop()`, with the same `on_ready` / `on_lost` callbacks."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from app.ari.client import AriClient, AriError
from app.settings import ExternalAri

log = logging.getLogger(__name__)

MIN_VERSION = 20
# What the calls use: ARI itself, Stasis, channels and bridges over ARI, and externalMedia (chan_rtp).
REQUIRED_MODULES = {
    "res_ari.so": "ARI",
    "res_ari_channels.so": "ARI channels",
    "res_ari_bridges.so": "ARI bridges",
    "res_stasis.so": "Stasis",
    "app_stasis.so": "the Stasis() dialplan application",
    "chan_rtp.so": "externalMedia (the call audio to tgtrunk)",
}
REGISTER_TIMEOUT_S = 10.0
RECHECK_S = 2.0


class ExternalAsteriskError(RuntimeError):
    """The Asterisk at TGTRUNK_ARI_URL cannot be used; the message is the one line the operator reads."""


class ExternalAsterisk:
    def __init__(self, ari: AriClient, config: ExternalAri, on_ready: Callable[[], Awaitable[None]],
                 on_lost: Callable[[], None] = lambda: None) -> None:
        self.ari = ari
        self.config = config
        self.on_ready = on_ready
        self.on_lost = on_lost  # the events websocket closed: that Asterisk stopped, its channels are gone
        self.ready = asyncio.Event()  # the Stasis application is registered there
        self.restarts = 0
        self.version: str | None = None
        self._stopping = False

    @property
    def where(self) -> str:
        return self.config.url

    def state(self) -> dict[str, Any]:
        """For `/healthz` and `tgtrunk status`."""
        ready = self.ready.is_set()
        return {"mode": "external", "url": self.where, "version": self.version, "app": self.config.app,
                "app_registered": ready, "ready": ready, "restarts": self.restarts}

    def describe(self) -> str:
        """Where the calls go, for the start-up line."""
        return f"Stasis application {self.config.app} on the Asterisk {self.version} at {self.where}"

    def restart_notice(self) -> str:
        """The administrators' chat message after that Asterisk came back."""
        return (f"tgtrunk: the Asterisk at {self.where} was lost and is back; its Stasis application is registered "
                "again; calls running then were cut. If it repeats, see that Asterisk's log and the gateway's.")

    async def check(self) -> str:
        """Reach ARI, check the version (>= 20) and the modules the calls need; returns the version."""
        try:
            info = await self.ari.request("GET", "/asterisk/info")
            modules = await self.ari.request("GET", "/asterisk/modules")
        except AriError as exc:
            if exc.status == 401:
                raise ExternalAsteriskError(
                    f"the Asterisk at {self.where} refused ARI user {self.config.user!r} (401): check "
                    "TGTRUNK_ARI_USER and TGTRUNK_ARI_PASSWORD against its ari.conf") from None
            if exc.status == 404:
                raise ExternalAsteriskError(
                    f"{self.where} answers HTTP but has no ARI there (404): check TGTRUNK_ARI_URL (and http.conf's "
                    "prefix) and that res_ari.so is loaded") from None
            raise ExternalAsteriskError(f"the Asterisk at {self.where} answered ARI with {exc.status} "
                                        f"{exc.message}") from None
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise ExternalAsteriskError(
                f"cannot reach ARI at {self.where} ({describe(exc)}): check TGTRUNK_ARI_URL and that http.conf "
                "there has enabled = yes on that address and port") from None
        version = str((info or {}).get("system", {}).get("version", ""))
        major = re.search(r"(\d+)\.", version)
        if major is None or int(major.group(1)) < MIN_VERSION:
            raise ExternalAsteriskError(
                f"the Asterisk at {self.where} is version {version or 'unknown'}; tgtrunk needs Asterisk "
                f"{MIN_VERSION} or newer (externalMedia and ARI as tgtrunk uses them)")
        running = {module.get("name") for module in modules or [] if module.get("status") == "Running"}
        missing = [f"{name} ({what})" for name, what in REQUIRED_MODULES.items() if name not in running]
        if missing:
            raise ExternalAsteriskError(
                f"the Asterisk at {self.where} lacks module(s) {', '.join(missing)}: load them "
                "(modules.conf, or `module load NAME` on its CLI)")
        self.version = version
        return version

    async def start(self) -> None:
        """Checked (unless `check()` already passed: the gateway runs it before anything else starts), and the
        Stasis application registered there (raises ExternalAsteriskError otherwise)."""
        if self.version is None:
            await self.check()
        try:
            await self.ari.wait_connected(REGISTER_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise ExternalAsteriskError(
                f"the ARI events websocket at {self.where} did not open within {REGISTER_TIMEOUT_S:.0f} s "
                f"(application {self.config.app} not registered)") from None
        log.info("Stasis application %s registered on the Asterisk %s at %s", self.config.app, self.version,
                 self.where)
        await self.on_ready()
        self.ready.set()

    async def watch(self) -> None:
        """Run forever: when the events websocket closes (that Asterisk restarted or is unreachable), end the live
        calls, and once it answers again check it and register the application again."""
        while True:
            await self.ari.disconnected.wait()
            if self._stopping:
                return
            self.ready.clear()
            log.error("lost the Asterisk at %s (ARI events closed); ending live calls and reconnecting", self.where)
            self.on_lost()
            await self._until_back()
            self.restarts += 1
            log.info("Stasis application %s registered again on the Asterisk %s at %s", self.config.app,
                     self.version, self.where)
            await self.on_ready()
            self.ready.set()

    async def _until_back(self) -> None:
        said = None
        while True:
            await self.ari.connected.wait()
            try:
                await self.check()
                await self.ari.wait_connected(REGISTER_TIMEOUT_S)
                return
            except (ExternalAsteriskError, asyncio.TimeoutError) as exc:
                if str(exc) != said:
                    said = str(exc)
                    log.error("the Asterisk at %s is back but cannot be used yet: %s", self.where,
                              said or "application not registered")
            await asyncio.sleep(RECHECK_S)

    async def stop(self) -> None:
        self._stopping = True


def describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "no answer"
    return str(exc) or type(exc).__name__
