"""One `tgtrunk serve` per data directory: an exclusive flock held for the life of the process."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class DataDirInUse(Exception):
    def __init__(self, data_dir: Path, pid: int | None) -> None:
        self.pid = pid
        owner = f"pid {pid}" if pid else "another process"
        super().__init__(f"data directory {data_dir} is in use by another `tgtrunk serve` ({owner}); stop it first")


def lock_data_dir(data_dir: Path) -> int:
    """Returns the lock's file descriptor: keep it open while serving (the kernel releases it when the process ends,
    even on a crash, so a stale lock file never blocks a restart)."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(data_dir / "serve.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        raise DataDirInUse(data_dir, int(text) if text.isdigit() else None) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd
