"""`tgtrunk backup` / `restore` while the gateway runs, and the copy a schema upgrade keeps."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path



def lines_in(path: Path) -> list[str]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        names = [row[0] for row in db.execute("SELECT name FROM line ORDER BY name")]
    db.close()
    return names


async def test_a_backup_taken_while_the_gateway_runs_holds_the_line_added_just_before(gateway, tmp_path):
    backup = tmp_path / "backups" / "tgtrunk-backup.db"
    assert (await gateway.cli("line", "add", "office", "--mode", "register", "--username", "pbx1")).code == 0
    result = await gateway.cli("backup", str(backup))  # at once: the line is still in the WAL, not the .db file
    assert result.code == 0, result.err
    assert f"to {backup} (" in result.out and "1 line(s)" in result.out
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert not backup.with_name(backup.name + "-wal").exists()  # one self-contained file
    assert lines_in(backup) == ["office"]
    again = await gateway.cli("backup", str(backup))
    assert again.code == 2 and "exists; choose another name or add --force" in again.err

    refused = await gateway.cli("restore", str(backup))
    assert refused.code == 2 and "nothing restored" in refused.err and "stop it first" in refused.err, refused.err

    assert (await gateway.cli("line", "remove", "office")).code == 0
    await gateway.stop()
    restored = await gateway.cli("restore", str(backup))
    assert restored.code == 0, restored.err
    kept = next(gateway.data_dir.glob("tgtrunk.db.before-restore-*"))
    assert f"the database before it is kept as {kept}" in restored.out
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and lines_in(kept) == []
    assert "office" in (await gateway.cli("line", "list")).out


def tgtrunk(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app", *args], env=env, capture_output=True, text=True, timeout=60)


def test_bad_backups_and_another_database_get_one_line_and_change_nothing(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TGTRUNK_")}
    env["TGTRUNK_DATA_DIR"] = str(tmp_path / "data")
    assert tgtrunk(env, "line", "add", "office", "--mode", "register").returncode == 0
    not_a_backup = tmp_path / "notes.txt"
    not_a_backup.write_text("not a database\n" * 100)
    result = tgtrunk(env, "restore", str(not_a_backup))
    assert result.returncode == 2 and result.stderr.startswith("tgtrunk: error: nothing restored: ") and \
        "is not an SQLite database" in result.stderr, result.stderr
    assert lines_in(tmp_path / "data" / "tgtrunk.db") == ["office"]

    postgres = tgtrunk({**env, "TGTRUNK_DATABASE_URL": "postgresql://tgtrunk@127.0.0.1/tgtrunk"}, "backup", "x.dump")
    assert postgres.returncode == 2 and "pg_dump" in postgres.stderr and "Traceback" not in postgres.stderr


def test_a_schema_upgrade_says_what_it_adds_and_keeps_the_database_as_it_was(tmp_path):
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TGTRUNK_")}
    env["TGTRUNK_DATA_DIR"] = str(data_dir)
    assert tgtrunk(env, "line", "add", "old", "--mode", "register").returncode == 0
    with sqlite3.connect(data_dir / "tgtrunk.db") as db:  # as an older tgtrunk made it: no line.priority
        db.execute("ALTER TABLE line DROP COLUMN priority")
    db.close()
    result = tgtrunk(env, "line", "list")
    assert result.returncode == 0, result.stderr
    kept = next(data_dir.glob("tgtrunk.db.before-upgrade-*"))
    assert f"database schema upgrade: adding column(s) line.priority; the database as it was is kept in {kept}" \
        in result.stderr, result.stderr
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    with sqlite3.connect(kept) as db:
        assert "priority" not in [row[1] for row in db.execute("PRAGMA table_info(line)")]
        assert db.execute("SELECT name FROM line").fetchall() == [("old",)]
    db.close()
    assert "old" in result.stdout
