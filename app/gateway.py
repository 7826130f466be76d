"""The gateway process: the wiring of every part (Asterisk, ARI, accounts, lines, security log, admin web, the
Stasis app) and its background tasks, started in order and stopped in the reverse order (one AsyncExitStack)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import Any

from aiohttp import web

from app.ari.channel import REJECT_CONTEXT, Channel
from app.ari.client import AriClient
from app.calls.accounts import Accounts
from app.calls.adminwatch import SessionAccountSender, line_state_changed, watch_accounts
from app.calls.chatside import ChatSide
from app.calls.failedcalls import FailedCallWatch
from app.calls.mediabridge import MEDIA_SAMPLE_RATE
from app.calls.recordings import RecordingPoster
from app.calls.stasis import APP_NAME, StasisApp
from app.notify import Notifier
from app.pbx.external import ExternalAsterisk
from app.pbx.install import AsteriskInstall, InstallError, find_install
from app.pbx.instance import AsteriskInstance, InstanceConfig, runtime_dir_for
from app.pbx.supervisor import AsteriskSupervisor
from app.settings import Settings
from app.sip.linesync import LineSync
from app.sip.security import SecurityWatcher
from app.store.db import Database
from app.store.secretfile import private_dir, secret_token
from app.supervise import TaskSupervisor
from app.telegram.callengine import limit_arenas
from app.transportcycle import break_transport_cycles
from app.web.admin import build_app
from app.web.chat_api import add_chat_routes
from app.web.pages import PageContext, add_pages
from app.workers.pool import WorkerPool

log = logging.getLogger(__name__)


def ari_password(settings: Settings) -> str:
    """Generated on first start, kept 0600 in the data directory (written into Asterisk's config at each start,
    so an empty or damaged one is simply replaced)."""
    return secret_token(settings.ari_password_path, "the ARI password")


def require_install(settings: Settings) -> AsteriskInstall:
    install = find_install(settings.asterisk_root)
    if install is None:
        raise InstallError("Asterisk is not installed; run `tgtrunk asterisk install` first (as root)")
    return install


class Gateway:
    def __init__(self, settings: Settings, accounts: Accounts | None = None, simulate_telegram: bool = False,
                 bot_client: Any = None) -> None:
        self.settings = settings
        self.bot_client = bot_client  # a pyrogram Client logging in as the operator's bot (else from the token)
        self.chat_side: ChatSide | None = None
        self.accounts = accounts or Accounts()
        self.simulate_telegram = simulate_telegram
        self.demo = None
        private_dir(settings.data_dir)
        break_transport_cycles()
        # Whatever was started is stopped by close(), in the reverse order, also after a failed start.
        self._stack = contextlib.AsyncExitStack()
        self.db = Database(settings.database_url)
        self._stack.callback(self.db.close)
        self.instance: AsteriskInstance | None = None
        self.security: SecurityWatcher | None = None
        self.supervisor: AsteriskSupervisor | ExternalAsterisk
        external = settings.external_ari
        if external is not None:
            # The user's own Asterisk: nothing is started, written or pushed there; only the Stasis app runs.
            self.ari = AriClient("", 0, external.user, external.password, external.app, base_url=external.url)
            self._stack.push_async_callback(self.ari.close)
            self.lines = LineSync(self.ari, self.db, routes_only=True)
        else:
            install = require_install(settings)
            password = ari_password(settings)
            self.instance = AsteriskInstance(
                install,
                runtime_dir_for(install, settings.data_dir),
                InstanceConfig(
                    sip_bind=str(settings.sip_bind),
                    ari_port=settings.ari_port,
                    ari_password=password,
                    rtp_start=settings.rtp_ports.start,
                    rtp_end=settings.rtp_ports.end,
                    external_address=settings.external_address.host if settings.external_address else None,
                    external_port=settings.external_address.port if settings.external_address else None,
                    local_nets=settings.local_nets,
                ),
            )
            self.ari = AriClient("127.0.0.1", settings.ari_port, APP_NAME, password, APP_NAME)
            self._stack.push_async_callback(self.ari.close)
            self.lines = LineSync(
                self.ari, self.db, self.instance.host_dir / "etc" / "pjsip_bans.conf",
                reload_pjsip=self._reload_pjsip, show_registrations=self._show_registrations,
                memory_bans=lambda: self.security.active_bans() if self.security else (),
            )
            self.security = SecurityWatcher(
                self.instance.log_dir / "security.log", self.db, self.lines.line_for_endpoint,
                settings.ban_threshold, settings.ban_window_s, settings.ban_duration_s,
            )
        self.tasks = TaskSupervisor()
        self.notifier = Notifier(self.db, SessionAccountSender(self.accounts), lambda: self.accounts.handles,
                                 settings.notify_fold_s)
        private_dir(settings.recordings_dir)
        self.stasis = StasisApp(self.ari, self.db, self.lines, self.accounts, settings.max_calls,
                                settings.recordings_dir, FailedCallWatch(self.notifier, settings.failed_calls_notify),
                                app=settings.ari_app, media_address=settings.media_address,
                                reject_context=None if external else REJECT_CONTEXT)
        self.recordings = RecordingPoster(self.db, self.accounts)
        if external is not None:
            self.supervisor = ExternalAsterisk(self.ari, external, on_ready=self._on_asterisk_ready,
                                               on_lost=self.stasis.on_asterisk_lost)
        else:
            assert self.instance is not None
            self.supervisor = AsteriskSupervisor(self.instance, self.ari, on_ready=self._on_asterisk_ready,
                                                 on_lost=self.stasis.on_asterisk_lost)
        self.lines.on_state = lambda line, old, new: line_state_changed(self.notifier, line, old, new)
        self._web: web.AppRunner | None = None
        self.pool: WorkerPool | None = None  # with TGTRUNK_WORKERS > 0

    async def _on_asterisk_ready(self) -> None:
        if self.supervisor.restarts:
            self.notifier.notify("asterisk-restarted", self.supervisor.restart_notice())
        self.lines.forget()
        await self.lines.sync()

    async def _hang_up_all(self) -> None:
        if not self.supervisor.ready.is_set() or (self.instance is not None and self.instance.pid is None):
            return
        try:
            if self.instance is None:  # the user's Asterisk: only the channels of our calls
                channels = [Channel(self.ari, cid) for cid in list(self.stasis.by_channel)]
                channels += [s.media.external for s in list(self.stasis.live) if s.media and s.media.external]
            else:
                channels = await Channel.all(self.ari)
            for channel in channels:
                await channel.hangup()
        except Exception as exc:  # noqa: BLE001 - shutting down whatever happens
            log.warning("could not end every call before stopping: %s", exc)

    async def _reload_pjsip(self) -> None:
        await self.ari.request("PUT", "/asterisk/modules/res_pjsip.so")

    async def _show_registrations(self) -> str:
        assert self.instance is not None
        return await self.instance.rx("pjsip show registrations")

    async def start_workers(self) -> None:
        """The media worker processes (TGTRUNK_WORKERS), before any account uses them."""
        if self.settings.workers <= 0:
            return
        pool = WorkerPool(self.settings.workers)
        self._stack.push_async_callback(pool.close)  # after the accounts, whose calls they carry, stopped
        await pool.start()
        self.pool = pool
        log.info("%d media worker process(es): %s", len(pool.links),
                 ", ".join(f"pid {link.pid}" for link in pool.links))

    async def start_telegram(self) -> None:
        await self.start_workers()
        self._stack.push_async_callback(self._stop_telegram)
        if self.settings.telegram_sim and not self.accounts.handles:
            await self._connect_external_sim(self.settings.telegram_sim)
        if not self.accounts.handles:
            await self.accounts.start_stored(self.db, self.settings)
        if self.accounts.handles:
            if self.simulate_telegram:
                log.info("a Telegram account is logged in: --simulate-telegram is ignored")
        elif self.simulate_telegram:
            from app.telegram.sim.demo import DemoTelegram

            print("starting the simulated Telegram network (demo users: @echo @tone @busy @private @noanswer)…",
                  flush=True)
            self.demo = DemoTelegram()
            from app.telegram.sim.demo import DEMO_SETTINGS

            self.accounts.add("demo", await self.demo.start(), **DEMO_SETTINGS)
            self.bot_client = self.bot_client or self.demo.bot_client()
        else:
            log.warning("no Telegram account: calls are refused with 503 until `tgtrunk account login NAME` "
                        "(or start with --simulate-telegram)")
        if self.pool is not None:
            await self.accounts.use_workers(self.pool)
        self.stasis.attach_accounts()
        self.chat_side = ChatSide(self.stasis, self.db, self.accounts, await self._start_bot())
        self._stack.push_async_callback(self._stop_chat_side)  # before the accounts it sends through stop
        self.chat_side.attach()

    async def _start_bot(self) -> Any:
        """The operator's bot (buttons under the gateway's messages), if one is configured; None otherwise."""
        from app.telegram.bot import InlineBot

        client = self.bot_client
        if client is None:
            token = self.settings.bot_token or _read_bot_token(self.settings)
            if not token:
                return None
            client = _bot_client(token)
            if client is None:
                return None
        try:
            return await InlineBot(client, lambda user, query: None).start()
        except Exception as exc:  # noqa: BLE001 - without the bot the text commands still work
            log.error("the bot did not start (%s); the chat menus are sent as text commands", exc)
            return None

    async def _stop_chat_side(self) -> None:
        assert self.chat_side is not None
        await self.chat_side.stop()
        if self.chat_side.bot is not None:
            await self.chat_side.bot.stop()

    async def _stop_telegram(self) -> None:
        await self.accounts.stop()
        if self.demo is not None:
            await self.demo.stop()

    async def _connect_external_sim(self, address: str) -> None:
        """A simulated network in its own process (`python -m app.telegram.sim`), e.g. for the bench."""
        from app.telegram.account import TelegramAccount
        from app.telegram.sim import RemoteSimClient, SimControl

        host, _, port = address.rpartition(":")
        info = await SimControl(host, int(port)).info()
        client = RemoteSimClient("gateway", host, int(port), user_id=info["gateway_user_id"])
        account = TelegramAccount(client, ring_timeout=60.0, sample_rate=MEDIA_SAMPLE_RATE)
        await account.start()
        self.accounts.add("sim", account)
        log.info("using the simulated Telegram network at %s as account %s", address, info["gateway_phone"])

    def asterisk_state(self) -> dict[str, Any]:
        return self.supervisor.state()

    def status(self) -> dict[str, Any]:
        return {
            "asterisk": self.asterisk_state(),
            "lines": sorted(self.lines.lines),
            "accounts": sorted(self.accounts.handles),
            "active_calls": dict(self.stasis.active_per_line),
            "simulated_telegram": self.demo is not None,
            "tasks": self.tasks.status(),
        }

    def live_calls(self) -> list[dict[str, Any]]:
        """The calls running now with their media counters so far, for the admin pages."""
        calls = []
        for session in self.stasis.live:
            record = session.record
            media = session.media
            # A call in a media worker: the counters it last sent (every second).
            counters = (media.relay.stats if media.relay else media.remote.counters if media.remote else None) \
                if media else None
            peer = session.tg_call.peer if session.tg_call else None
            calls.append({
                "direction": record.direction, "line": record.line, "account": record.account,
                "dialled": record.dialled,
                "peer": (f"@{peer.username}" if peer.username else peer.phone or str(peer.id)) if peer else None,
                "started_at": record.started_at.strftime("%H:%M:%S"), "answered": record.answered_at is not None,
                **{key: getattr(counters, key, 0) for key in ("packets_in", "lost_in", "late_in", "packets_out")},
                "jitter_ms": round(counters.jitter_ms, 1) if counters else 0.0,
            })
        return sorted(calls, key=lambda call: call["started_at"])

    def health(self) -> dict[str, Any]:
        """What /healthz answers: each part with ok true/false; `ok` is all of them."""
        parts = {
            "asterisk": {"ok": self.supervisor.ready.is_set(), **self.asterisk_state()},
            "database": {"ok": self.db.write_error is None, "error": self.db.write_error,
                         "held_rows": len(self.db.held)},
            "tasks": {"ok": self.tasks.ok, **self.tasks.status()},
            "telegram": self.accounts.health(),
        }
        if self.pool is not None:
            parts["media_workers"] = self.pool.health()
        return {"ok": all(part["ok"] for part in parts.values()), **parts}

    async def start_web(self) -> None:
        token = secret_token(self.settings.admin_token_path, "the admin token")
        app = build_app(self.db, token, self.status, self._sim_call, self.health)
        add_chat_routes(app, self.db, lambda: self.demo)
        add_pages(app, PageContext(self.db, token, self.settings.admin_password_path, self.status, self.live_calls),
                  secret_token(self.settings.data_dir / "web-session-key", "the admin pages' session key").encode())
        self._web = web.AppRunner(app, access_log=None)
        await self._web.setup()
        self._stack.push_async_callback(self._web.cleanup)
        bind = self.settings.http_bind
        await web.TCPSite(self._web, bind.host, bind.port).start()

    async def _sim_call(self, user: str) -> None:
        if self.demo is None:
            raise LookupError("the gateway is not running with --simulate-telegram")
        await self.demo.call_gateway(user)

    async def run(self, stop: asyncio.Event) -> None:
        await self.supervisor.check()  # a wrong URL, password or Asterisk is told before anything starts
        # The admin API's listening socket is opened before NTgCalls starts: a socket opened right after it
        # was seen to stop listening now and then (see docs/decisions.md).
        await self.start_web()
        await self.start_telegram()
        self._stack.push_async_callback(self.notifier.close)  # before the accounts it sends through stop
        self._stack.push_async_callback(self.tasks.stop)  # every background task, the last started first
        # The events websocket first: Asterisk is ready only once it has registered the Stasis application.
        self.tasks.start("ari-events", self.ari.run_events)
        self._stack.push_async_callback(self.supervisor.stop)
        await self.supervisor.start()
        self._stack.push_async_callback(self._hang_up_all)
        self.tasks.start("asterisk-supervisor", self.supervisor.watch)
        self.tasks.start("line-sync", lambda: self.lines.run(self.supervisor.ready))
        if self.security is not None:
            self.tasks.start("security-log", self.security.run)
        self.tasks.start("account-settings", lambda: self.accounts.watch_settings(self.db))
        self.tasks.start("held-rows", self.db.write_held)
        if self.pool is not None:
            self.tasks.start("media-workers", self.pool.supervise)
        self.tasks.start("recordings", self.recordings.run)
        self.tasks.start("account-watch", lambda: watch_accounts(
            self.accounts, self.notifier, self.settings.account_check_s, self.settings.flood_notify_s))
        await asyncio.wait_for(self.ari.connected.wait(), 10)
        if self.instance is None:
            log.info("tgtrunk is running: %s, externalMedia RTP to %s, admin API on http://%s, %d route(s)",
                     self.supervisor.describe(), self.settings.media_address, self.settings.http_bind,
                     len(self.lines.lines))
        else:
            log.info("tgtrunk is running: %s, admin API on http://%s, %d line(s)", self.supervisor.describe(),
                     self.settings.http_bind, len(self.lines.lines))
        await stop.wait()

    async def close(self) -> None:
        log.info("stopping: ending calls%s", "" if self.instance is None else " and Asterisk")
        await self._stack.aclose()


async def serve(settings: Settings, simulate_telegram: bool = False) -> None:
    limit_arenas()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    gateway = Gateway(settings, simulate_telegram=simulate_telegram)
    _write_pid(settings.pid_path)
    try:
        await gateway.run(stop)
    finally:
        await gateway.close()
        settings.pid_path.unlink(missing_ok=True)


def _read_bot_token(settings: Settings) -> str | None:
    from app.store.secretfile import tighten

    path = settings.bot_token_path
    if not path.exists():
        return None
    tighten(path, 0o600)
    return path.read_text().strip() or None


def _bot_client(token: str) -> Any:
    api_id, api_hash = os.environ.get("TGTRUNK_API_ID"), os.environ.get("TGTRUNK_API_HASH")
    if not api_id or not api_hash:
        log.error("a bot token is set but TGTRUNK_API_ID/TGTRUNK_API_HASH are not: the bot cannot log in; "
                  "the chat menus are sent as text commands")
        return None
    from pyrogram import Client

    return Client("tgtrunk-bot", api_id=int(api_id), api_hash=api_hash, bot_token=token, in_memory=True,
                  workers=2, no_updates=False)


def _write_pid(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(os.getpid()))
