"""Finding or provisioning Asterisk >= 20: the system's, or a Debian sid root built with debootstrap."""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MIN_MAJOR = 20
SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
PACKAGES = ("asterisk", "asterisk-modules")


class InstallError(RuntimeError):
    """Asterisk cannot be provided; the message says what to do."""


@dataclass(frozen=True)
class AsteriskInstall:
    """Where Asterisk is: `root` None means the system's own, else a chroot holding it."""

    root: Path | None
    version: str

    def command(self, *args: str) -> list[str]:
        prefix = ["chroot", str(self.root)] if self.root else []
        return [*prefix, "asterisk", *args]

    def host_path(self, inside: str) -> Path:
        """A path as Asterisk sees it, translated to the path tgtrunk uses."""
        return Path(str(self.root) + inside) if self.root else Path(inside)

    def name_this_host(self) -> None:
        """Asterisk looks up the machine's host name for every RTP instance's RTCP address (acl.c
        `ast_find_ourip`), then A.ROOT-SERVERS.NET if that fails. A debootstrapped root has no /etc/hosts, so both
        went to DNS for every call, and one lost reply held Asterisk for the resolver's 5 s: a burst of 20 INVITEs
        reached Stasis in two waves 5 s apart. The root's /etc/hosts names this host (Debian's 127.0.1.1)."""
        if self.root is None:
            return  # the system's own Asterisk: its /etc/hosts is the administrator's
        hosts = self.root / "etc" / "hosts"
        name = socket.gethostname()
        try:
            text = hosts.read_text()
        except FileNotFoundError:
            text = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        if any(name in line.split()[1:] for line in text.splitlines() if not line.lstrip().startswith("#")):
            return
        partial = hosts.with_name(f".hosts.{os.getpid()}")
        try:
            partial.write_text(text.rstrip("\n") + f"\n127.0.1.1\t{name}\n")
            partial.chmod(0o644)
            partial.replace(hosts)
        except OSError as exc:  # a read-only root still runs, with the DNS lookups
            log.warning("could not name this host in %s (%s): Asterisk will ask DNS for it on every call", hosts, exc)

    @property
    def module_dir(self) -> str:
        for candidate in ("/usr/lib/x86_64-linux-gnu/asterisk/modules", "/usr/lib/aarch64-linux-gnu/asterisk/modules",
                          "/usr/lib/asterisk/modules"):
            if self.host_path(candidate).is_dir():
                return candidate
        raise InstallError("Asterisk's module directory was not found; run `tgtrunk asterisk install` again")


def asterisk_version(command: list[str]) -> str | None:
    try:
        out = subprocess.run([*command, "-V"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"Asterisk (\d+)\.(\d+)\.?(\d*)", out)
    if not match or int(match.group(1)) < MIN_MAJOR:
        return None
    return out.split("Asterisk", 1)[1].strip().split("+", 1)[0]


def find_install(root: Path) -> AsteriskInstall | None:
    """The Asterisk to use: a built root wins, then a system one of version >= 20."""
    if (root / "usr/sbin/asterisk").exists():
        if os.geteuid() != 0:
            raise InstallError(f"Asterisk is installed in {root}, but it runs there through chroot, which needs root: "
                               f"run tgtrunk as root, or use a system Asterisk >= {MIN_MAJOR} (as the container "
                               f"image does)")
        version = asterisk_version(["chroot", str(root), "asterisk"])
        if version:
            return AsteriskInstall(root, version)
    if shutil.which("asterisk"):
        version = asterisk_version(["asterisk"])
        if version:
            return AsteriskInstall(None, version)
    return None


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (never a host name written in our code)."""
    for path in SOURCES:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            line = line.strip()
            if line.startswith("URIs:"):
                return line.split()[1]
            if line.startswith("deb ") and "security" not in line:
                return next(p for p in line.split()[1:] if "://" in p)
    raise InstallError("no Debian mirror found in /etc/apt/sources.list{,.d/debian.sources}; configure apt first")


def install(root: Path, out=sys.stdout) -> AsteriskInstall:
    found = find_install(root)
    if found:
        where = f"in {found.root}" if found.root else "on this system"
        print(f"Asterisk {found.version} is already installed {where}.", file=out)
        return found
    if not shutil.which("debootstrap"):
        _step(out, "installing debootstrap with apt-get")
        _run(["apt-get", "install", "-y", "-q", "debootstrap"], out)
    mirror = debian_mirror()
    partial = root.with_name(root.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.parent.mkdir(parents=True, exist_ok=True)
    _step(out, f"building a Debian sid root with Asterisk in {root} (about a minute, ~500 MB)")
    _debootstrap(partial, mirror, out)
    if root.exists():
        shutil.rmtree(root)
    partial.rename(root)
    found = find_install(root)
    if not found:
        raise InstallError(f"the root in {root} was built but its Asterisk does not run; see the output above")
    _step(out, f"Asterisk {found.version} is ready in {root}")
    return found


def _debootstrap(target: Path, mirror: str, out) -> None:
    command = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", "sid", str(target), mirror]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout
    tail = follow_debootstrap(proc.stdout, out)
    if proc.wait() != 0:
        print("\n".join(tail), file=out)
        raise InstallError(f"debootstrap failed (exit {proc.returncode}); the last lines of its output are above")


def follow_debootstrap(lines: Iterable[str], out, clock: Callable[[], float] = time.monotonic) -> list[str]:
    """debootstrap's ~400 lines as one progress line: the phase (of 3) and the packages done of the total (the
    total is what was downloaded, so it is known from the second phase on). On a terminal the line is rewritten in
    place; elsewhere (a log, a pipe) one line per phase. Returns the last 20 lines of the output (for an error)."""
    started = clock()
    tty = hasattr(out, "isatty") and out.isatty()
    counts = {"Retrieving": 0, "Extracting": 0, "Unpacking": 0, "Configuring": 0}
    phase = 0
    tail: list[str] = []

    def text() -> str:
        total = counts["Retrieving"]
        what = {1: f"downloading packages: {total}",
                2: f"extracting the essential packages: {counts['Extracting']} (of {total})",
                3: f"installing packages: {min(counts['Configuring'], total)}/{total} (unpacked {counts['Unpacking']})"}[phase]
        return f"  [{clock() - started:4.0f}s] {phase}/3 {what}"

    for line in lines:
        tail = (tail + [line.rstrip()])[-20:]
        words = line.split()
        # One package each: "I: Retrieving libc6 2.41-1", "I: Extracting libc6...", "I: Unpacking libc6...",
        # "I: Configuring libc6..." (not "I: Retrieving Packages", "I: Unpacking the base system...").
        if words[:1] == ["I:"] and words[1:2] and words[1] in counts \
                and len(words) == (4 if words[1] == "Retrieving" else 3) and words[2] != "Packages":
            now = {"Retrieving": 1, "Extracting": 2}.get(words[1], 3)
            if now != phase and phase and not tty:
                print(text(), file=out, flush=True)
            phase = max(phase, now)
            counts[words[1]] += 1
            if tty:
                print("\r" + text().ljust(72), end="", file=out, flush=True)
        elif line.startswith(("E:", "W: Failure")):
            print(("\n" if tty else "") + f"  {line.rstrip()}", file=out, flush=True)
    if phase:
        print(("\r" + text().ljust(72)) if tty else text(), file=out, flush=True)
    return tail


def _step(out, text: str) -> None:
    print(f"==> {text}", file=out, flush=True)


def _run(command: list[str], out) -> None:
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        print(result.stdout[-2000:], file=out)
        raise InstallError(f"{' '.join(command)} failed (exit {result.returncode})")
