"""`tgtrunk sim`: drive the simulated Telegram network of a gateway started with --simulate-telegram."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request

from app.cli import CliError
from app.settings import load_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sim", help="the simulated Telegram network (serve --simulate-telegram)")
    sub = parser.add_subparsers(dest="sim_command", metavar="ACTION", required=True)
    call = sub.add_parser("call", help="a simulated user calls the gateway account (the PBX rings)",
                          description="Demo users: echo, tone, busy, private, noanswer.")
    call.add_argument("user", help="the simulated user, e.g. echo or @tone")
    call.set_defaults(handler=run_call)


def run_call(args: argparse.Namespace) -> int:
    settings = load_settings()
    token_path = settings.admin_token_path
    if not token_path.exists():
        raise CliError("the gateway has not run yet here (no admin token); start `tgtrunk serve --simulate-telegram`")
    bind = settings.http_bind
    host = "127.0.0.1" if bind.host in ("0.0.0.0", "") else bind.host
    request = urllib.request.Request(
        f"http://{host}:{bind.port}/api/sim/call", method="POST",
        data=json.dumps({"user": args.user.lstrip("@")}).encode(),
        headers={"Authorization": f"Bearer {token_path.read_text().strip()}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            json.load(response)
    except urllib.error.HTTPError as exc:
        raise CliError(exc.read().decode().strip() or str(exc)) from None
    except OSError as exc:
        raise CliError(f"the gateway's admin API at {host}:{bind.port} does not answer ({exc}); is `tgtrunk serve` running?") from None
    print(f"{args.user} is calling the gateway account; the line's PBX extension should ring")
    return 0
