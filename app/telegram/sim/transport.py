"""How a pyrogram `Client` reaches the simulated network: `SimClient` swaps only the MTProto session.

Everything above `Session.invoke` (pyrogram's methods, peer storage, update dispatch, raw handlers) is pyrogram's
own code. Queries, results and updates cross as TL bytes (`TLObject.write()` / `TLObject.read()`), exactly what
a real session would put in an encrypted MTProto message, so the same link works in-process or over a socket.
"""

from __future__ import annotations

import asyncio
import logging
import os
from io import BytesIO
from typing import Any, Protocol

from pyrogram import Client, raw
from pyrogram import errors as tg
from pyrogram.raw.core import TLObject

log = logging.getLogger(__name__)

SIM_API_ID = 1
SIM_API_HASH = "00000000000000000000000000000000"


class Link(Protocol):
    """The sim's side of one connected session."""

    async def call(self, query: bytes) -> tuple[bytes | None, tuple[int, str] | None]: ...

    def close(self) -> None: ...


class Server(Protocol):
    def connect(self, auth_key: bytes, push: "PushTarget") -> Link: ...

    def new_auth_key(self, user_id: int | None) -> bytes: ...


class PushTarget(Protocol):
    def push(self, updates: bytes) -> None: ...


def dump(obj: TLObject) -> bytes:
    return obj.write()


def load(data: bytes) -> Any:
    return TLObject.read(BytesIO(data))


class SimSession:
    """Stands in for `pyrogram.session.Session`: invoke, start, stop, restart."""

    def __init__(self, client: Client, server: Server, auth_key: bytes) -> None:
        self.client = client
        self.server = server
        self.auth_key = auth_key
        self.dc_id = 2
        self.server_address = "127.0.0.1"
        self.port = 443
        self.is_media = False
        self._link: Link | None = None
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._link = await self._open_link()
        self._pump = asyncio.ensure_future(self._pump_updates())

    async def stop(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
            self._pump = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def _open_link(self) -> Link:
        """The sim's side of this session (in-process here; over a socket in `remote.RemoteSession`)."""
        return self.server.connect(self.auth_key, self)

    def push(self, updates: bytes) -> None:
        self._queue.put_nowait(updates)

    async def _pump_updates(self) -> None:
        # One at a time, in order, like a real session's receive loop.
        while True:
            data = await self._queue.get()
            try:
                await self.client.handle_updates(load(data))
            except Exception:  # noqa: BLE001
                log.exception("handle_updates failed")

    async def invoke(self, query: TLObject, retries: int = 3, timeout: float = 15.0,
                     sleep_threshold: float = 10.0, retry_delay: float = 1.0) -> Any:
        inner = query.query if isinstance(query, (raw.functions.InvokeWithoutUpdates,)) else query
        name = ".".join(inner.QUALNAME.split(".")[1:])
        for _attempt in range(max(retries, 1)):
            try:
                return await self._send(query, timeout)
            except (tg.FloodWait, tg.FloodPremiumWait) as exc:
                if exc.value is None or exc.value > sleep_threshold >= 0:
                    raise
                await asyncio.sleep(exc.value)
            except (OSError, tg.InternalServerError, tg.ServiceUnavailable) as exc:
                log.info("retrying %s: %s", name, exc or type(exc).__name__)
                await asyncio.sleep(retry_delay)
        raise TimeoutError(f'Failed to invoke "{name}" after {retries} retries')

    async def _send(self, query: TLObject, timeout: float) -> Any:
        if self._link is None:
            raise ConnectionError("simulated session is not started")
        try:
            result, error = await asyncio.wait_for(self._link.call(dump(query)), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError("Request timed out") from None
        if error is not None:
            code, message = error
            inner = query.query if isinstance(query, raw.functions.InvokeWithoutUpdates) else query
            tg.RPCError.raise_it(raw.types.RpcError(error_code=code, error_message=message), type(inner))
        assert result is not None
        return load(result)


class SimClient(Client):
    """A pyrogram `Client` whose MTProto transport is the simulated network (`server`)."""

    def __init__(self, name: str, server: Server, *, session_string: str | None = None,
                 user_id: int | None = None, api_id: int = SIM_API_ID, api_hash: str = SIM_API_HASH,
                 **kwargs: Any) -> None:
        kwargs.setdefault("workers", 1)  # updates of one call must be handled in order
        kwargs.setdefault("no_updates", False)
        super().__init__(name, api_id=api_id, api_hash=api_hash, in_memory=True,
                         session_string=session_string, **kwargs)
        self.sim_server = server
        self._sim_user_id = user_id

    async def load_session(self) -> None:
        await self.storage.open()
        if await self.storage.auth_key() is not None and await self.storage.dc_id() is not None:
            return
        # The auth-key handshake (pyrogram's `Auth`) is transport; the sim hands out the key.
        await self.storage.api_id(self.api_id)
        await self.storage.dc_id(2)
        await self.storage.server_address("127.0.0.1")
        await self.storage.port(443)
        await self.storage.date(0)
        await self.storage.test_mode(False)
        await self.storage.auth_key(await self._new_auth_key())
        await self.storage.user_id(self._sim_user_id)
        await self.storage.is_bot(False if self._sim_user_id else None)

    async def _new_auth_key(self) -> bytes:
        """Stands in for the auth-key handshake (over a socket in `remote.RemoteSimClient`)."""
        return self.sim_server.new_auth_key(self._sim_user_id)

    def _new_session(self, auth_key: bytes) -> SimSession:
        return SimSession(self, self.sim_server, auth_key)

    async def get_session(self, dc_id: int | None = None, is_media: bool = False, is_cdn: bool = False,
                          business_connection_id: str | None = None, export_authorization: bool = True,
                          server_address: str | None = None, port: int | None = None,
                          temporary: bool = False) -> Any:
        if self.session is not None and not temporary and not is_media:
            return self.session
        session = self._new_session(await self.storage.auth_key())
        await session.start()
        return session


def random_key() -> bytes:
    return os.urandom(256)
