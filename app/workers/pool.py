"""The gateway's side of the media workers: the pool (started, watched, restarted), one link per worker
process, and `RemoteCallEngine`, which gives `PrivateCall` CallEngine's API with each call's NTgCalls in a worker.

A call is placed on the worker with the fewest calls. A worker that dies ends only its own calls: their pending
requests fail and each call hears `on_failure(CallFailed("media worker lost"))`; the pool starts a new process in
its place (a worker dying again within `FAST_DEATH_S` of its start waits `RESTART_BACKOFF_S` first).

A worker that has taken `calls_per_worker` calls is replaced: a fresh process takes its place for new calls, and
the old one is stopped once its last call is released. NTgCalls 3.0.5 keeps part of every call for as long as its
process lives (bench/README.md, "Memory per call"); only the end of the process gives it back.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import ntgcalls

from app.telegram.callengine import SAMPLE_RATE, CallMedia, MediaSinks
from app.telegram.errors import CallFailed
from app.workers import protocol as p

log = logging.getLogger(__name__)

WORKER_LOST = "media worker lost"
FAST_DEATH_S = 5.0
RESTART_BACKOFF_S = 2.0
STOP_TIMEOUT_S = 15.0  # a worker stops its NTgCalls calls before it exits (up to a few seconds each)
CALLS_PER_WORKER = 200  # ~1.4 KiB of native heap a call only the process' end frees; a start: ~0.3 s of CPU
_WORKER_SETTINGS = ("TGTRUNK_LOG_LEVEL", "TGTRUNK_LOG_FORMAT")
_APP_ROOT = str(Path(__file__).resolve().parents[2])  # so the worker imports this very `app`


class WorkerLink:
    """One worker process and the socket to it."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: asyncio.subprocess.Process | None = None
        self.generation = 0  # bumped at every (re)start: a call belongs to one generation
        self.started_at = 0.0
        self.restarts = 0
        self.placed = 0  # calls placed on this process
        self.retiring = False  # replaced: takes no new call, stopped once its calls are released
        self.calls: dict[int, RemoteCall] = {}
        self.idle = asyncio.Event()  # set while no call is on it
        self.idle.set()
        self._writer: asyncio.StreamWriter | None = None
        self._replies: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._reader_task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def up(self) -> bool:
        return self._writer is not None

    async def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # No TGTRUNK_* secret (session key, API hash, bot token) is the worker's business: only how to log.
        env = {k: v for k, v in os.environ.items() if not k.startswith("TGTRUNK_") or k in _WORKER_SETTINGS}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_APP_ROOT, env.get("PYTHONPATH")]))
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "app.workers.worker", str(theirs.fileno()),
                pass_fds=(theirs.fileno(),), env=env, stdin=asyncio.subprocess.DEVNULL)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        reader, self._writer = await asyncio.open_unix_connection(sock=ours)
        self.generation += 1
        self.started_at = time.monotonic()
        self._reader_task = asyncio.create_task(self._read(reader), name=f"media-worker-{self.index}")
        log.info("media worker %d started (pid %d)", self.index, self.pid)

    async def request(self, generation: int, message: p.Request) -> Any:
        if self._writer is None or generation != self.generation:
            raise CallFailed(WORKER_LOST)
        message.id = next(self._ids)
        reply = self._replies[message.id] = asyncio.get_running_loop().create_future()
        self._writer.write(p.pack(message))
        result: p.Reply = await reply
        if result.error is not None:
            raise result.error
        return result.value

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                message = await p.read_message(reader)
                if isinstance(message, p.Reply):
                    reply = self._replies.pop(message.id, None)
                    if reply is not None and not reply.done():
                        reply.set_result(message)
                elif (call := self.calls.get(message.call)) is not None:
                    call.deliver(message)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:  # noqa: BLE001 - a garbled stream: the worker is treated as lost
            log.exception("media worker %d sent something unreadable", self.index)
        finally:
            self.lost()

    def lost(self) -> None:
        """The worker's end closed: every request waiting fails and every call on it ends."""
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        replies, self._replies = self._replies, {}
        for reply in replies.values():
            if not reply.done():
                reply.set_exception(CallFailed(WORKER_LOST))
                reply.exception()
        calls, self.calls = self.calls, {}
        self.idle.set()
        for call in calls.values():
            call.lose()

    def add(self, call: "RemoteCall") -> None:
        self.calls[call.key] = call
        self.placed += 1
        self.idle.clear()

    def remove(self, call: "RemoteCall") -> None:
        if self.calls.get(call.key) is call:
            del self.calls[call.key]
            if not self.calls:
                self.idle.set()

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.close()  # the worker stops its calls and exits at the end of its stream
        if self.process is not None and self.process.returncode is None:
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
            except asyncio.TimeoutError:
                log.warning("media worker %d (pid %d) did not stop in %.0f s; killed", self.index, self.pid,
                            STOP_TIMEOUT_S)
                self.process.kill()
                await self.process.wait()
        if self._reader_task is not None:
            await asyncio.wait({self._reader_task}, timeout=1)


