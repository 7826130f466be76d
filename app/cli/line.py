"""`tgtrunk line …`: SIP connections between the gateway and PBXs."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields as dataclass_fields
from typing import Any

from sqlmodel import Session, select

from app.cli import CliError
from app.settings import load_settings
from app.sip import lines
from app.sip.line import LineError, LineRequest
from app.sip.lines import LineNotFound
from app.store.db import Database
from app.store.line import Line, LineMode, LineStatus

MODES_HELP = (
    "register: the PBX registers to the gateway with username/password (PBX -> gateway); "
    "outbound: the gateway registers to the PBX (gateway -> PBX); "
    "ip: no registration, calls from --host are trusted (IP <-> IP); "
    "stasis: a route on your own Asterisk (TGTRUNK_ARI_URL), entered with Stasis(tgtrunk,NAME,${EXTEN})"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("line", help="SIP connections (lines) to PBXs")
    sub = parser.add_subparsers(dest="line_command", metavar="ACTION", required=True)

    add = sub.add_parser("add", help="add a line", description=f"Add a line. Modes: {MODES_HELP}.")
    add.add_argument("name")
    add.add_argument("--mode", required=True, help="register | outbound | ip | stasis")
    _line_options(add)
    add.set_defaults(handler=add_line)

    change = sub.add_parser("set", help="change settings of a line (others stay as they are)")
    change.add_argument("name")
    change.add_argument("--mode", help="register | outbound | ip | stasis")
    _line_options(change)
    change.add_argument("--clear-trusted-ips", action="store_true", help="trust any address again")
    change.set_defaults(handler=set_line)

    sub.add_parser("list", help="list lines and their state").set_defaults(handler=list_lines)
    show = sub.add_parser("show", help="show one line")
    show.add_argument("name")
    show.set_defaults(handler=show_line)
    remove = sub.add_parser("remove", help="remove a line")
    remove.add_argument("name")
    remove.set_defaults(handler=remove_line)
    reset = sub.add_parser("reset-password", help="set a new password (generated and shown once unless given)")
    reset.add_argument("name")
    reset.add_argument("--password", help="the new password (outbound lines: the one the PBX expects)")
    reset.set_defaults(handler=reset_password)


def _line_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--username", help="register: the PBX's login here (default: line name); outbound: login at the PBX")
    p.add_argument("--password", help="register: generated and shown once when omitted; outbound: password at the PBX")
    p.add_argument("--realm", help="outbound: the PBX's digest realm (default: asterisk)")
    p.add_argument("--trusted-ip", action="append", dest="trusted_ips", metavar="CIDR",
                   help="register: accept this address/network only (repeatable)")
    p.add_argument("--server", help="outbound: the PBX's registrar HOST[:PORT]")
    p.add_argument("--domain", help="outbound: SIP domain (default: server host)")
    p.add_argument("--proxy", help="outbound: outbound proxy HOST[:PORT]")
    p.add_argument("--host", help="ip: the PBX's HOST[:PORT]")
    p.add_argument("--header", action="append", dest="headers", metavar="'F: V'",
                   help="ip: extra SIP header on calls sent to the PBX (repeatable)")
    p.add_argument("--pbx-number", help="extension on the PBX that Telegram calls ring")
    p.add_argument("--originate", metavar="TEMPLATE",
                   help="stasis: dial string for Telegram calls on your Asterisk, {number} = --pbx-number "
                        "(e.g. 'PJSIP/{number}', 'Local/{number}@from-internal')")
    p.add_argument("--codecs", help="comma-separated: alaw, ulaw, g722 (default alaw,ulaw)")
    p.add_argument("--dtmf", help="rfc4733 (default) | info | inband | auto")
    p.add_argument("--rule", action="append", dest="rules", metavar="'REGEX=REPL'",
                   help="number rule applied to dialled numbers, in order (repeatable)")
    p.add_argument("--callerid", action="append", dest="callerid_templates", metavar="TEMPLATE",
                   help="Caller ID template, e.g. '+{phone}' or '{userid}' (repeatable; first fully known wins)")
    p.add_argument("--callername", dest="callername_template", metavar="TEMPLATE", help="Caller Name template, e.g. '{name}'")
    p.add_argument("--identity-header", choices=("pai", "rpid", "both", "none"),
                   help="Caller ID also in P-Asserted-Identity (pai, default), Remote-Party-ID (rpid), both or none")
    p.add_argument("--callerid-in-from", action=argparse.BooleanOptionalAction, default=None,
                   help="outbound: From carries the Caller ID instead of the login (PBX knows the gateway by IP "
                        "or auth username)")
    p.add_argument("--priority", type=int, help="higher rings first for incoming Telegram calls (default 0)")
    p.add_argument("--max-calls", type=int, help="concurrent calls allowed on the line")
    p.add_argument("--account", help="the Telegram account this line serves")
    p.add_argument("--callback-number", metavar="NUMBER",
                   help="Callback: the number rung when a chat message holds none (or numbers are ignored)")
    p.add_argument("--callback-take-number", dest="callback_take_number", action="store_true", default=None,
                   help="Callback: dial the number written in the message (the default; "
                        "--no-callback-take-number: always the --callback-number)")
    p.add_argument("--no-callback-take-number", dest="callback_take_number", action="store_false",
                   help=argparse.SUPPRESS)
    p.add_argument("--record", action=argparse.BooleanOptionalAction, default=None,
                   help="record this line's calls and post them to the record chat after each call")
    p.add_argument("--record-chat", metavar="CHAT",
                   help="where recordings go: @username, a chat id (-100…) or me (default: the account's record "
                        "chat, else its Saved Messages)")


def _db() -> Database:
    return Database(load_settings().database_url)


def _changes_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The LineRequest fields given on the command line."""
    changes: dict[str, Any] = {}
    for f in dataclass_fields(LineRequest):
        value = getattr(args, f.name, None)
        if value is not None:
            changes[f.name] = tuple(value) if isinstance(value, list) else value
    return changes


