"""Keeps the bundled Asterisk running: start, wait for ARI, restart when it dies."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from app.ari.client import AriClient
from app.pbx.instance import AsteriskInstance

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 30.0


class AsteriskDiedError(RuntimeError):
    pass


class AsteriskSupervisor:
    def __init__(self, instance: AsteriskInstance, ari: AriClient,
                 on_ready: Callable[[], Awaitable[None]], on_lost: Callable[[], None] = lambda: None) -> None:
        self.instance = instance
        self.ari = ari
        self.on_ready = on_ready
        self.on_lost = on_lost  # Asterisk died: every channel it held is gone
        self.ready = asyncio.Event()
        self.restarts = 0
        self._stopping = False

    async def check(self) -> None:
        """Nothing to check before the start: the bundled root was checked when it was installed."""

    def state(self) -> dict[str, Any]:
        """For `/healthz` and `tgtrunk status`."""
        return {"mode": "bundled", "pid": self.instance.pid, "restarts": self.restarts, "ready": self.ready.is_set()}

    def describe(self) -> str:
        """Where the calls go, for the start-up line."""
        return f"SIP on {self.instance.config.sip_bind}, ARI on 127.0.0.1:{self.instance.config.ari_port}"

    def restart_notice(self) -> str:
        """The administrators' chat message after a restart."""
        return (f"tgtrunk: the bundled Asterisk stopped and was restarted ({self.restarts} restart(s) since start); "
                "calls running then were cut. If it repeats, see the gateway's log.")

    async def start(self) -> None:
        """Start Asterisk and return once it is ready (raises if it cannot come up).

        Ready means ARI answers and the events websocket has registered the Stasis application: before
        that a call would hit `Stasis()` with no application (the dialplan answers those 503)."""
        await self._start_once()

    async def _start_once(self) -> None:
        self.ready.clear()
        started = time.monotonic()
        await self.instance.start()
        while not await self.ari.ping():
            if self.instance.pid is None:
                raise AsteriskDiedError(
                    f"Asterisk exited during start; see {self.instance.log_dir / 'console.log'}"
                )
            if time.monotonic() - started > READY_TIMEOUT_S:
                await self.instance.stop()
                raise AsteriskDiedError(f"ARI did not answer within {READY_TIMEOUT_S:.0f} s")
            await asyncio.sleep(0.05)
        try:
            await self.ari.wait_connected(max(READY_TIMEOUT_S - (time.monotonic() - started), 1.0))
        except asyncio.TimeoutError:
            await self.instance.stop()
            raise AsteriskDiedError(f"the ARI events websocket did not connect within {READY_TIMEOUT_S:.0f} s") from None
        log.info("ARI ready %.2f s after start", time.monotonic() - started)
        await self.on_ready()
        self.ready.set()

    async def watch(self) -> None:
        """Run forever: when Asterisk dies, start it again and push the state once more."""
        delay = 0.5
        while True:
            code = await self.instance.wait_exit()
            if self._stopping:
                return
            self.ready.clear()
            log.error("Asterisk exited (code %s); restarting it in %.1f s", code, delay)
            self.on_lost()
            await asyncio.sleep(delay)
            try:
                await self._start_once()
                self.restarts += 1
                delay = 0.5
            except AsteriskDiedError as exc:
                log.error("Asterisk restart failed: %s", exc)
                delay = min(delay * 2, 10.0)

    async def stop(self) -> None:
        self._stopping = True
        await self.instance.stop()
