"""`tgtrunk serve`: run the gateway."""

from __future__ import annotations

import argparse
import errno
import os
import socket

import uvloop

from app.cli import CliError
from app.pbx.external import ExternalAsteriskError
from app.pbx.install import InstallError
from app.pbx.supervisor import AsteriskDiedError
from app.settings import Settings, load_settings
from app.store.datalock import DataDirInUse, lock_data_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="run the gateway (bundled Asterisk + Stasis app)",
        description="Start the bundled Asterisk as a supervised child, push the lines and handle calls. "
                    "SIGTERM/SIGINT end calls and stop Asterisk cleanly.",
    )
    parser.add_argument("--simulate-telegram", action="store_true",
                        help="use the built-in simulated Telegram network instead of a logged-in account")
    parser.set_defaults(handler=run)


def check_ports_free(settings: Settings) -> None:
    checks = [] if settings.external_ari else [  # on the user's own Asterisk, tgtrunk opens no SIP and no ARI port
        (socket.SOCK_DGRAM, settings.sip_bind.host, settings.sip_bind.port, "SIP (TGTRUNK_SIP_BIND)"),
        (socket.SOCK_STREAM, settings.sip_bind.host, settings.sip_bind.port, "SIP/TCP (TGTRUNK_SIP_BIND)"),
        (socket.SOCK_STREAM, "127.0.0.1", settings.ari_port, "ARI (TGTRUNK_ARI_PORT)"),
    ]
    checks.append(
        (socket.SOCK_STREAM, settings.http_bind.host, settings.http_bind.port, "admin API (TGTRUNK_HTTP_BIND)"))
    for kind, host, port, what in checks:
        with socket.socket(socket.AF_INET, kind) as sock:
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise CliError(f"{what} port {host}:{port} is in use by another program; stop it or choose another port") from None
                raise CliError(f"cannot bind {what} {host}:{port}: {exc.strerror}") from None


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        lock = lock_data_dir(settings.data_dir)  # before anything in the data directory is written
    except DataDirInUse as exc:
        raise CliError(str(exc)) from None
    from app.gateway import serve  # imports pyrogram, which logs a line: after the refusal above

    try:
        check_ports_free(settings)
        uvloop.run(serve(settings, args.simulate_telegram))  # docs/decisions.md: "uvloop"
    except (InstallError, AsteriskDiedError, ExternalAsteriskError) as exc:
        raise CliError(str(exc)) from None
    finally:
        os.close(lock)
    return 0
