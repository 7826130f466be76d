"""The client end of one TCP connection to a `SimServer`: numbered requests, their replies, pushed updates."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from app.telegram.sim.wire import Frame, Kind, WireError, check_loopback, decode_error, read_frame

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0


class RemoteError(Exception):
    """The sim answered a request with ERROR (an RPC error for queries, a failure for commands)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message


@dataclass(eq=False)
class Channel:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    on_update: Callable[[bytes], None] = lambda _data: None
    _pending: dict[int, asyncio.Future[Frame]] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _reader_task: asyncio.Task[None] | None = None
    closed: bool = False

    @classmethod
    async def open(cls, host: str, port: int, on_update: Callable[[bytes], None] | None = None) -> "Channel":
        check_loopback(host)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT_S)
        channel = cls(reader, writer, on_update or (lambda _data: None))
        channel._reader_task = asyncio.ensure_future(channel._read_loop())
        return channel

    async def request(self, kind: Kind, payload: bytes) -> bytes:
        """Send one request and wait for its reply: RESULT's payload, or `RemoteError` for ERROR."""
        if self.closed:
            raise ConnectionError("the simulator connection is closed")
        request_id = next(self._ids)
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            self.writer.write(Frame(kind, request_id, payload).encode())
            reply = await future
        finally:
            self._pending.pop(request_id, None)
        if reply.kind is Kind.ERROR:
            raise RemoteError(*decode_error(reply.payload))
        return reply.payload

    def close(self) -> None:
        self.closed = True
        self.writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
        self._fail_pending()

    async def wait_closed(self) -> None:
        if self._reader_task is not None:
            await asyncio.gather(self._reader_task, return_exceptions=True)
        try:
            await self.writer.wait_closed()
        except OSError:
            pass

    async def _read_loop(self) -> None:
        try:
            while True:
                self._dispatch(await read_frame(self.reader))
        except (asyncio.IncompleteReadError, OSError, WireError) as exc:
            if not self.closed:
                log.info("simulator connection lost: %s", exc or type(exc).__name__)
        finally:
            self.closed = True
            self._fail_pending()

    def _dispatch(self, frame: Frame) -> None:
        if frame.kind is Kind.UPDATE:
            self.on_update(frame.payload)
            return
        future = self._pending.get(frame.request_id)
        if future is not None and not future.done():
            future.set_result(frame)

    def _fail_pending(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("the simulator connection closed"))
        self._pending.clear()
