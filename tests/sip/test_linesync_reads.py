"""The line sync reads the lines and bans only when the database changed: a `tgtrunk line add` in its own process
or a write in this one is taken at the next poll, an idle gateway reads nothing, and a ban still ends on time."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import event

from app.ari.client import AriClient
from app.sip.linesync import LineSync
from app.store.ban import Ban
from app.store.db import Database
from app.store.line import Line, LineMode, LineStatus, utcnow


def reads_of(database: Database, table: str) -> list[str]:
    """Every SELECT the database's engine runs on `table` from now on."""
    seen: list[str] = []

    def before(_conn, _cursor, statement: str, *_args) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT") and re.search(rf"\bFROM {table}\b", statement):
            seen.append(statement)
    event.listen(database.engine, "before_cursor_execute", before)
    return seen


def cli(data_dir: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TGTRUNK_")}
    env["TGTRUNK_DATA_DIR"] = str(data_dir)
    result = subprocess.run([sys.executable, "-m", "app", *args], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


async def test_a_line_added_by_the_cli_is_read_once_and_an_idle_sync_reads_nothing(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'tgtrunk.db'}")
    ari = AriClient("127.0.0.1", 9, "unused", "unused", "tgtrunk")  # routes only: nothing is pushed
    lines = LineSync(ari, database, routes_only=True)
    reads = reads_of(database, "line")
    try:
        await lines.sync()
        assert len(reads) == 1 and lines.lines == {}
        for _ in range(10):  # what 4 s of polling did
            await lines.sync()
        assert len(reads) == 1, f"an idle sync read the lines {len(reads)} times"

        await asyncio.to_thread(cli, tmp_path, "line", "add", "office", "--mode", "stasis",
                                "--originate", "PJSIP/{number}@office")
        await lines.sync()
        assert list(lines.lines) == ["office"] and len(reads) == 2
        await lines.sync()
        assert len(reads) == 2

        for _ in range(3):  # the line status, written every 2 s, is not a change to read lines for
            await lines.record_status()
            await lines.sync()
        assert len(reads) == 2
        with database.session() as session:
            assert session.get(LineStatus, "office").state == "ready"  # what `tgtrunk line show` reads

        with database.session() as session:  # the admin API writes in the serving process itself
            session.add(Line(name="desk", mode=LineMode.STASIS, originate="PJSIP/{number}@desk"))
        await lines.sync()
        assert sorted(lines.lines) == ["desk", "office"] and len(reads) == 3
    finally:
        database.close()


async def test_a_ban_ends_on_time_without_a_write(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'tgtrunk.db'}")
    bans_file = tmp_path / "pjsip_bans.conf"
    lines = LineSync(AriClient("127.0.0.1", 9, "unused", "unused", "tgtrunk"), database, bans_file)
    reads = reads_of(database, "ban")
    until = utcnow() + timedelta(seconds=1)
    with database.session() as session:
        session.add(Ban(address="127.0.0.4", reason="test", failures=3, until=until))
    try:
        await lines.sync()
        assert "deny = 127.0.0.4" in bans_file.read_text()
        while utcnow() <= until:
            await asyncio.sleep(0.05)  # waiting out the ban's length is what is tested
            await lines.sync()
        await lines.sync()
        assert "127.0.0.4" not in bans_file.read_text()
        assert len(reads) == 1
    finally:
        database.close()


def test_the_version_changes_with_a_write_from_another_process_only_when_written(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'tgtrunk.db'}")
    try:
        first = database.version()
        assert first is not None and database.version() == first
        cli(tmp_path, "line", "add", "office", "--mode", "register")
        second = database.version()
        assert second != first and database.version() == second
        with database.session(unseen=True) as session:
            session.add(LineStatus(name="office", state="ready", detail=""))
        assert database.version() == second
        with database.session() as session:
            session.add(LineStatus(name="desk", state="ready", detail=""))
        assert database.version() != second
    finally:
        database.close()
    assert Database("sqlite://").version() is None  # in memory: cannot be told, so read every time