class RemoteCall:
    """One call's handle on its worker."""

    def __init__(self, link: WorkerLink, key: int, media: CallMedia) -> None:
        self.link = link
        self.key = key
        self.generation = link.generation
        self.media: CallMedia | None = media
        self.counters: p.Counters | None = None  # the latest from the worker, while the call's RTP is open

    def request(self, message: p.Request) -> Awaitable[Any]:
        return self.link.request(self.generation, message)

    def deliver(self, message: p.Signaling | p.State | p.Counters) -> None:
        if isinstance(message, p.Counters):
            self.counters = message
            return
        media = self.media
        if media is None:
            return
        if isinstance(message, p.Signaling):
            media.on_signaling(message.data)
        else:
            media.on_state(ntgcalls.ConnectionState(message.state))

    def lose(self) -> None:
        media, self.media = self.media, None
        if media is not None:
            log.warning("call %d ends: its %s (media worker %d)", self.key, WORKER_LOST, self.link.index)
            media.on_failure(CallFailed(WORKER_LOST))

    async def release(self) -> None:
        self.media = None
        try:
            await self.request(p.Release(self.key))
        except Exception as exc:  # noqa: BLE001 - a lost worker took the call with it
            log.debug("releasing call %d: %s", self.key, exc)
        self.link.remove(self)


class RemoteRtp:
    """The call's RTP socket, in its worker: what MediaBridge opens towards Asterisk."""

    def __init__(self, call: RemoteCall, record_path: Path | None) -> None:
        self.call = call
        self.record_path = record_path
        self.recording_error: str | None = None

    @property
    def worker_pid(self) -> int | None:
        return self.call.link.pid

    @property
    def counters(self) -> p.Counters | None:
        return self.call.counters

    async def open(self, host: str, payload_type: int) -> int:
        path = str(self.record_path) if self.record_path else None
        opened: p.RtpOpened = await self.call.request(p.OpenRtp(self.call.key, host, payload_type, path))
        self.recording_error = opened.recording_error
        return opened.port

    async def aim(self, host: str, port: int) -> None:
        await self.call.request(p.AimRtp(self.call.key, host, port))

    async def close(self) -> p.MediaSummary:
        try:
            return await self.call.request(p.CloseRtp(self.call.key))
        except CallFailed as exc:
            return p.MediaSummary(stats={}, recording_error=str(exc) if self.record_path else None)


