"""`SimServer`: a `SimNetwork` reachable over loopback TCP, for `RemoteSimClient`s in other processes.

Each TCP connection is one pyrogram session (HELLO binds it to an auth key) or a one-off request (NEW_KEY,
COMMAND). The bytes are those `SimClient` passes in-process; see `wire.py` for the framing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from app.telegram.sim.network import SimNetwork, _Conn
from app.telegram.sim.wire import (Frame, Kind, WireError, check_loopback, decode_user_id, encode_error,
                                   read_frame)

log = logging.getLogger(__name__)

CommandHandler = Callable[[dict[str, Any]], Awaitable[Any]]


class SimServer:
    """Listens on host:port (port 0 = any free port, see `.port` after `start()`)."""

    def __init__(self, network: SimNetwork, host: str = "127.0.0.1", port: int = 0, *,
                 commands: CommandHandler | None = None) -> None:
        check_loopback(host)
        self.network = network
        self.host = host
        self.port = port
        self.commands = commands
        self._server: asyncio.Server | None = None
        self._connections: set[SimConnection] = set()

    async def start(self) -> "SimServer":
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            connection.close()
        await asyncio.gather(*(c.wait_closed() for c in list(self._connections)), return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = SimConnection(self, reader, writer)
        self._connections.add(connection)
        try:
            await connection.serve()
        finally:
            self._connections.discard(connection)


class SimConnection:
    """One client connection: requests in, replies and (once HELLO bound a session) pushed updates out."""

    def __init__(self, server: SimServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.session: _Conn | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._done = asyncio.Event()

    async def serve(self) -> None:
        try:
            while True:
                self._dispatch(await read_frame(self.reader))
        except (asyncio.IncompleteReadError, OSError, WireError) as exc:
            if not isinstance(exc, asyncio.IncompleteReadError):
                log.info("client connection dropped: %s", exc)
        finally:
            self.close()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._done.set()

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
        for task in self._tasks:
            task.cancel()
        self.writer.close()

    async def wait_closed(self) -> None:
        await self._done.wait()

    # --- the network's PushTarget ----------------------------------------------------------------

    def push(self, updates: bytes) -> None:
        self._send(Frame(Kind.UPDATE, 0, updates))

    # --- requests --------------------------------------------------------------------------------

    def _dispatch(self, frame: Frame) -> None:
        if frame.kind is Kind.NEW_KEY:
            key = self.server.network.new_auth_key(decode_user_id(frame.payload))
            self._send(Frame(Kind.RESULT, frame.request_id, key))
        elif frame.kind is Kind.HELLO:
            self._hello(frame)
        elif frame.kind is Kind.QUERY:
            self._spawn(self._query(frame))
        elif frame.kind is Kind.COMMAND:
            self._spawn(self._command(frame))
        else:
            self._error(frame.request_id, 400, f"UNEXPECTED_FRAME_{frame.kind.name}")

    def _hello(self, frame: Frame) -> None:
        if self.session is not None:
            self._error(frame.request_id, 400, "SESSION_ALREADY_BOUND")
            return
        self.session = self.server.network.connect(frame.payload, self)
        self._send(Frame(Kind.RESULT, frame.request_id))

    async def _query(self, frame: Frame) -> None:
        if self.session is None:
            self._error(frame.request_id, 401, "AUTH_KEY_UNREGISTERED")
            return
        try:
            result, error = await self.session.call(frame.payload)
        except Exception:  # noqa: BLE001 - a sim bug; the client sees what Telegram would send
            log.exception("the simulated network failed on a query")
            result, error = None, (500, "INTERNAL_SERVER_ERROR")
        if error is not None:
            self._error(frame.request_id, *error)
        else:
            self._send(Frame(Kind.RESULT, frame.request_id, result or b""))

    async def _command(self, frame: Frame) -> None:
        try:
            if self.server.commands is None:
                raise LookupError("this simulator takes no commands")
            reply = await self.server.commands(json.loads(frame.payload))
        except Exception as exc:  # noqa: BLE001 - reported to the caller
            self._error(frame.request_id, 400, f"{type(exc).__name__}: {exc}")
            return
        self._send(Frame(Kind.RESULT, frame.request_id, json.dumps(reply).encode()))

    # --- plumbing --------------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _error(self, request_id: int, code: int, message: str) -> None:
        self._send(Frame(Kind.ERROR, request_id, encode_error(code, message)))

    def _send(self, frame: Frame) -> None:
        if not self.writer.is_closing():
            self.writer.write(frame.encode())
