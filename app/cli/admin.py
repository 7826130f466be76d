"""`tgtrunk admin password`: the password of the admin pages (the admin token logs in too)."""

from __future__ import annotations

import argparse
import getpass
import sys

from app.cli import CliError
from app.settings import load_settings
from app.store.adminpassword import PasswordError, set_password
from app.store.secretfile import private_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("admin", help="the admin pages (GET / on TGTRUNK_HTTP_BIND)")
    sub = parser.add_subparsers(dest="admin_command", metavar="ACTION", required=True)
    password = sub.add_parser("password", help="set the admin pages' password (asked twice, or read from stdin)",
                              description="Stored as an scrypt hash in <data dir>/admin-password (0600). Changing "
                                          "it logs every open browser session out.")
    password.add_argument("--stdin", action="store_true", help="read the password from standard input (one line)")
    password.set_defaults(handler=run_password)


def run_password(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("new admin password: ")
        if getpass.getpass("again: ") != password:
            raise CliError("the two passwords differ; nothing was changed")
    private_dir(settings.data_dir)
    try:
        set_password(settings.admin_password_path, password)
    except PasswordError as exc:
        raise CliError(str(exc)) from None
    print(f"admin password set ({settings.admin_password_path}); browser sessions opened before are logged out")
    return 0
