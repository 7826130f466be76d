"""One Asterisk process with tgtrunk's own configuration, every directory in its runtime folder."""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import logging
import os
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.pbx.install import AsteriskInstall
from app.settings import PROJECT_ROOT

log = logging.getLogger(__name__)

CONFIG_SOURCES = (PROJECT_ROOT / "asterisk", PROJECT_ROOT / "dialplan")
SUBDIRS = ("etc", "lib", "run", "log", "spool")
_PR_SET_PDEATHSIG = 1


@dataclass
class InstanceConfig:
    sip_bind: str
    ari_port: int
    ari_password: str
    rtp_start: int
    rtp_end: int
    # Behind NAT: the public address for SDP and Contact, and the networks that get the private one.
    external_address: str | None = None
    external_port: int | None = None
    local_nets: tuple[str, ...] = ()
    # Files written after the bundled ones (a test PBX brings its own pjsip.conf, say).
    overrides: Mapping[str, str] = field(default_factory=dict)


def runtime_dir_for(install: AsteriskInstall, data_dir: Path) -> str:
    """Inside a chroot the runtime folder must live in the root; elsewhere it is data_dir/asterisk."""
    if install.root is None:
        return str(data_dir / "asterisk")
    digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:12]
    return f"/srv/tgtrunk/{digest}"


class AsteriskInstance:
    def __init__(self, install: AsteriskInstall, runtime_dir: str, config: InstanceConfig) -> None:
        self.install = install
        self.runtime_dir = runtime_dir  # as Asterisk sees it
        self.host_dir = install.host_path(runtime_dir)
        self.config = config
        self.process: asyncio.subprocess.Process | None = None

    @property
    def config_file(self) -> str:
        return f"{self.runtime_dir}/etc/asterisk.conf"

    @property
    def log_dir(self) -> Path:
        return self.host_dir / "log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process and self.process.returncode is None else None

    def render(self) -> None:
        self.install.name_this_host()
        for sub in SUBDIRS:
            (self.host_dir / sub).mkdir(parents=True, exist_ok=True)
        values = {
            "ETC": f"{self.runtime_dir}/etc",
            "LIB": f"{self.runtime_dir}/lib",
            "RUN": f"{self.runtime_dir}/run",
            "LOG": f"{self.runtime_dir}/log",
            "SPOOL": f"{self.runtime_dir}/spool",
            "MODDIR": self.install.module_dir,
            "DATA": "/usr/share/asterisk",
            "SBIN": "/usr/sbin",
            "ARI_PORT": str(self.config.ari_port),
            "ARI_PASSWORD": self.config.ari_password,
            "SIP_BIND": self.config.sip_bind,
            "RTP_START": str(self.config.rtp_start),
            "RTP_END": str(self.config.rtp_end),
            "TRANSPORT_NAT": self._transport_nat(),
        }
        etc = self.host_dir / "etc"
        for source in CONFIG_SOURCES:
            for template in sorted(source.glob("*.conf")):
                _write_private(etc / template.name, _fill(template.read_text(), values))
        for name, text in self.config.overrides.items():
            _write_private(etc / name, _fill(text, values))

    def _transport_nat(self) -> str:
        lines = []
        if self.config.external_address:
            lines += [f"external_media_address = {self.config.external_address}",
                      f"external_signaling_address = {self.config.external_address}"]
            if self.config.external_port:
                lines.append(f"external_signaling_port = {self.config.external_port}")
        lines += [f"local_net = {net}" for net in self.config.local_nets]
        return "\n".join(lines)

    async def start(self) -> None:
        self.render()
        console = open(self.log_dir / "console.log", "ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.install.command("-C", self.config_file, "-f", "-n", "-q"),
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        finally:
            console.close()
        log.info("Asterisk started (pid %s, SIP %s, ARI 127.0.0.1:%s)", self.process.pid,
                 self.config.sip_bind, self.config.ari_port)

    async def wait_exit(self) -> int:
        assert self.process
        return await self.process.wait()

    async def stop(self, timeout: float = 10.0) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except asyncio.TimeoutError:
            log.warning("Asterisk did not stop within %.0f s; killing it", timeout)
            process.kill()
            await process.wait()

    async def rx(self, command: str, timeout: float = 10.0) -> str:
        """Run an Asterisk CLI command through the instance's control socket."""
        proc = await asyncio.create_subprocess_exec(
            *self.install.command("-C", self.config_file, "-rx", command),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        return out.decode(errors="replace")


def _fill(text: str, values: Mapping[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    return text


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _die_with_parent() -> None:
    # If tgtrunk is killed outright, its Asterisk goes too (the flag survives chroot's exec).
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
