"""`tgtrunk bot`: the operator's own Telegram bot, whose messages carry the Redial / Lines buttons."""

from __future__ import annotations

import argparse
import getpass
import re

from app.cli import CliError
from app.settings import load_settings
from app.store.secretfile import private_dir, write_secret

TOKEN = re.compile(r"^\d{3,20}:[A-Za-z0-9_-]{20,100}$")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bot", help="the bot that puts buttons under the gateway's chat messages")
    sub = parser.add_subparsers(dest="bot_command", metavar="ACTION", required=True)
    p = sub.add_parser("set", help="store the bot's token (0600 in the data directory); `serve` logs it in")
    p.add_argument("--token", help="the token BotFather gave (asked for when omitted, so it stays out of "
                                   "the shell history)")
    p.set_defaults(handler=run_set)
    p = sub.add_parser("show", help="whether a bot token is set (never prints it)")
    p.set_defaults(handler=run_show)
    p = sub.add_parser("remove", help="forget the bot: menus are sent as text commands again")
    p.set_defaults(handler=run_remove)


def run_set(args: argparse.Namespace) -> int:
    token = (args.token or getpass.getpass("bot token: ")).strip()
    if not TOKEN.match(token):
        raise CliError("that is not a bot token: BotFather's look like 123456789:AAE… (digits, a colon, 35 characters)")
    settings = load_settings()
    private_dir(settings.data_dir)
    write_secret(settings.bot_token_path, token.encode())
    print(f"bot token stored in {settings.bot_token_path} (0600); restart `tgtrunk serve` to use it")
    return 0


def run_show(args: argparse.Namespace) -> int:
    settings = load_settings()
    if settings.bot_token:
        print("bot token: set by TGTRUNK_BOT_TOKEN")
    elif settings.bot_token_path.exists():
        print(f"bot token: stored in {settings.bot_token_path}")
    else:
        print("no bot: the gateway sends its chat menus as text commands (/redial, /lines)")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    settings = load_settings()
    settings.bot_token_path.unlink(missing_ok=True)
    print("bot token removed; restart `tgtrunk serve`")
    return 0
