"""The `tgtrunk` command line: one module per command group, each adding its sub-parser."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from app.settings import SettingsError
from app.store.secretfile import SecretFileError

# Modules under app.cli that define `register(subparsers)`; missing ones are skipped so a
# command group can land on its own.
COMMAND_MODULES = ("serve", "asterisk", "status", "line", "account", "sim", "calls", "bot")


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tgtrunk", description="SIP <-> Telegram voice gateway")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"app.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"app.cli.{name}":
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler: Callable[[argparse.Namespace], int | None] = args.handler
    try:
        return handler(args) or 0
    except (CliError, SettingsError, SecretFileError) as exc:
        print(f"tgtrunk: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
