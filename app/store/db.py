"""The database: one engine per URL, tables created on first use."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, create_engine

from app.store.secretfile import tighten


def _import_tables() -> None:
    # Each table module registers itself on SQLModel.metadata when imported.
    import app.store.line  # noqa: F401
    import app.store.ban  # noqa: F401
    import app.store.callrecord  # noqa: F401
    try:
        import app.store.account  # noqa: F401
    except ModuleNotFoundError:
        pass


class Database:
    """Owns the engine; `session()` gives a transaction that commits on success."""

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
        SQLModel.metadata.create_all(self.engine)
        add_new_columns(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def close(self) -> None:
        self.engine.dispose()


def private_database_file(path: Path) -> None:
    """The database holds password digests: the file is 0600 (in a new directory made 0700) before SQLite opens
    it. SQLite gives the -wal and -shm files the database file's mode; existing ones are tightened too."""
    if str(path) in ("", ":memory:"):
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        tighten(file, 0o600)


def add_new_columns(engine: Engine) -> list[str]:
    """Columns a newer tgtrunk added to an existing table are added to a database made by an older one.

    `create_all` only creates missing tables. New columns are nullable or have a constant default, so an
    ALTER TABLE ADD COLUMN is the whole migration (see docs/decisions.md). Returns "table.column" added."""
    inspector = inspect(engine)
    added: list[str] = []
    with engine.begin() as connection:
        for table in SQLModel.metadata.sorted_tables:
            if not inspector.has_table(table.name):
                continue
            present = {column["name"] for column in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in present:
                    continue
                kind = column.type.compile(dialect=engine.dialect)
                default = column.default.arg if column.default is not None and column.default.is_scalar else None
                clause = f" DEFAULT {_literal(default)}" if default is not None else ""
                connection.execute(text(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}{clause}'))
                added.append(f"{table.name}.{column.name}")
    return added


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"  # PostgreSQL wants booleans; SQLite >= 3.23 reads them as 1/0
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets `serve` read while the CLI writes; the busy timeout waits instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
