"""Fixtures: the bundled Asterisk install, a running gateway (`tgtrunk serve`), real SIP peers."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app.pbx.install import AsteriskInstall, find_install
from app.pbx.instance import runtime_dir_for
from tests.peers import BaresipPeer, free_port

ASTERISK_ROOT = Path(os.environ.get("TGTRUNK_ASTERISK_ROOT", "/var/lib/tgtrunk/asterisk-root"))


@pytest.fixture(scope="session")
def asterisk_install() -> AsteriskInstall:
    install = find_install(ASTERISK_ROOT)
    if install is None:
        subprocess.run([sys.executable, "-m", "app", "asterisk", "install"], check=True,
                       env={**os.environ, "TGTRUNK_ASTERISK_ROOT": str(ASTERISK_ROOT)})
        install = find_install(ASTERISK_ROOT)
    assert install is not None, "Asterisk could not be installed"
    return install


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@dataclass
class GatewayProcess:
    """`tgtrunk serve` in a subprocess with its own data directory and ports."""

    data_dir: Path
    env: dict[str, str]
    sip_port: int
    ari_port: int
    process: asyncio.subprocess.Process | None = None
    lines: list[str] = field(default_factory=list)
    _new_line: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None

    @property
    def sip_server(self) -> str:
        return f"127.0.0.1:{self.sip_port}"

    async def cli(self, *args: str) -> CliResult:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app", *args, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        return CliResult(proc.returncode or 0, out.decode(), err.decode())

    async def start(self, *serve_args: str) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app", "serve", *serve_args, env=self.env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read())
        await self.wait_log(r"tgtrunk is running", timeout=30)

    async def _read(self) -> None:
        assert self.process and self.process.stderr
        async for raw in self.process.stderr:
            self.lines.append(raw.decode(errors="replace").rstrip())
            self._new_line.set()

    async def wait_log(self, pattern: str, timeout: float = 10.0, start: int = 0) -> str:
        """Wait for a log line matching pattern (searching from line index `start`)."""
        regex = re.compile(pattern)
        index = start

        async def scan() -> str:
            nonlocal index
            while True:
                while index < len(self.lines):
                    line = self.lines[index]
                    index += 1
                    if regex.search(line):
                        return line
                if self.process and self.process.returncode is not None:
                    raise AssertionError("gateway exited:\n" + "\n".join(self.lines[-30:]))
                self._new_line.clear()
                await self._new_line.wait()
        try:
            return await asyncio.wait_for(scan(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no log line matching {pattern!r}; last lines:\n" + "\n".join(self.lines[-30:])) from None

    def asterisk_pid(self) -> int:
        assert self.process
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        for pid in children:
            if "asterisk" in Path(f"/proc/{pid}/cmdline").read_text():
                return int(pid)
        raise AssertionError("the gateway has no Asterisk child")

    async def stop(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._reader:
            await asyncio.gather(self._reader, return_exceptions=True)
        remove_runtime_dir(self.data_dir)


def remove_runtime_dir(data_dir: Path) -> None:
    """The bundled Asterisk's runtime folder for this data dir, inside the shared root: tests leave none behind."""
    if (ASTERISK_ROOT / "usr/sbin/asterisk").exists():  # the bundled root (a system Asterisk uses data_dir)
        install = AsteriskInstall(ASTERISK_ROOT, "")
        shutil.rmtree(install.host_path(runtime_dir_for(install, data_dir)), ignore_errors=True)


def gateway_env(data_dir: Path, sip_port: int, ari_port: int, **extra: str) -> dict[str, str]:
    rtp = free_port(kind=socket.SOCK_DGRAM)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TGTRUNK_")}
    env.update(
        TGTRUNK_DATA_DIR=str(data_dir),
        TGTRUNK_ASTERISK_ROOT=str(ASTERISK_ROOT),
        TGTRUNK_SIP_BIND=f"127.0.0.1:{sip_port}",
        TGTRUNK_ARI_PORT=str(ari_port),
        TGTRUNK_RTP_PORTS=f"{40000 + rtp % 20000}-{40000 + rtp % 20000 + 200}",
        TGTRUNK_HTTP_BIND=f"127.0.0.1:{free_port()}",
        **extra,
    )
    return env


@pytest.fixture
async def make_gateway(asterisk_install: AsteriskInstall, tmp_path: Path):
    started: list[GatewayProcess] = []

    async def make(start: bool = True, **extra: str) -> GatewayProcess:
        sip_port, ari_port = free_port(), free_port()
        data_dir = Path(tempfile.mkdtemp(prefix="gw-", dir=tmp_path))
        gateway = GatewayProcess(data_dir, gateway_env(data_dir, sip_port, ari_port, **extra), sip_port, ari_port)
        started.append(gateway)
        if start:
            await gateway.start()
        return gateway

    yield make
    for gateway in started:
        await gateway.stop()


@pytest.fixture
async def gateway(make_gateway) -> GatewayProcess:
    return await make_gateway()


@pytest.fixture
async def baresip_factory() -> AsyncIterator:
    peers: list[BaresipPeer] = []

    async def make(address: str = "127.0.0.2", tone_hz: int = 1000) -> BaresipPeer:
        peer = BaresipPeer(address=address)
        peers.append(peer)
        return await peer.start(tone_hz)

    yield make
    for peer in peers:
        await peer.stop()


@dataclass
class SmallDisk:
    """A 1 MB tmpfs of its own: `fill()` makes it full (SQLite then fails every write), `free()` recovers it.

    The gateway runs as root, so permissions cannot make its database unwritable; a full disk can. (A read-only
    remount is refused while the database file is open for writing.)"""

    path: Path

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.path / 'tgtrunk.db'}"

    def fill(self) -> None:
        with open(self.path / "filler", "wb", buffering=0) as filler:
            try:
                while True:
                    filler.write(b"\0" * 4096)  # page by page: not a byte is left free
            except OSError:
                pass

    def free(self) -> None:
        (self.path / "filler").unlink(missing_ok=True)


@pytest.fixture
def small_disk(tmp_path: Path):
    path = tmp_path / "small-disk"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(path)], check=True)
    try:
        yield SmallDisk(path)
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=False)