class WorkerPool:
    def __init__(self, count: int, calls_per_worker: int = CALLS_PER_WORKER) -> None:
        if count < 1:
            raise ValueError("a pool needs at least one worker")
        self.links = [WorkerLink(index) for index in range(count)]  # the workers taking new calls
        self.calls_per_worker = calls_per_worker
        self._retiring: set[WorkerLink] = set()  # replaced, still carrying calls
        self._retirements: set[asyncio.Task[None]] = set()
        self._links_changed = asyncio.Event()  # for `supervise`: a worker replaced another
        self._keys = itertools.count(1)
        self._closing = False

    async def start(self) -> None:
        await asyncio.gather(*(link.start() for link in self.links))

    def place(self, media: CallMedia) -> RemoteCall:
        """A new call on the running worker with the fewest calls (on a replaced one only while none of the
        others is up yet)."""
        running = [link for link in self.links if link.up] or [link for link in self._retiring if link.up]
        if not running:
            raise CallFailed("no media worker is running")
        link = min(running, key=lambda link: (len(link.calls), link.index))
        call = RemoteCall(link, next(self._keys), media)
        link.add(call)
        log.info("call %d on media worker %d (pid %d)", call.key, link.index, link.pid)
        if link.placed >= self.calls_per_worker and not link.retiring and not self._closing:
            self._replace(link)
        return call

    def _replace(self, old: WorkerLink) -> None:
        """A fresh process takes `old`'s place for new calls; `old` is stopped once its last call is released."""
        new = WorkerLink(old.index)
        new.restarts = old.restarts
        self.links[self.links.index(old)] = new
        old.retiring = True
        self._retiring.add(old)
        self._links_changed.set()
        task = asyncio.ensure_future(self._retire(old, new))
        self._retirements.add(task)
        task.add_done_callback(self._retirements.discard)

    async def _retire(self, old: WorkerLink, new: WorkerLink) -> None:
        try:
            await new.start()
        except Exception:  # noqa: BLE001 - `supervise` has nothing to wait for: the old one keeps serving
            log.exception("media worker %d: its replacement did not start; the old one (pid %s) carries on",
                          old.index, old.pid)
            self.links[self.links.index(new)] = old
            old.retiring = False
            old.placed = 0
            self._retiring.discard(old)
            return
        finally:
            self._links_changed.set()
        log.info("media worker %d replaced after %d calls: pid %d takes new calls, pid %s stops after its %d",
                 old.index, old.placed, new.pid, old.pid, len(old.calls))
        await old.idle.wait()
        await old.stop()
        self._retiring.discard(old)

    async def supervise(self) -> None:
        """Restart every worker that exits (a background loop of the gateway's TaskSupervisor)."""
        waits: dict[asyncio.Task[int], WorkerLink] = {}
        changed: asyncio.Task[Any] | None = None
        try:
            while True:
                for link in self.links:
                    if link.process is not None and link not in waits.values():
                        waits[asyncio.ensure_future(link.process.wait())] = link
                if changed is None:
                    self._links_changed.clear()
                    changed = asyncio.ensure_future(self._links_changed.wait())
                done, _ = await asyncio.wait({*waits, changed}, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is changed:
                        changed = None
                        continue
                    link = waits.pop(task)
                    if link.retiring:  # stopped once idle; with calls left it died, and they end with it
                        if link.calls:
                            log.error("media worker %d (pid %d), being replaced, died with %d call(s)",
                                      link.index, link.pid, len(link.calls))
                        link.lost()
                        continue
                    await self._restart(link, task.result())
        finally:
            for task in waits:
                task.cancel()
            if changed is not None:
                changed.cancel()

    async def _restart(self, link: WorkerLink, returncode: int) -> None:
        if self._closing:
            return
        how = f"signal {-returncode}" if returncode < 0 else f"exit code {returncode}"
        log.error("media worker %d (pid %d) died (%s) with %d call(s); they end with %r; restarting",
                  link.index, link.pid, how, len(link.calls), WORKER_LOST)
        link.lost()
        if time.monotonic() - link.started_at < FAST_DEATH_S:
            await asyncio.sleep(RESTART_BACKOFF_S)  # dying at start: don't spin
        link.restarts += 1
        await link.start()

    def health(self) -> dict[str, Any]:
        workers = [{"index": link.index, "pid": link.pid, "up": link.up, "calls": len(link.calls),
                    "restarts": link.restarts} for link in self.links]
        return {"ok": all(worker["up"] for worker in workers), "workers": workers,
                "replaced_still_running": len(self._retiring)}

    async def close(self) -> None:
        self._closing = True
        for task in list(self._retirements):
            task.cancel()
        await asyncio.gather(*(link.stop() for link in [*self.links, *self._retiring]))


class RemoteCallEngine(MediaSinks):
    """CallEngine's API for PrivateCall (one per account), each call's NTgCalls in a media worker.

    Calls are keyed by peer id here (one call per user per account, as in one process); in the worker by a key
    of their own, so a new call with a user need not wait for the previous one's NTgCalls stop."""

    media_in_worker = True  # the worker feeds NTgCalls (RTP and silence): PrivateCall pushes no audio

    def __init__(self, pool: WorkerPool, sample_rate: int = SAMPLE_RATE) -> None:
        self.pool = pool
        self.sample_rate = sample_rate
        self.frame_bytes = sample_rate * 2 // 100
        super().__init__()
        self._calls: dict[int, RemoteCall] = {}
        self._releases: set[asyncio.Future[None]] = set()

    def _call(self, peer_id: int) -> RemoteCall:
        call = self._calls.get(peer_id)
        if call is None:
            raise ntgcalls.ConnectionNotFound("the call is being stopped")
        return call

    async def create(self, peer_id: int) -> None:
        media = self._media.get(peer_id)
        if media is None:
            raise ntgcalls.ConnectionNotFound("the call ended before NTgCalls created it")
        call = self._calls[peer_id] = self.pool.place(media)
        await call.request(p.Create(call.key, self.sample_rate))

    async def init_exchange(self, peer_id: int, g: int, p_: bytes, random: bytes, g_a_hash: bytes | None) -> bytes:
        call = self._call(peer_id)
        return bytes(await call.request(p.InitExchange(call.key, g, p_, random, g_a_hash)))

    async def exchange_keys(self, peer_id: int, g_a_or_b: bytes, fingerprint: int) -> p.Keys:
        call = self._call(peer_id)
        return await call.request(p.ExchangeKeys(call.key, g_a_or_b, fingerprint))

    async def connect(self, peer_id: int, servers: list[ntgcalls.RTCServer], versions: list[str], p2p: bool,
                      custom: str | None) -> None:
        call = self._call(peer_id)
        plain = [(s.id, s.ipv4, s.ipv6, s.port, s.username, s.password, s.turn, s.stun, s.tcp, s.peer_tag)
                 for s in servers]
        await call.request(p.Connect(call.key, plain, versions, p2p, custom))

    async def attach_playback(self, peer_id: int) -> None:
        call = self._call(peer_id)
        await call.request(p.AttachPlayback(call.key))

    async def signal(self, peer_id: int, data: bytes) -> None:
        call = self._calls.get(peer_id)
        if call is not None:
            await call.request(p.Signal(call.key, data))

    def rtp(self, peer_id: int, record_path: Path | None = None) -> RemoteRtp:
        """The call's RTP end in its worker, for MediaBridge."""
        return RemoteRtp(self._call(peer_id), record_path)

    def release(self, peer_id: int) -> "asyncio.Future[None]":
        self.detach(peer_id)
        call = self._calls.pop(peer_id, None)
        if call is None:
            done = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        release = asyncio.ensure_future(call.release())
        self._releases.add(release)
        release.add_done_callback(self._releases.discard)
        return release

    async def stop(self, peer_id: int) -> None:
        await asyncio.shield(self.release(peer_id))

    async def close(self) -> None:
        for peer_id in list(self._media):
            self.release(peer_id)
        if self._releases:
            await asyncio.wait(set(self._releases))