def add_line(args: argparse.Namespace) -> int:
    with _line_errors():
        line, generated = lines.add_line(_db(), LineRequest(**_changes_from_args(args)))
    print(f"line {line.name} added ({line.mode.value})")
    if generated:
        print(f"password (shown once, stored only as a digest): {generated}")
    _print_hint(line)
    return 0


def set_line(args: argparse.Namespace) -> int:
    changes = _changes_from_args(args)
    changes.pop("name")
    if args.clear_trusted_ips:
        changes.setdefault("trusted_ips", ())
    with _line_errors():
        line, generated = lines.update_line(_db(), args.name, changes)
    print(f"line {line.name} updated")
    if generated:
        print(f"password (shown once, stored only as a digest): {generated}")
    return 0


def list_lines(args: argparse.Namespace) -> int:
    db = _db()
    with db.session() as session:
        lines = list(session.exec(select(Line).order_by(Line.priority.desc(), Line.name)))
        states = {s.name: s for s in session.exec(select(LineStatus))}
    if not lines:
        print("no lines; add one with `tgtrunk line add NAME --mode register`")
        return 0
    print(f"{'NAME':<16} {'MODE':<9} {'STATE':<16} {'PEER':<28} {'ACCOUNT':<12}")
    for line in lines:
        state = states[line.name].state if line.name in states else "-"
        peer = line.username if line.mode is LineMode.REGISTER else (line.server or line.host or "")
        print(f"{line.name:<16} {line.mode.value:<9} {state:<16} {peer:<28} {line.account or '-':<12}")
    return 0


def show_line(args: argparse.Namespace) -> int:
    db = _db()
    with db.session() as session:
        line = _get(session, args.name)
        status = session.get(LineStatus, line.name)
    data = line.model_dump(exclude={"id", "password_digest"})
    data["password"] = "set (stored as digest)" if line.password_digest else "-"
    data["state"] = f"{status.state} ({status.detail}, seen {status.updated_at:%Y-%m-%d %H:%M:%S} UTC)" if status else "unknown (is `tgtrunk serve` running?)"
    for key, value in data.items():
        if isinstance(value, list):
            value = ", ".join(value) or "-"
        elif hasattr(value, "value"):
            value = value.value
        print(f"{key:<20} {value if value not in (None, '') else '-'}")
    return 0


def remove_line(args: argparse.Namespace) -> int:
    with _line_errors():
        lines.remove_line(_db(), args.name)
    print(f"line {args.name} removed")
    return 0


def reset_password(args: argparse.Namespace) -> int:
    with _line_errors():
        password = lines.reset_password(_db(), args.name, args.password)
    if not args.password:
        print(f"new password for line {args.name} (shown once): {password}")
    else:
        print(f"password of line {args.name} changed")
    return 0


@contextmanager
def _line_errors() -> Iterator[None]:
    try:
        yield
    except LineNotFound as exc:
        raise CliError(f"{exc}; `tgtrunk line list` shows the lines") from None
    except LineError as exc:
        raise CliError(str(exc)) from None


def _get(session: Session, name: str) -> Line:
    line = session.exec(select(Line).where(Line.name == name)).first()
    if line is None:
        raise CliError(f"no line named {name!r}; `tgtrunk line list` shows the lines")
    return line


def _print_hint(line: Line) -> None:
    settings = load_settings()
    if line.mode is LineMode.REGISTER:
        print(f"point the PBX's trunk at {settings.sip_bind} with username {line.username} (realm tgtrunk)")
    elif line.mode is LineMode.OUTBOUND:
        print(f"the gateway will register to {line.server} as {line.username} while `tgtrunk serve` runs")
    elif line.mode is LineMode.STASIS:
        print(f"in your Asterisk's dialplan: Stasis({settings.ari_app},{line.name},${{EXTEN}}); Telegram calls "
              f"are originated as {line.originate}")
    else:
        print(f"calls from {line.host} are accepted without a password")
