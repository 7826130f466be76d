"""The database: one engine per URL, tables created on first use."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, SQLModel, create_engine

from app.store.backup import copy_database, sqlite_path, timestamped
from app.store.secretfile import tighten

log = logging.getLogger(__name__)

HELD_ROWS_LIMIT = 1000  # rows kept in memory while the database cannot be written (the oldest go first)


def _import_tables() -> None:
    # Each table module registers itself on SQLModel.metadata when imported.
    import app.store.line  # noqa: F401
    import app.store.ban  # noqa: F401
    import app.store.callrecord  # noqa: F401
    import app.store.conversation  # noqa: F401
    import app.store.account  # noqa: F401
    import app.store.admin  # noqa: F401


class Database:
    """Owns the engine; `session()` gives a transaction that commits on success.

    It remembers whether the last write failed (`write_error`, for /healthz), and `add_or_hold` keeps a row
    that cannot be written in memory until `write_held` gets it in."""

    def __init__(self, url: str) -> None:
        self.url = url
        connect_args: dict[str, object] = {}
        if url.startswith("sqlite:///"):
            private_database_file(Path(url.removeprefix("sqlite:///")))
            connect_args = {"check_same_thread": False, "timeout": 30}
        self.engine: Engine = create_engine(url, connect_args=connect_args)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        _import_tables()
        add_new_columns(self.engine, before=self._before_upgrade)
        SQLModel.metadata.create_all(self.engine)
        self.write_error: str | None = None
        self.held: deque[SQLModel] = deque(maxlen=HELD_ROWS_LIMIT)
        path = sqlite_path(url)
        self._data_version = DataVersion(path) if path is not None and str(path) not in ("", ":memory:") else None

    def version(self) -> int | None:
        """Different from the last call's answer if the database may have changed since (a write by the CLI in its
        own process, by the admin API or a call in this one); None when that cannot be told (not an SQLite file):
        read every time then. For the pollers that re-read rows (line sync, account settings, recordings)."""
        return None if self._data_version is None else self._data_version.read()

    @contextmanager
    def session(self, unseen: bool = False) -> Iterator[Session]:
        """`unseen`: its writes do not change `version()` (for rows no poller reads: the line status)."""
        if unseen and self._data_version is not None:
            with self._data_version.writing() as engine, self._session(engine) as session:
                yield session
        else:
            with self._session(self.engine) as session:
                yield session

    @contextmanager
    def _session(self, engine: Engine) -> Iterator[Session]:
        with Session(engine, expire_on_commit=False) as session:
            event.listen(session, "after_flush", _mark_written)
            try:
                yield session
                written = bool(session.new or session.dirty or session.deleted or session.info.get("written"))
                session.commit()
            except BaseException as exc:
                session.rollback()
                if isinstance(exc, OperationalError) and (session.new or session.dirty or session.deleted
                                                          or session.info.get("written")):
                    self.write_error = str(exc.orig)
                raise
            if written:
                self.write_error = None

    def _before_upgrade(self, changes: list[str]) -> None:
        """A schema change is logged, and an SQLite file copied first (the copy is what an older tgtrunk reads)."""
        path = sqlite_path(self.url)
        if path is None or str(path) in ("", ":memory:"):
            log.warning("database schema upgrade: adding column(s) %s", ", ".join(changes))
            return
        copy = timestamped(path, "upgrade")
        copy_database(path, copy)
        log.warning("database schema upgrade: adding column(s) %s; the database as it was is kept in %s",
                    ", ".join(changes), copy)

    def add_or_hold(self, row: SQLModel) -> bool:
        """Write a row; if the database cannot take it, keep it for `write_held` (False then)."""
        try:
            with self.session() as session:
                session.add(row)
            return True
        except OperationalError as exc:
            if not self.held:
                log.warning("the database cannot be written (%s): %s rows are kept in memory (up to %d) and "
                            "written when it can", exc.orig, type(row).__name__, HELD_ROWS_LIMIT)
            elif len(self.held) == HELD_ROWS_LIMIT:
                log.error("the database still cannot be written: %d held rows, the oldest is dropped",
                          HELD_ROWS_LIMIT)
            self.held.append(row)
            return False

    async def write_held(self, every_s: float = 1.0) -> None:
        """Keep trying to write the held rows, oldest first (a supervised background task)."""
        while True:
            await asyncio.sleep(every_s)
            if not self.held:
                continue
            count = len(self.held)
            try:
                await asyncio.to_thread(self._write_rows, list(self.held))
            except OperationalError:
                continue
            for _ in range(count):
                self.held.popleft()
            log.info("the database can be written again: %d held row(s) written", count)

    def _write_rows(self, rows: list[SQLModel]) -> None:
        with self.session() as session:
            session.add_all(rows)

    def close(self) -> None:
        if self.held:
            try:
                self._write_rows(list(self.held))
                self.held.clear()
            except OperationalError as exc:
                log.error("%d held row(s) are lost: the database still cannot be written (%s)", len(self.held), exc.orig)
        self.engine.dispose()
        if self._data_version is not None:
            self._data_version.close()


class DataVersion:
    """SQLite's `PRAGMA data_version` on one connection kept for it: it changes when any other connection (another
    process, or this process's pool) commits to the file. It takes no lock a writer holds (WAL), so the pollers ask
    it on the event loop's thread in microseconds, instead of reading their rows off the loop every period.

    Writes through `writing()` go through that same connection, so they do not change it: the line status, written
    every 2 s and polled by nobody, would otherwise make every poller read its rows every 2 s."""

    READ_BUSY_MS = 50  # reads run on the event loop's thread: never wait long
    WRITE_BUSY_MS = 30_000  # as the pool's connections (_sqlite_pragmas)

    def __init__(self, path: Path) -> None:
        self._connection = sqlite3.connect(path, timeout=self.READ_BUSY_MS / 1000, check_same_thread=False)
        self._lock = threading.Lock()  # a write through the connection holds it throughout
        self._engine = create_engine("sqlite://", creator=lambda: self._connection, poolclass=StaticPool)

    def read(self) -> int | None:
        if not self._lock.acquire(blocking=False):
            return None  # a write through it is under way (it may wait for a lock): "maybe changed"
        try:
            return int(self._connection.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error:
            return None
        finally:
            self._lock.release()

    @contextmanager
    def writing(self) -> Iterator[Engine]:
        with self._lock:
            self._connection.execute(f"PRAGMA busy_timeout={self.WRITE_BUSY_MS}")
            try:
                yield self._engine
            finally:
                self._connection.execute(f"PRAGMA busy_timeout={self.READ_BUSY_MS}")

    def close(self) -> None:
        with self._lock:
            self._engine.dispose()
            self._connection.close()


def private_database_file(path: Path) -> None:
    """The database holds password digests: the file is 0600 (in a new directory made 0700) before SQLite opens
    it. SQLite gives the -wal and -shm files the database file's mode; existing ones are tightened too."""
    if str(path) in ("", ":memory:"):
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        tighten(file, 0o600)


