"""`tgtrunk account`: log Telegram accounts in and out, list them, and keep their session settings."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError
from pyrogram import raw
from sqlmodel import select

from app.cli import CliError
from app.settings import Settings, load_settings
from app.sip.line import LineError, check_record_chat, validation_message
from app.store.account import SETTING_FLAGS, SessionSettingsPatch, TelegramAccountRow
from app.store.db import Database
from app.store.secretbox import SecretBox, SecretBoxError
from app.telegram import sessions
from app.telegram.errors import LoginError
from app.telegram.login import login
from app.telegram.privacy import apply_recommended


def _context() -> tuple[Settings, Database, SecretBox]:
    settings = load_settings()
    return settings, Database(settings.database_url), SecretBox.from_env_or_file(settings.secret_key_path)


def _row(db: Database, name: str) -> TelegramAccountRow:
    row = sessions.get_row(db, name)
    if row is None:
        raise CliError(f"no Telegram account named {name!r} (see `tgtrunk account list`)")
    return row


def _api(args: argparse.Namespace) -> tuple[int, str]:
    api_id = args.api_id or os.environ.get("TGTRUNK_API_ID")
    api_hash = args.api_hash or os.environ.get("TGTRUNK_API_HASH")
    if not api_id or not api_hash:
        raise CliError("need the Telegram API id and hash: --api-id/--api-hash or TGTRUNK_API_ID/TGTRUNK_API_HASH")
    try:
        return int(api_id), str(api_hash)
    except ValueError:
        raise CliError(f"the API id {api_id!r} is not a number") from None


def _say(text: str) -> None:
    print(text, flush=True)


def _yes(prompt: str) -> bool:
    return input(prompt).strip().lower() in ("", "y", "yes")


# --- commands -----------------------------------------------------------------------------------------

def cmd_login(args: argparse.Namespace) -> int:
    _settings, db, box = _context()
    api_id, api_hash = _api(args)
    phone = args.phone if args.phone.startswith("+") else f"+{args.phone}"
    return asyncio.run(_login(args, db, box, phone, api_id, api_hash))


async def _login(args: argparse.Namespace, db: Database, box: SecretBox, phone: str, api_id: int,
                 api_hash: str) -> int:
    client = sessions.make_client(f"tgtrunk-{args.name}", api_id, api_hash)
    await client.connect()
    try:
        try:
            result = await login(client, phone, input, getpass.getpass, _say)
        except LoginError as exc:
            raise CliError(f"login failed: {exc.reason}") from None
        row = sessions.save_login(db, box, args.name, phone, api_id, result)
        who = f"@{result.me.username}" if result.me.username else result.me.name
        _say(f"Logged in {args.name}: {who} (id {result.me.id}); session stored encrypted.")
        apply = args.privacy
        if apply is None:
            apply = _yes("Apply the recommended Telegram settings (calls from everybody, P2P allowed, "
                         "groups disallowed, calls off on other devices)? [Y/n] ")
        if apply:
            await _apply_privacy(client, db, row.name)
        return 0
    finally:
        await client.disconnect()


async def _apply_privacy(client: object, db: Database, name: str) -> bool:
    results = await apply_recommended(client)  # type: ignore[arg-type]
    for result in results:
        _say(f"  {result}")
    if all(r.ok for r in results):
        with db.session() as s:
            row = s.exec(select(TelegramAccountRow).where(TelegramAccountRow.name == name)).one()
            row.privacy_applied_at = datetime.now(timezone.utc)
            s.add(row)
    return all(r.ok for r in results)


def cmd_privacy(args: argparse.Namespace) -> int:
    _settings, db, box = _context()
    row = _row(db, args.name)

    async def run() -> int:
        client = _client(row, box)
        await client.connect()
        try:
            return 0 if await _apply_privacy(client, db, row.name) else 1
        finally:
            await client.disconnect()

    return asyncio.run(run())


def _client(row: TelegramAccountRow, box: SecretBox) -> object:
    try:
        return sessions.client_for(row, box, os.environ.get("TGTRUNK_API_HASH", ""))
    except SecretBoxError as exc:
        raise CliError(f"the stored session of {row.name!r} cannot be read: {exc}") from None


def cmd_list(args: argparse.Namespace) -> int:
    _settings, db, _box = _context()
    with db.session() as s:
        rows = s.exec(select(TelegramAccountRow).order_by(TelegramAccountRow.name)).all()
    if not rows:
        _say("no Telegram accounts; add one with `tgtrunk account login NAME --phone +…`")
        return 0
    _say(f"{'NAME':<16} {'PHONE':<16} {'USER':<24} {'ID':<12}")
    for row in rows:
        user = f"@{row.username}" if row.username else f"{row.first_name} {row.last_name}".strip()
        _say(f"{row.name:<16} {row.phone:<16} {user:<24} {row.user_id or '':<12}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    _settings, db, _box = _context()
    row = _row(db, args.name)
    _say(f"name:        {row.name}")
    _say(f"phone:       {row.phone}")
    _say(f"user:        {row.first_name} {row.last_name}".rstrip() + (f" (@{row.username})" if row.username else ""))
    _say(f"user id:     {row.user_id}")
    _say(f"logged in:   {row.logged_in_at:%Y-%m-%d %H:%M} UTC")
    _say(f"privacy:     {'applied ' + format(row.privacy_applied_at, '%Y-%m-%d %H:%M') if row.privacy_applied_at else 'not applied'}")
    for flag in SETTING_FLAGS:
        _say(f"{flag.replace('_', '-') + ':':<12} {'on' if getattr(row, flag) else 'off'}")
    _say(f"autoreply:   {row.autoreply or '(off)'}" + (f" (at most every {row.autoreply_interval_s} s)"
                                                          if row.autoreply else ""))
    _say(f"inline bot:  {'@' + row.inline_bot if row.inline_bot else '(off)'}"
         + (f" query {row.inline_query!r}" if row.inline_bot and row.inline_query else ""))
    _say(f"max-calls:   {row.max_calls or 'no limit'}")
    _say(f"record:      {'on, to ' + (row.record_chat or 'me') if row.record else 'off'}")
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    _settings, db, _box = _context()
    _row(db, args.name)
    given = {key: getattr(args, key) for key in (*SETTING_FLAGS, "autoreply", "autoreply_interval_s", "inline_bot",
                                                 "inline_query", "max_calls") if getattr(args, key) is not None}
    if (args.max_calls or 0) < 0:
        raise CliError("--max-calls must be 0 (no limit) or more")
    try:
        changes = SessionSettingsPatch(**given).changes()
    except ValidationError as exc:
        raise CliError(validation_message(exc)) from None
    if args.record is not None:
        changes["record"] = args.record
    if args.record_chat is not None:
        try:
            changes["record_chat"] = check_record_chat(args.record_chat) if args.record_chat else None
        except LineError as exc:
            raise CliError(str(exc)) from None
    if not changes:
        raise CliError("nothing to change; see `tgtrunk account settings --help`")
    with db.session() as s:
        row = s.exec(select(TelegramAccountRow).where(TelegramAccountRow.name == args.name)).one()
        for key, value in changes.items():
            setattr(row, key, value)
        s.add(row)
    return cmd_show(args)


def cmd_logout(args: argparse.Namespace) -> int:
    _settings, db, box = _context()
    row = _row(db, args.name)

    async def terminate() -> str | None:
        client = _client(row, box)
        try:
            await client.connect()  # type: ignore[attr-defined]
            await client.invoke(raw.functions.auth.LogOut())  # type: ignore[attr-defined]
            await client.disconnect()  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - still delete the local session, but say so
            return str(exc) or type(exc).__name__
        return None

    problem = asyncio.run(terminate())
    with db.session() as s:
        s.delete(s.exec(select(TelegramAccountRow).where(TelegramAccountRow.name == args.name)).one())
    if problem:
        print(f"warning: Telegram did not confirm the logout ({problem}); the local session is deleted anyway",
              file=sys.stderr)
    _say(f"Logged out {args.name}; the stored session is deleted.")
    return 0


# --- administrators ---------------------------------------------------------------------------------

def _admin(session: Any, account: str, who: str) -> Any:
    from app.store.admin import AccountAdmin

    return session.exec(select(AccountAdmin).where(AccountAdmin.account == account, AccountAdmin.who == who)).first()


def _checked_admin(who: str) -> str:
    from app.store.admin import AdminError, check_admin

    try:
        return check_admin(who)
    except AdminError as exc:
        raise CliError(str(exc)) from None


def cmd_admin_add(args: argparse.Namespace) -> int:
    from app.store.admin import AccountAdmin

    who = _checked_admin(args.who)
    with Database(load_settings().database_url).session() as session:
        if _admin(session, args.name, who):
            raise CliError(f"{who} is already an administrator of {args.name}")
        known = session.exec(select(TelegramAccountRow).where(TelegramAccountRow.name == args.name)).first()
        session.add(AccountAdmin(account=args.name, who=who))
    print(f"{who} is an administrator of {args.name}")
    if known is None:
        print(f"(no stored account is named {args.name} yet: it applies once one is, or to a simulated one)")
    return 0


def cmd_admin_remove(args: argparse.Namespace) -> int:
    who = _checked_admin(args.who)
    with Database(load_settings().database_url).session() as session:
        row = _admin(session, args.name, who)
        if row is None:
            raise CliError(f"{who} is not an administrator of {args.name}; `tgtrunk account admin list` shows them")
        session.delete(row)
    print(f"{who} is no longer an administrator of {args.name}")
    return 0


def cmd_admin_list(args: argparse.Namespace) -> int:
    from app.store.admin import AccountAdmin

    db = Database(load_settings().database_url)
    query = select(AccountAdmin).order_by(AccountAdmin.account, AccountAdmin.who)
    if args.name:
        query = query.where(AccountAdmin.account == args.name)
    with db.session() as session:
        rows = list(session.exec(query))
    if not rows:
        print("no administrator" + (f" of {args.name}" if args.name else "") + ": add one with "
              "`tgtrunk account admin add ACCOUNT @username`")
    for row in rows:
        print(f"{row.account:<16} {row.who}")
    return 0
