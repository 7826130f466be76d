"""`tgtrunk asterisk install`: provide Asterisk >= 20 (the system's, or a bundled Debian sid root)."""

from __future__ import annotations

import argparse
import os

from app.cli import CliError
from app.pbx.install import InstallError, install
from app.settings import load_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("asterisk", help="manage the bundled Asterisk")
    sub = parser.add_subparsers(dest="asterisk_command", metavar="ACTION", required=True)
    inst = sub.add_parser(
        "install", help="install Asterisk (idempotent)",
        description="Use a system Asterisk >= 20 when present; otherwise build a Debian sid root with Asterisk "
                    "into the data directory with debootstrap (mirror read from apt's configuration). Needs root.",
    )
    inst.set_defaults(handler=run_install)


def run_install(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise CliError("`tgtrunk asterisk install` needs root (debootstrap and chroot); run it with sudo")
    settings = load_settings()
    try:
        install(settings.asterisk_root)
    except InstallError as exc:
        raise CliError(str(exc)) from None
    return 0
