"""`tgtrunk backup FILE` and `tgtrunk restore FILE`: the SQLite database, copied safely while the gateway runs."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from app.cli import CliError
from app.settings import Settings, load_settings
from app.store.backup import BackupError, check_database, copy_database, restore_database, sqlite_path, timestamped
from app.store.datalock import DataDirInUse, lock_data_dir
from app.store.db import Database


def register(subparsers: argparse._SubParsersAction) -> None:
    backup = subparsers.add_parser(
        "backup", help="copy the database to FILE (safe while the gateway runs)",
        description="Uses SQLite's online backup API, so the copy holds every committed change (also those still "
                    "in the WAL). The file is 0600. Telegram sessions in it are encrypted with <data dir>/secret.key "
                    "(or TGTRUNK_SECRET_KEY): keep that key too, somewhere else.",
    )
    backup.add_argument("file", type=Path, metavar="FILE")
    backup.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    backup.set_defaults(handler=run_backup)
    restore = subparsers.add_parser(
        "restore", help="replace the database with a backup (the gateway must be stopped)",
        description="Checks that FILE is a tgtrunk database, keeps the current database as "
                    "tgtrunk.db.before-restore-<time>, then restores FILE into it.",
    )
    restore.add_argument("file", type=Path, metavar="FILE")
    restore.set_defaults(handler=run_restore)


def _database_file(settings: Settings) -> Path:
    path = sqlite_path(settings.database_url)
    if path is None:
        raise CliError("TGTRUNK_DATABASE_URL is not SQLite: back it up with the database's own tools, e.g. "
                       "`pg_dump --format=custom --file=FILE DBNAME` for PostgreSQL (and `pg_restore --clean "
                       "--dbname=DBNAME FILE` to restore)")
    if not path.is_file():
        raise CliError(f"there is no database at {path} yet (start the gateway or add a line first)")
    return path


def run_backup(args: argparse.Namespace) -> int:
    settings = load_settings()
    source = _database_file(settings)
    target = args.file.absolute()
    if target.exists() and not args.force:
        raise CliError(f"{target} exists; choose another name or add --force")
    if target.resolve() == source.resolve():
        raise CliError("FILE is the database itself; choose another name")
    try:
        copy_database(source, target)
        counts = check_database(target)
    except (OSError, BackupError) as exc:
        raise CliError(f"backup to {target} failed: {exc}") from None
    print(f"backed up {source} to {target} ({target.stat().st_size} bytes, {counts.get('line', 0)} line(s), "
          f"{counts.get('callrecord', 0)} call record(s), {counts.get('telegram_account', 0)} Telegram account(s))")
    if counts.get("telegram_account"):
        print(f"the Telegram sessions in it open only with {settings.secret_key_path} (or TGTRUNK_SECRET_KEY): "
              f"keep a copy of that key too, stored apart from the backup")
    return 0


def run_restore(args: argparse.Namespace) -> int:
    settings = load_settings()
    target = sqlite_path(settings.database_url)
    if target is None:
        _database_file(settings)  # says how to restore PostgreSQL
        return 2
    backup = args.file.absolute()
    try:
        counts = check_database(backup)
    except BackupError as exc:
        raise CliError(f"nothing restored: {exc}") from None
    try:
        lock = lock_data_dir(settings.data_dir)  # no `tgtrunk serve` may start while the database is replaced
    except DataDirInUse as exc:
        raise CliError(f"nothing restored: {exc} (the running gateway would keep writing the old database)") from None
    try:
        kept = None
        if target.is_file():
            kept = timestamped(target, "restore")
            copy_database(target, kept)
        restore_database(backup, target)
        Database(settings.database_url).close()  # a backup from an older tgtrunk gets the new columns now
    except (OSError, BackupError) as exc:
        raise CliError(f"restore from {backup} failed: {exc}") from None
    finally:
        os.close(lock)
    print(f"restored {backup} into {target} ({counts.get('line', 0)} line(s), {counts.get('callrecord', 0)} call "
          f"record(s)){f'; the database before it is kept as {kept}' if kept else ''}")
    return 0
