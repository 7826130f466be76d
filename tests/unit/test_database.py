"""The database: a file made by an older tgtrunk opens with the new columns added and its rows kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlmodel import select

from app.store.account import TelegramAccountRow
from app.store.db import Database


def test_older_database_gains_new_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "tgtrunk.db"
    Database(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as db:  # the account table as the previous release wrote it
        db.execute("ALTER TABLE telegram_account DROP COLUMN max_calls")
        db.execute("ALTER TABLE telegram_account DROP COLUMN dtmf_out")
        db.execute("ALTER TABLE telegram_account DROP COLUMN record")
        db.execute("ALTER TABLE telegram_account DROP COLUMN record_chat")
        db.execute("INSERT INTO telegram_account (name, phone, api_id, session_encrypted, logged_in_at, dtmf_in, "
                   "redial, lines, messages, callback, first_name, last_name) "
                   "VALUES ('sales', '+15550001', 1, 'x', '2026-01-01 00:00:00', 1, 1, 1, 0, 0, '', '')")

    database = Database(f"sqlite:///{path}")
    try:
        with database.session() as session:
            row = session.exec(select(TelegramAccountRow)).one()
        assert (row.name, row.phone, row.max_calls, row.dtmf_out) == ("sales", "+15550001", None, True)
        with database.session() as session:
            row.max_calls = 2
            session.add(row)
        with database.session() as session:
            assert session.exec(select(TelegramAccountRow)).one().max_calls == 2
    finally:
        database.close()
