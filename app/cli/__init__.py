"""The `tgtrunk` command line: one module per command group, each adding its sub-parser."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from app.logs import configure_logging
from app.pbx.install import InstallError
from app.settings import SettingsError, load_settings
from app.store.secretfile import SecretFileError

# Modules under app.cli that define `register(subparsers)`.
COMMAND_MODULES = ("serve", "asterisk", "status", "line", "account", "sim", "calls", "bot", "backup", "logs", "admin")


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tgtrunk", description="SIP <-> Telegram voice gateway")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    parser.add_argument("--version", action="version", version=f"tgtrunk {tgtrunk_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"app.cli.{name}").register(subparsers)
    return parser


def tgtrunk_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tgtrunk")
    except PackageNotFoundError:
        return "unknown (not installed as a package)"


def check_data_dir_access() -> None:
    """The data directory is 0700 (it holds secrets): another user gets one line saying so, not a traceback."""
    data_dir = load_settings().data_dir
    if data_dir.exists() and not os.access(data_dir, os.R_OK | os.W_OK | os.X_OK):
        try:
            owner = data_dir.owner()
        except (KeyError, OSError):
            owner = f"uid {data_dir.stat().st_uid}"
        raise CliError(f"the data directory {data_dir} belongs to {owner} and is private (it holds the database and "
                       f"secrets): run tgtrunk as that user (`sudo -u {owner} tgtrunk …`), or set TGTRUNK_DATA_DIR")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int | None] = args.handler
    try:
        configure_logging(os.environ, args.verbose)
        check_data_dir_access()
        return handler(args) or 0
    except (CliError, SettingsError, SecretFileError, InstallError) as exc:
        print(f"tgtrunk: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
