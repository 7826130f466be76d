"""Where Telegram sessions come from and go: the client factory and the encrypted rows in the database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyrogram import Client
from sqlmodel import select

from app.store.account import TelegramAccountRow
from app.store.line import utcnow
from app.store.db import Database
from app.store.secretbox import SecretBox
from app.telegram.account import TelegramAccount
from app.telegram.login import LoginResult

ClientFactory = Callable[..., Client]


def real_client(name: str, api_id: int, api_hash: str, session_string: str | None = None) -> Client:
    # workers=1: the call engine relies on a call's updates being handled in the order they arrive.
    return Client(name, api_id=api_id, api_hash=api_hash, in_memory=True, session_string=session_string,
                  workers=1, sleep_threshold=0)


_factory: ClientFactory = real_client


def use_client_factory(factory: ClientFactory | None) -> None:
    """Route every new client elsewhere (the simulated network); None restores real Telegram."""
    global _factory
    _factory = factory or real_client


def make_client(name: str, api_id: int, api_hash: str, session_string: str | None = None) -> Client:
    return _factory(name, api_id=api_id, api_hash=api_hash, session_string=session_string)


def save_login(db: Database, box: SecretBox, name: str, phone: str, api_id: int,
               result: LoginResult) -> TelegramAccountRow:
    with db.session() as s:
        row = s.exec(select(TelegramAccountRow).where(TelegramAccountRow.name == name)).first()
        if row is None:
            row = TelegramAccountRow(name=name, phone=phone, api_id=api_id, session_encrypted="")
        row.phone, row.api_id, row.user_id = phone, api_id, result.me.id
        row.username, row.first_name, row.last_name = result.me.username, result.me.first_name, result.me.last_name
        row.session_encrypted = box.encrypt(result.session_string.encode(), context=name)
        row.logged_in_at = utcnow()
        s.add(row)
    return row


def get_row(db: Database, name: str) -> TelegramAccountRow | None:
    with db.session() as s:
        return s.exec(select(TelegramAccountRow).where(TelegramAccountRow.name == name)).first()


def client_for(row: TelegramAccountRow, box: SecretBox, api_hash: str = "") -> Client:
    session_string = box.decrypt(row.session_encrypted, context=row.name).decode()
    return make_client(f"tgtrunk-{row.name}", row.api_id, api_hash, session_string)


async def open_account(row: TelegramAccountRow, box: SecretBox, **options: Any) -> TelegramAccount:
    """A started `TelegramAccount` from a stored row (options go to `TelegramAccount`)."""
    account = TelegramAccount(client_for(row, box), **options)
    await account.start()
    return account
