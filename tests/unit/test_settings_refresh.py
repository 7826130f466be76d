"""A running gateway re-reads account settings every second; a database it cannot read is said once, not hidden."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from app.calls.accounts import Accounts
from app.store.db import Database


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), timeout)


async def test_failing_refresh_warns_once_per_streak_and_says_when_it_reads_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "tgtrunk.db"
    database = Database(f"sqlite:///{path}")
    with sqlite3.connect(path) as raw:  # the table vanishes under the running gateway
        raw.execute("ALTER TABLE telegram_account RENAME TO telegram_account_away")
    caplog.set_level(logging.DEBUG, logger="app.calls.accounts")

    def said(level: int, text: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == level and text in r.getMessage()]

    watcher = asyncio.create_task(Accounts().watch_settings(database, every_s=0.01, warn_after=3))
    try:
        await until(lambda: len(said(logging.DEBUG, "not refreshed")) >= 6)  # the streak goes on past 3
        warnings = said(logging.WARNING, "account settings could not be read")
        assert len(warnings) == 1
        assert "for 3 tries" in warnings[0] and "no such table" in warnings[0]

        with sqlite3.connect(path) as raw:
            raw.execute("ALTER TABLE telegram_account_away RENAME TO telegram_account")
        await until(lambda: bool(said(logging.INFO, "account settings are read again")))
    finally:
        watcher.cancel()
        database.close()
