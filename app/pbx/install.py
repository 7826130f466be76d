"""Finding or provisioning Asterisk >= 20: the system's, or a Debian sid root built with debootstrap."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

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
    started = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout
    counts = {"Retrieving": 0, "Validating": 0, "Extracting": 0, "Unpacking": 0, "Configuring": 0}
    last_phase = ""
    tail: list[str] = []
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-20:]
        words = line.split()
        if len(words) >= 2 and words[0] == "I:" and words[1] in counts:
            counts[words[1]] += 1
            phase = words[1]
            if phase != last_phase or counts[phase] % 25 == 0:
                print(f"  [{time.monotonic() - started:5.0f}s] {phase.lower()} packages: {counts[phase]}", file=out, flush=True)
                last_phase = phase
        elif line.startswith(("I: Base system installed", "E:", "W: Failure")):
            print(f"  {line.rstrip()}", file=out, flush=True)
    if proc.wait() != 0:
        print("\n".join(tail), file=out)
        raise InstallError(f"debootstrap failed (exit {proc.returncode}); the last lines of its output are above")


def _step(out, text: str) -> None:
    print(f"==> {text}", file=out, flush=True)


def _run(command: list[str], out) -> None:
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        print(result.stdout[-2000:], file=out)
        raise InstallError(f"{' '.join(command)} failed (exit {result.returncode})")
