"""A thin ARI client: REST calls and an events websocket that reconnects by itself."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

AriEvent = dict[str, Any]
EventHandler = Callable[[AriEvent], Awaitable[None] | None]


class AriError(Exception):
    def __init__(self, status: int, message: str, method: str = "", path: str = "") -> None:
        super().__init__(f"ARI {method} {path}: {status} {message}")
        self.status = status
        self.message = message


# What an ARI request raises when Asterisk refuses it, is unreachable or died while answering.
ARI_FAILURES: tuple[type[BaseException], ...] = (AriError, aiohttp.ClientError, OSError, asyncio.TimeoutError)


class AriClient:
    def __init__(self, host: str, port: int, username: str, password: str, app: str,
                 base_url: str | None = None) -> None:
        self.base_url = f"{base_url}/ari" if base_url else f"http://{host}:{port}/ari"
        self.app = app
        self._headers = {"Authorization": aiohttp.encode_basic_auth(username, password)}
        self._session: aiohttp.ClientSession | None = None
        self._handlers: dict[str, list[EventHandler]] = defaultdict(list)
        self.connected = asyncio.Event()
        self.disconnected = asyncio.Event()  # the events websocket is not open (cleared while it is)
        self.disconnected.set()
        self._retry_now = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers, timeout=aiohttp.ClientTimeout(total=10, connect=2)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    # REST ---------------------------------------------------------------------------------------
    async def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> Any:
        clean = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        async with self.session.request(method, self.base_url + path, params=clean, json=json) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise AriError(resp.status, _error_message(text), method, path)
            if not text:
                return None
            return await resp.json(content_type=None)

    async def ping(self) -> bool:
        try:
            await self.request("GET", "/asterisk/ping")
            return True
        except (aiohttp.ClientError, asyncio.TimeoutError, AriError):
            return False

    async def app_registered(self) -> bool:
        """Asterisk knows the application (its `Stasis()` calls reach us)."""
        try:
            await self.request("GET", f"/applications/{self.app}")
            return True
        except (aiohttp.ClientError, asyncio.TimeoutError, AriError):
            return False

    async def put_config(self, config_class: str, kind: str, oid: str, fields: list[tuple[str, str]]) -> Any:
        body = {"fields": [{"attribute": k, "value": v} for k, v in fields]}
        return await self.request("PUT", f"/asterisk/config/dynamic/{config_class}/{kind}/{oid}", json=body)

    async def delete_config(self, config_class: str, kind: str, oid: str) -> None:
        try:
            await self.request("DELETE", f"/asterisk/config/dynamic/{config_class}/{kind}/{oid}")
        except AriError as exc:
            if exc.status != 404:
                raise

    # Events -------------------------------------------------------------------------------------
    def on(self, event_type: str, handler: EventHandler) -> None:
        self._handlers[event_type].append(handler)

    async def run_events(self) -> None:
        """Keep the events websocket open for as long as the task runs, reconnecting on loss."""
        url = "ws" + self.base_url.removeprefix("http") + "/events"  # http -> ws, https -> wss
        params = {"app": self.app, "subscribeAll": "false"}
        delay = 0.2
        while True:
            try:
                async with self.session.ws_connect(url, params=params, heartbeat=15) as ws:
                    delay = 0.2
                    self.disconnected.clear()
                    self.connected.set()
                    log.info("ARI events connected")
                    async for message in ws:
                        if message.type is aiohttp.WSMsgType.TEXT:
                            self._dispatch(message.json())
                        elif message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                            break
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                log.debug("ARI events connection failed: %s", exc)
            if self.connected.is_set():
                log.warning("ARI events connection lost; reconnecting")
            self.connected.clear()
            self.disconnected.set()
            try:
                await asyncio.wait_for(self._retry_now.wait(), delay)
            except asyncio.TimeoutError:
                pass
            self._retry_now.clear()
            delay = min(delay * 2, 2.0)

    async def wait_connected(self, timeout: float) -> None:
        """Wait until the events websocket is open and the application registered; ARI was just seen
        answering, so a reconnection waiting out its back-off is tried at once."""
        async def registered() -> None:
            self._retry_now.set()
            await self.connected.wait()
            while not await self.app_registered():
                await asyncio.sleep(0.02)
        await asyncio.wait_for(registered(), timeout)

    def _dispatch(self, event: AriEvent) -> None:
        for handler in self._handlers.get(event.get("type", ""), ()):
            result = handler(event)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("ARI event handler failed", exc_info=task.exception())


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _error_message(text: str) -> str:
    import json

    try:
        return str(json.loads(text).get("message", text))
    except (ValueError, AttributeError):
        return text.strip()
