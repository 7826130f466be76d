"""`tgtrunk logs`: the bundled Asterisk's own log files (tgtrunk's own log is its stderr: the journal, or
`docker logs`)."""

from __future__ import annotations

import argparse
import os
from collections import deque
from pathlib import Path

from app.cli import CliError
from app.pbx.install import AsteriskInstall
from app.pbx.instance import runtime_dir_for
from app.settings import Settings, load_settings

FILES = {"messages": "messages.log", "security": "security.log", "console": "console.log"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "logs", help="show the bundled Asterisk's logs (messages, security, console)",
        description="messages: Asterisk's notices, warnings and errors; security: every authentication attempt "
                    "(what bans are made from); console: Asterisk's own output.",
    )
    parser.add_argument("name", nargs="?", choices=sorted(FILES), default="messages")
    parser.add_argument("-n", "--lines", type=int, default=50, help="how many of the last lines (default 50)")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (like tail -F)")
    parser.add_argument("--where", action="store_true", help="only print the log folder")
    parser.set_defaults(handler=run)


def log_dir(settings: Settings) -> Path:
    """Where Asterisk writes its logs for this data directory (found without running Asterisk, so any user
    who can read the data directory may look)."""
    root = settings.asterisk_root if (settings.asterisk_root / "usr/sbin/asterisk").exists() else None
    install = AsteriskInstall(root, "")
    return install.host_path(runtime_dir_for(install, settings.data_dir)) / "log"


def run(args: argparse.Namespace) -> int:
    folder = log_dir(load_settings())
    if args.where:
        print(folder)
        return 0
    path = folder / FILES[args.name]
    if args.follow:
        os.execvp("tail", ["tail", "-n", str(args.lines), "-F", str(path)])
    try:
        with open(path, errors="replace") as handle:
            for line in deque(handle, maxlen=max(args.lines, 0)):
                print(line, end="")
    except FileNotFoundError:
        raise CliError(f"{path} does not exist yet: the gateway's Asterisk has not written it (start `tgtrunk serve`)") from None
    return 0
