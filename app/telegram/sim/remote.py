"""`RemoteSimClient`: a `SimClient` whose simulated network runs in another process (`python -m app.telegram.sim`).

Only the transport differs: the auth-key step, queries, results, RPC errors and pushed updates are the same TL
bytes `SimClient` passes in-process, framed on a loopback TCP connection (`wire.py`). pyrogram, `TelegramAccount`
and `PrivateCall` run unchanged on top. Each session is one TCP connection; if the simulator goes away, pending
and later queries fail with `ConnectionError` (no reconnect).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.telegram.sim.channel import Channel, RemoteError
from app.telegram.sim.stats import PhoneStats
from app.telegram.sim.transport import PushTarget, SimClient, SimSession
from app.telegram.sim.wire import Kind, encode_user_id


@dataclass(frozen=True)
class RemoteServer:
    """Where a simulator process listens; hands out auth keys, sessions and commands."""

    host: str
    port: int

    async def new_auth_key(self, user_id: int | None) -> bytes:
        channel = await Channel.open(self.host, self.port)
        try:
            return await channel.request(Kind.NEW_KEY, encode_user_id(user_id))
        finally:
            channel.close()
            await channel.wait_closed()

    async def connect(self, auth_key: bytes, push: PushTarget) -> "RemoteLink":
        channel = await Channel.open(self.host, self.port, on_update=push.push)
        try:
            await channel.request(Kind.HELLO, auth_key)
        except BaseException:
            channel.close()
            raise
        return RemoteLink(channel)


@dataclass(eq=False)
class RemoteLink:
    """The sim's side of one session, across the socket (the `transport.Link` protocol)."""

    channel: Channel

    async def call(self, query: bytes) -> tuple[bytes | None, tuple[int, str] | None]:
        try:
            return await self.channel.request(Kind.QUERY, query), None
        except RemoteError as exc:
            return None, (exc.code, exc.message)

    def close(self) -> None:
        self.channel.close()

    async def wait_closed(self) -> None:
        await self.channel.wait_closed()


class RemoteSession(SimSession):
    server: RemoteServer  # type: ignore[assignment]

    async def _open_link(self) -> RemoteLink:
        return await self.server.connect(self.auth_key, self)

    async def stop(self) -> None:
        link = self._link
        await super().stop()
        if isinstance(link, RemoteLink):
            await link.wait_closed()


class RemoteSimClient(SimClient):
    """Behaves exactly like `SimClient`, but the simulated network is a `SimServer` at host:port."""

    def __init__(self, name: str, host: str, port: int, *, session_string: str | None = None,
                 user_id: int | None = None, **kwargs: Any) -> None:
        super().__init__(name, RemoteServer(host, port), session_string=session_string,  # type: ignore[arg-type]
                         user_id=user_id, **kwargs)

    async def _new_auth_key(self) -> bytes:
        return await self.sim_server.new_auth_key(self._sim_user_id)  # type: ignore[misc]

    def _new_session(self, auth_key: bytes) -> SimSession:
        return RemoteSession(self, self.sim_server, auth_key)


@dataclass(frozen=True)
class SimControl:
    """The command channel of a simulator process: stats, who is the gateway, make a person call."""

    host: str
    port: int

    async def command(self, cmd: str, **args: Any) -> Any:
        channel = await Channel.open(self.host, self.port)
        try:
            reply = await channel.request(Kind.COMMAND, json.dumps({"cmd": cmd, **args}).encode())
        finally:
            channel.close()
            await channel.wait_closed()
        return json.loads(reply)

    async def stats(self) -> list[PhoneStats]:
        """Per simulated person: calls seen and answered, frames and seconds of audio heard."""
        return [PhoneStats.from_dict(row) for row in await self.command("stats")]

    async def info(self) -> dict[str, Any]:
        return await self.command("info")

    async def call_gateway(self, user: str) -> None:
        """A simulated person (`@username` or +phone) calls the gateway account."""
        await self.command("call", user=user)

    async def last_code(self, phone: str) -> str:
        return await self.command("last_code", phone=phone)
