"""`tgtrunk account`: log Telegram accounts in and out, list them, and keep their session settings.

The parser is built here without importing pyrogram (1.8 s): every other command stays fast. The commands
themselves live in `account_commands`, imported when one runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from app.store.account import SETTING_FLAGS


def _lazy(name: str) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        from app.cli import account_commands

        return getattr(account_commands, name)(args)

    return handler


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("account", help="Telegram accounts used by the gateway",
                                   description="Log in Telegram user accounts and manage their session settings.")
    sub = parser.add_subparsers(dest="account_command", metavar="ACTION", required=True)

    p = sub.add_parser("login", help="log in a Telegram account (code, then 2FA password if set)")
    p.add_argument("name", help="a short name for the account, e.g. sales")
    p.add_argument("--phone", required=True, help="the account's phone number, +CC…")
    p.add_argument("--api-id", type=int, help="Telegram API id (default: TGTRUNK_API_ID)")
    p.add_argument("--api-hash", help="Telegram API hash (default: TGTRUNK_API_HASH)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--apply-privacy", dest="privacy", action="store_true", default=None,
                       help="apply the recommended Telegram settings without asking")
    group.add_argument("--no-privacy", dest="privacy", action="store_false",
                       help="do not touch the account's Telegram settings")
    p.set_defaults(handler=_lazy("cmd_login"))

    p = sub.add_parser("list", help="list logged-in accounts")
    p.set_defaults(handler=_lazy("cmd_list"))

    p = sub.add_parser("show", help="show one account and its session settings")
    p.add_argument("name")
    p.set_defaults(handler=_lazy("cmd_show"))

    p = sub.add_parser("logout", help="terminate the Telegram authorization and delete the stored session")
    p.add_argument("name")
    p.set_defaults(handler=_lazy("cmd_logout"))

    p = sub.add_parser("privacy", help="apply the recommended Telegram settings again")
    p.add_argument("name")
    p.set_defaults(handler=_lazy("cmd_privacy"))

    p = sub.add_parser("settings", help="change the session settings (DTMF, Redial, Lines, Messages, …)")
    p.add_argument("name")
    helps = {
        "dtmf_in": "DTMF keypad for incoming Telegram calls (Telegram → SIP)",
        "dtmf_out": "DTMF keypad for outgoing calls to Telegram (SIP → Telegram)",
        "redial": "Redial button in the chat after a call",
        "lines": "Lines button in the chat after a call",
        "messages": "react to text messages (Messages processing)",
        "callback": "Callback: a message makes the gateway call the sender back",
    }
    for flag in SETTING_FLAGS:
        option = flag.replace("_", "-")
        p.add_argument(f"--{option}", dest=flag, action="store_true", default=None, help=f"{helps[flag]} (--no-{option}: off)")
        p.add_argument(f"--no-{option}", dest=flag, action="store_false", help=argparse.SUPPRESS)
    p.add_argument("--autoreply", metavar="TEMPLATE",
                   help="sent in reply to a message ('' turns it off); {text} {phone} {username} {userid} {name}")
    p.add_argument("--autoreply-interval", dest="autoreply_interval_s", type=int, metavar="SECONDS",
                   help="at most one autoreply per user in this time (default 600)")
    p.add_argument("--inline-bot", metavar="@NAME",
                   help="messages no line takes go to this external inline bot ('' turns it off)")
    p.add_argument("--inline-query", metavar="TEMPLATE",
                   help="the query the inline bot gets (default '{text}'); same fields as --autoreply")
    p.add_argument("--max-calls", type=int, metavar="N",
                   help="concurrent calls on this account, both directions (0: no limit); more are refused with 503")
    p.add_argument("--record", action=argparse.BooleanOptionalAction, default=None,
                   help="record the account's calls and post them to the record chat after each call")
    p.add_argument("--record-chat", metavar="CHAT",
                   help="where recordings go: @username, a chat id (-100…) or me (Saved Messages, the default); "
                        "'' unsets it")
    p.set_defaults(handler=_lazy("cmd_settings"))

    p = sub.add_parser("admin", help="administrators: who is told when the account needs a person",
                       description="An administrator (Telegram user id or @username) gets a chat message when the "
                                   "session is revoked, the account is limited, a line's registration fails, …")
    admin = p.add_subparsers(dest="admin_action", metavar="ADMIN_ACTION", required=True)
    for action, helptext in (("add", "add an administrator"), ("remove", "remove an administrator")):
        a = admin.add_parser(action, help=helptext)
        a.add_argument("name", help="the account")
        a.add_argument("who", help="Telegram user id or @username")
        a.set_defaults(handler=_lazy(f"cmd_admin_{action}"))
    a = admin.add_parser("list", help="list the administrators (of one account, or all)")
    a.add_argument("name", nargs="?")
    a.set_defaults(handler=_lazy("cmd_admin_list"))


# --- helpers ------------------------------------------------------------------------------------------

