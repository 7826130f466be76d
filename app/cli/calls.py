"""`tgtrunk calls`: the call records, newest first."""

from __future__ import annotations

import argparse

from sqlmodel import select

from app.settings import load_settings
from app.store.callrecord import CallRecord, recording_where
from app.store.db import Database


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("calls", help="list call records (both directions, answered or not)")
    parser.add_argument("--last", type=int, default=20, metavar="N", help="how many (default 20)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    db = Database(load_settings().database_url)
    with db.session() as session:
        records = list(session.exec(select(CallRecord).order_by(CallRecord.id.desc()).limit(args.last)))
    if not records:
        print("no calls yet")
        return 0
    print(f"{'STARTED (UTC)':<19} {'DIRECTION':<15} {'LINE':<12} {'DIALLED':<16} {'PEER':<18} "
          f"{'CODE':>4} {'SECS':>5}  {'RTP IN/LOST/OUT':<16} REASON")
    for r in records:
        peer = f"@{r.peer_username}" if r.peer_username else (r.peer_phone or (str(r.peer_id) if r.peer_id else "-"))
        direction = "SIP->Telegram" if r.direction == "sip-to-telegram" else "Telegram->SIP"
        if r.trigger:
            direction = f"{r.trigger}->SIP"  # a call the chat started (redial, lines, callback)
        media = f"{r.packets_in}/{r.lost_in}/{r.packets_out}"
        print(f"{r.started_at:%Y-%m-%d %H:%M:%S} {direction:<15} {r.line or '-':<12} {r.dialled or '-':<16} "
              f"{peer:<18} {r.result_code or 0:>4} {r.duration_s:>5}  {media:<16} {r.reason}")
        if r.recording_state:
            print(f"{'':<19} recording: {recording_where(r)}")
    return 0
