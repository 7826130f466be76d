"""`tgtrunk status`: Asterisk, the gateway process, lines and bans at a glance."""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from typing import Any

from sqlmodel import select

from app.pbx.install import InstallError, find_install
from app.settings import load_settings
from app.store.ban import Ban
from app.store.db import Database
from app.store.line import Line, LineStatus, utcnow


# Exit codes, as for an LSB init script's status: monitors and container health checks read them.
HEALTHY, UNHEALTHY, NOT_RUNNING = 0, 1, 3


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status", help="show the gateway's state: Asterisk, lines, bans",
        description="Exit code 0: running and healthy; 1: running but a part fails (or /healthz does not answer); "
                    "3: not running.",
    )
    parser.add_argument("--health", action="store_true",
                        help="only the running gateway's /healthz, in one line (for health checks)")
    parser.set_defaults(handler=run)


def _serve_pid(path) -> int | None:
    try:
        pid = int(path.read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    pid = _serve_pid(settings.pid_path)
    if args.health:
        if not pid:
            print("gateway: not running")
            return NOT_RUNNING
        return HEALTHY if _print_health(settings.http_bind.host, settings.http_bind.port, brief=True) else UNHEALTHY
    external = settings.external_ari
    if external:
        print(f"mode:     Stasis application {external.app} on your own Asterisk at {external.url} (TGTRUNK_ARI_URL)")
        print(f"gateway:  {'running (pid %d)' % pid if pid else 'not running (start it with `tgtrunk serve`)'}")
        print(f"ports:    externalMedia RTP to {external.media_address} (UDP, a random port per call), admin API "
              f"{settings.http_bind}")
    else:
        try:
            install = find_install(settings.asterisk_root)
            where = "not installed (run `tgtrunk asterisk install`)" if install is None else \
                install.version + (f" in {install.root}" if install.root else " (system)")
        except InstallError as exc:
            where = str(exc)
        print("mode:     bundled Asterisk")
        print(f"asterisk: {where}")
        print(f"gateway:  {'running (pid %d), SIP on %s' % (pid, settings.sip_bind) if pid else 'not running (start it with `tgtrunk serve`)'}")
        print(f"ports:    SIP {settings.sip_bind} (UDP and TCP), RTP {settings.rtp_ports.start}-{settings.rtp_ports.end} "
              f"(UDP), ARI 127.0.0.1:{settings.ari_port}, admin API {settings.http_bind}")
    if settings.external_address:
        local = ", ".join(settings.local_nets) or "none"
        print(f"nat:      public address {settings.external_address} in SDP and Contact; local networks: {local}")
    code = NOT_RUNNING
    if pid:
        code = HEALTHY if _print_health(settings.http_bind.host, settings.http_bind.port) else UNHEALTHY
    db = Database(settings.database_url)
    now = utcnow()
    with db.session() as session:
        lines = list(session.exec(select(Line).order_by(Line.name)))
        states = {s.name: s for s in session.exec(select(LineStatus))}
        bans = list(session.exec(select(Ban).where(Ban.until > now).order_by(Ban.until)))
    print(f"lines:    {len(lines)}")
    for line in lines:
        state = states.get(line.name)
        text = f"{state.state} ({state.detail})" if state else "unknown"
        print(f"  {line.name:<16} {line.mode.value:<9} {text}")
    print(f"bans:     {len(bans)}")
    for ban in bans:
        left = int((ban.until - now).total_seconds())
        print(f"  {ban.address:<16} {ban.failures} failures ({ban.reason}), {left} s left")
    return code


def _print_health(host: str, port: int, brief: bool = False) -> bool:
    """The running gateway's /healthz: which part fails, and each background task. True when healthy."""
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=5) as response:
            health: dict[str, Any] = json.load(response)
    except urllib.error.HTTPError as exc:  # 503: something fails, the body says what
        health = json.loads(exc.read() or b"{}")
    except (OSError, ValueError) as exc:
        print(f"health:   unknown (the admin API at {host}:{port} does not answer: {exc})")
        return False
    failing = [name for name, part in health.items() if isinstance(part, dict) and not part.get("ok")]
    print(f"health:   {'ok' if health.get('ok') else 'FAILING: ' + ', '.join(failing)}")
    if brief:
        return bool(health.get("ok"))
    asterisk = health.get("asterisk", {})
    if asterisk.get("mode") == "external":
        print(f"asterisk: {asterisk.get('version') or 'version unknown'} at {asterisk.get('url')}, application "
              f"{asterisk.get('app')} {'registered' if asterisk.get('app_registered') else 'NOT registered'}, "
              f"{asterisk.get('restarts', 0)} reconnection(s)")
    database = health.get("database", {})
    if database.get("error") or database.get("held_rows"):
        print(f"  database cannot be written: {database.get('error')}; {database.get('held_rows', 0)} row(s) held in memory")
    for name, task in health.get("tasks", {}).items():
        if isinstance(task, dict):
            error = f", last error: {task['last_error']}" if task.get("last_error") else ""
            print(f"  task {name:<20} {task['state']}, {task['restarts']} restart(s){error}")
    for name, account in health.get("telegram", {}).get("accounts", {}).items():
        if not account.get("connected"):
            print(f"  Telegram account {name} is not connected: {account.get('error') or 'connection lost'}")
    return bool(health.get("ok"))
