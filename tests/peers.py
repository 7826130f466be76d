"""Real SIP peers for tests: baresip driven over its ctrl_tcp interface, and helpers for ports."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def free_port(host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    """A port free for both UDP and TCP on host (Asterisk binds SIP on both)."""
    while True:
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        with socket.socket(socket.AF_INET, other) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        return port


@dataclass
class BaresipPeer:
    """One baresip process bound to `address`; user agents are added at run time with `uanew`."""

    address: str = "127.0.0.2"
    sip_port: int = 0  # chosen at start
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="baresip-")))
    process: asyncio.subprocess.Process | None = None
    events: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None
    _responses: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    _task: asyncio.Task[None] | None = None

    async def start(self, tone_hz: int = 1000) -> "BaresipPeer":
        self.sip_port = sip_port = free_port(self.address, socket.SOCK_DGRAM)
        ctrl_port = free_port()
        (self.directory / "accounts").write_text("")
        (self.directory / "config").write_text(
            "\n".join([
                "poll_method epoll",
                f"sip_listen {self.address}:{sip_port}",
                "module_path /usr/lib/baresip/modules",
                "module g711.so", "module g722.so", "module ausine.so", "module aufile.so", "module sndfile.so",
                f"snd_path {self.directory}",
                "module_app account.so", "module_app menu.so", "module_app ctrl_tcp.so",
                f"ctrl_tcp_listen 127.0.0.1:{ctrl_port}",
                f"audio_source ausine,{tone_hz}",
                "module alsa.so",
                "audio_player alsa,null",
                "audio_alert aufile,/dev/null",
                "ausrc_srate 48000", "ausrc_channels 2",
                f"net_interface {self.address}",
                "",
            ])
        )
        self.process = await asyncio.create_subprocess_exec(
            "baresip", "-4", "-f", str(self.directory),
            stdin=asyncio.subprocess.DEVNULL, stdout=open(self.directory / "out.log", "wb"),
            stderr=asyncio.subprocess.STDOUT,
        )
        for _ in range(200):
            try:
                self._reader, self._writer = await asyncio.open_connection("127.0.0.1", ctrl_port)
                break
            except OSError:
                if self.process.returncode is not None:
                    raise RuntimeError(f"baresip exited: {(self.directory / 'out.log').read_text()}")
                await asyncio.sleep(0.02)
        else:
            raise RuntimeError("baresip's ctrl_tcp did not open")
        self._task = asyncio.create_task(self._read_loop())
        return self

    async def _read_loop(self) -> None:
        assert self._reader
        while True:
            length = await self._reader.readuntil(b":")
            body = await self._reader.readexactly(int(length[:-1]) + 1)
            message = json.loads(body[:-1])
            if message.get("event"):
                if os.environ.get("TGTRUNK_PEER_DEBUG"):
                    print("baresip event:", message)
                await self.events.put(message)
            elif message.get("response"):
                await self._responses.put(message)

    async def command(self, command: str, params: str = "") -> dict[str, Any]:
        assert self._writer
        data = json.dumps({"command": command, "params": params, "token": "t"}).encode()
        self._writer.write(str(len(data)).encode() + b":" + data + b",")
        await self._writer.drain()
        return await asyncio.wait_for(self._responses.get(), 5)

    async def wait_event(self, *types: str, timeout: float = 10.0) -> dict[str, Any]:
        async def first() -> dict[str, Any]:
            while True:
                event = await self.events.get()
                if event.get("type") in types:
                    return event
        return await asyncio.wait_for(first(), timeout)

    async def register(self, user: str, password: str, server: str, regint: int = 60) -> dict[str, Any]:
        """Add a UA that registers; returns the REGISTER_OK or REGISTER_FAIL event."""
        await self.command("uanew", f"<sip:{user}@{server}>;auth_pass={password};regint={regint}")
        return await self.wait_event("REGISTER_OK", "REGISTER_FAIL")

    async def add_ua(self, user: str, server: str, password: str | None = None) -> None:
        """Add a UA that does not register (for ip lines)."""
        auth = f";auth_pass={password}" if password else ""
        await self.command("uanew", f"<sip:{user}@{server}>{auth};regint=0")

    async def dial_until_closed(self, uri: str, timeout: float = 15.0) -> str:
        """Dial and return the final status text of a call that ends (e.g. '480 Temporarily Unavailable')."""
        await self.command("dial", uri)
        event = await self.wait_event("CALL_CLOSED", timeout=timeout)
        return str(event.get("param", ""))

    def dump_wav(self, kind: str) -> Path:
        """sndfile's dump of the last call: "dec" is what the peer heard, "enc" what it sent."""
        dumps = sorted(self.directory.glob(f"dump-*-{kind}.wav"), key=lambda p: p.stat().st_mtime)
        if not dumps:
            raise AssertionError(f"baresip recorded nothing in {self.directory}")
        return dumps[-1]

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        if self._writer:
            self._writer.close()
        if self.process and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()
        if not os.environ.get("TGTRUNK_KEEP_PEER_FILES"):
            shutil.rmtree(self.directory, ignore_errors=True)


def register_guess(source: str, server: tuple[str, int], user: str, password: str, call_id: str, cseq: int) -> int:
    """One password guess the way a scanner makes it: REGISTER, and on 401 the same with digest credentials
    (same Call-ID). Returns the final SIP status code. Blocking; run it in a thread."""
    import hashlib
    import re
    import secrets

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(5)
        local = "%s:%d" % sock.getsockname()
        uri = f"sip:{server[0]}:{server[1]}"

        def send(seq: int, authorization: str | None) -> str:
            lines = [f"REGISTER {uri} SIP/2.0", f"Via: SIP/2.0/UDP {local};branch=z9hG4bK{secrets.token_hex(8)};rport",
                     "Max-Forwards: 70", f"From: <sip:{user}@{server[0]}>;tag={secrets.token_hex(4)}",
                     f"To: <sip:{user}@{server[0]}>", f"Call-ID: {call_id}", f"CSeq: {seq} REGISTER",
                     f"Contact: <sip:{user}@{local}>", "Expires: 60"]
            if authorization:
                lines.append(authorization)
            sock.sendto(("\r\n".join(lines + ["Content-Length: 0", "", ""])).encode(), server)
            return sock.recvfrom(65535)[0].decode(errors="replace")

        answer = send(cseq, None)
        realm, nonce = re.search(r'realm="([^"]+)"', answer), re.search(r'nonce="([^"]+)"', answer)
        if not answer.startswith("SIP/2.0 401") or realm is None or nonce is None:
            return int(answer.split()[1])
        realm, nonce = realm.group(1), nonce.group(1)
        response = md5(f"{md5(f'{user}:{realm}:{password}')}:{nonce}:{md5(f'REGISTER:{uri}')}")
        answer = send(cseq + 1, f'Authorization: Digest username="{user}", realm="{realm}", nonce="{nonce}", '
                                f'uri="{uri}", response="{response}", algorithm=MD5')
        return int(answer.split()[1])