def _mark_written(session: Session, _flush_context: object) -> None:
    session.info["written"] = True


def add_new_columns(engine: Engine, before: Callable[[list[str]], None] | None = None) -> list[str]:
    """Columns a newer tgtrunk added to an existing table are added to a database made by an older one.

    `create_all` only creates missing tables. New columns are nullable or have a constant default, so an
    ALTER TABLE ADD COLUMN is the whole migration (see docs/decisions.md). `before` is told the changes first.
    Returns "table.column" added."""
    inspector = inspect(engine)
    present = {table.name: {column["name"] for column in inspector.get_columns(table.name)}
               for table in SQLModel.metadata.sorted_tables if inspector.has_table(table.name)}
    missing = [(table, column) for table in SQLModel.metadata.sorted_tables if table.name in present
               for column in table.columns if column.name not in present[table.name]]
    if not missing:
        return []
    added = [f"{table.name}.{column.name}" for table, column in missing]
    if before is not None:
        before(added)
    with engine.begin() as connection:
        for table, column in missing:
            kind = column.type.compile(dialect=engine.dialect)
            default = column.default.arg if column.default is not None and column.default.is_scalar else None
            clause = f" DEFAULT {_literal(default)}" if default is not None else ""
            connection.execute(text(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}{clause}'))
    return added


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"  # PostgreSQL wants booleans; SQLite >= 3.23 reads them as 1/0
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


SQLITE_CACHE_KIB = 128  # per connection; SQLite's default is 2 MiB


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets `serve` read while the CLI writes; the busy timeout waits instead of failing. Each pooled connection
    # keeps every page it touched up to its cache size, and new call records mean new pages: with SQLite's 2 MiB
    # the gateway grew ~0.9 KiB a call for thousands of calls (bench/README.md, "Memory per call"). A write or a
    # look-up touches a few pages of each B-tree; the rest is read again from the OS' file cache.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()
