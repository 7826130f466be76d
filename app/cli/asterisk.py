"""`tgtrunk asterisk install`: provide Asterisk >= 20 (the system's, or a bundled Debian sid root)."""

from __future__ import annotations

import argparse
import os
import subprocess

from app.cli import CliError
from app.pbx.install import InstallError, find_install, install
from app.pbx.instance import runtime_dir_for
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
    rx = sub.add_parser(
        "rx", help="run an Asterisk CLI command in the gateway's Asterisk (e.g. 'logger reload' after rotation)",
        description="Talks to the running gateway's Asterisk through its control socket, like `asterisk -rx`.",
    )
    rx.add_argument("cli_command", metavar="COMMAND", help="an Asterisk CLI command, quoted")
    rx.set_defaults(handler=run_rx)


def run_install(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise CliError("`tgtrunk asterisk install` needs root (debootstrap and chroot); run it with sudo")
    settings = load_settings()
    try:
        install(settings.asterisk_root)
    except InstallError as exc:
        raise CliError(str(exc)) from None
    return 0


def run_rx(args: argparse.Namespace) -> int:
    settings = load_settings()
    found = find_install(settings.asterisk_root)
    if found is None:
        raise CliError("Asterisk is not installed; run `tgtrunk asterisk install` first")
    config = found.host_path(runtime_dir_for(found, settings.data_dir)) / "etc" / "asterisk.conf"
    if not config.exists():
        raise CliError(f"the gateway's Asterisk has never run for data directory {settings.data_dir}; start `tgtrunk serve`")
    command = found.command("-C", f"{runtime_dir_for(found, settings.data_dir)}/etc/asterisk.conf", "-rx", args.cli_command)
    result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0 or "Unable to connect to remote asterisk" in output:
        raise CliError(f"the gateway's Asterisk does not answer ({output or 'exit %d' % result.returncode}); "
                       f"is `tgtrunk serve` running?")
    if output:
        print(output)
    return 0
