"""Copies of the SQLite database taken with SQLite's online backup API: consistent while the gateway writes (the
copy includes what is still in the WAL), a single self-contained file, 0600 like the database itself."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from datetime import datetime
from pathlib import Path


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why."""


def sqlite_path(url: str) -> Path | None:
    """The database file of a `sqlite:///` URL, None for another database."""
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def copy_database(source: Path, target: Path) -> None:
    """Write a consistent copy of `source` to `target` (atomically: a failure leaves no partial file)."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")  # 0600
    os.close(fd)
    try:
        with _connect(source) as src, _connect(Path(temp)) as dst:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # the copy is one file, with no -wal beside it
        src.close()
        dst.close()
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def check_database(path: Path) -> dict[str, int]:
    """Rows per table of a tgtrunk database file; BackupError if the file is not one."""
    if not path.is_file():
        raise BackupError(f"{path} does not exist")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise BackupError(f"{path} is a damaged SQLite database (quick_check failed)")
            tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            if "line" not in tables:
                raise BackupError(f"{path} is an SQLite database but not tgtrunk's (it has no line table)")
            counts = {table: db.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0] for table in tables}
        db.close()
        return counts
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not an SQLite database ({exc})") from None


def restore_database(backup: Path, target: Path) -> None:
    """Replace the database at `target` with the copy in `backup` (through the backup API, so a -wal/-shm
    left beside `target` is brought in line too)."""
    with sqlite3.connect(f"file:{backup}?mode=ro", uri=True) as src, _connect(target) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=WAL")
    src.close()
    dst.close()


def timestamped(path: Path, why: str) -> Path:
    """`tgtrunk.db` -> `tgtrunk.db.before-upgrade-20261129-193000`."""
    return path.with_name(f"{path.name}.before-{why}-{datetime.now():%Y%m%d-%H%M%S}")


def _connect(path: Path) -> sqlite3.Connection:
    if not path.exists():
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    return sqlite3.connect(path, timeout=30)
