"""`tgtrunk sim`: drive the simulated Telegram network of a gateway started with --simulate-telegram."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.parse
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
    message = sub.add_parser("message", help="a simulated user writes to the gateway account")
    message.add_argument("user")
    message.add_argument("text")
    message.set_defaults(handler=run_message)
    press = sub.add_parser("press", help="a simulated user presses a button in their chat (prints the toast)")
    press.add_argument("user")
    press.add_argument("button", help="the button's label, e.g. Redial")
    press.set_defaults(handler=run_press)
    chat = sub.add_parser("chat", help="what a simulated user received from the gateway, with the buttons")
    chat.add_argument("user")
    chat.set_defaults(handler=run_chat)


def run_message(args: argparse.Namespace) -> int:
    _api("POST", "/api/sim/message", {"user": args.user.lstrip("@"), "text": args.text})
    print(f"{args.user} wrote {args.text!r} to the gateway account; see `tgtrunk sim chat {args.user}`")
    return 0


def run_press(args: argparse.Namespace) -> int:
    answer = _api("POST", "/api/sim/press", {"user": args.user.lstrip("@"), "button": args.button})
    print(answer["toast"] or "(pressed; no toast)")
    return 0


def run_chat(args: argparse.Namespace) -> int:
    user = urllib.parse.quote(args.user.lstrip("@"))
    for message in _api("GET", f"/api/sim/chat?user={user}", None):
        buttons = "".join(f" [{label}]" for label in message["buttons"])
        print(message["text"] + buttons)
    return 0


def _api(method: str, path: str, body: object) -> object:
    settings = load_settings()
    token_path = settings.admin_token_path
    if not token_path.exists():
        raise CliError("the gateway has not run yet here (no admin token); start `tgtrunk serve --simulate-telegram`")
    bind = settings.http_bind
    host = "127.0.0.1" if bind.host in ("0.0.0.0", "") else bind.host
    request = urllib.request.Request(
        f"http://{host}:{bind.port}{path}", method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token_path.read_text().strip()}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        raise CliError(exc.read().decode().strip() or str(exc)) from None
    except OSError as exc:
        raise CliError(f"the gateway's admin API at {host}:{bind.port} does not answer ({exc}); is `tgtrunk serve` running?") from None


def run_call(args: argparse.Namespace) -> int:
    _api("POST", "/api/sim/call", {"user": args.user.lstrip("@")})
    print(f"{args.user} is calling the gateway account; the line's PBX extension should ring")
    return 0
