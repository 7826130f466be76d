"""A media worker process: one NTgCalls (`CallEngine`) and the RTP sockets of the calls it carries.

Started by `WorkerPool` as `python -m app.workers.worker FD`, FD being its end of a socketpair. The gateway sends
requests (`app.workers.protocol`); the worker runs them against its engine and answers, and sends each call's
signaling and connection states back. Audio stays here: RTP from Asterisk goes into NTgCalls and NTgCalls' frames
go out as RTP (and into the call's recording) without leaving the process. When the gateway's end closes (it
stopped, or died), the worker stops its calls and exits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import ntgcalls
import uvloop

from app.logs import configure_logging
from app.media.recorder import CallRecorder
from app.media.relay import RtpRelay
from app.pacing import MediaClock
from app.telegram.callengine import CallEngine, CallMedia, OutboundAudio, limit_arenas
from app.workers import protocol as p

log = logging.getLogger("app.workers.worker")  # also when run as __main__

UNOPENED_RTP_TTL_S = 30.0


class WorkerCall:
    """One call's media in the worker: its NTgCalls call (by key), its RTP relay, its recording."""

    def __init__(self, worker: "Worker", key: int, engine: CallEngine) -> None:
        self.worker = worker
        self.key = key
        self.engine = engine
        self.relay: RtpRelay | None = None
        self.recorder: CallRecorder | None = None
        self.released: asyncio.Future[None] | None = None
        self.rtp_closed = False
        self.outbound = OutboundAudio(engine, key)

    # NTgCalls -> SIP, on NTgCalls' thread
    def on_frame(self, pcm: bytes, posted_at: float) -> None:
        relay, recorder = self.relay, self.recorder  # read once: the loop may clear them meanwhile
        if relay is not None:
            relay.send_pcm(pcm, posted_at)
        if recorder is not None:
            recorder.from_telegram(pcm)

    # SIP -> NTgCalls, on the loop (as PrivateCall.push_audio does in one process)
    def from_sip(self, pcm: bytes) -> None:
        if self.released is not None:
            return
        self.outbound.push(pcm)
        recorder = self.recorder
        if recorder is not None:
            recorder.from_sip(pcm)

    def tick(self, now: float) -> None:
        """From the shared 20 ms clock: silence while RTP is quiet."""
        if self.released is None:
            self.outbound.fill(now)

    async def close_rtp(self) -> p.MediaSummary:
        relay, recorder = self.relay, self.recorder
        self.relay = self.recorder = None
        self.rtp_closed = True
        summary = p.MediaSummary(stats={})
        if relay is not None:
            relay.close()
            summary.stats = relay.stats.to_record()
        if recorder is not None:
            summary.recording_s = round(await asyncio.to_thread(recorder.close), 2)
            summary.recording_error = recorder.error
        return summary


class Worker:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.engines: dict[int, CallEngine] = {}  # by sample rate
        self.calls: dict[int, WorkerCall] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, message: Any) -> None:
        if not self.writer.is_closing():
            self.writer.write(p.pack(message))

    def handle(self, request: p.Request) -> None:
        task = asyncio.ensure_future(self._answer(request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, request: p.Request) -> None:
        try:
            value = await self._run(request)
        except Exception as exc:  # noqa: BLE001 - the gateway's PrivateCall turns it into a typed error
            self.send(p.Reply(request.id, error=exc))
        else:
            self.send(p.Reply(request.id, value))

    def report_counters(self) -> None:
        """Every call's RTP counters to the gateway, then again in `COUNTERS_EVERY_S`."""
        for call in self.calls.values():
            if call.relay is not None and not call.rtp_closed:
                stats = call.relay.stats
                self.send(p.Counters(call.key, stats.packets_in, stats.lost_in, stats.late_in, stats.packets_out,
                                     round(stats.jitter_ms, 1)))
        asyncio.get_running_loop().call_later(p.COUNTERS_EVERY_S, self.report_counters)

    def _call(self, key: int) -> WorkerCall:
        call = self.calls.get(key)
        if call is None:
            raise ntgcalls.ConnectionNotFound(f"no call {key} in this media worker")
        return call

    async def _run(self, request: p.Request) -> Any:
        if isinstance(request, p.Create):
            return await self._create(request)
        call = self._call(request.call)
        engine, key = call.engine, call.key
        if isinstance(request, p.Signal):
            await engine.signal(key, request.data)
        elif isinstance(request, p.InitExchange):
            return await engine.init_exchange(key, request.g, request.p, request.random, request.g_a_hash)
        elif isinstance(request, p.ExchangeKeys):
            auth = await engine.exchange_keys(key, request.g_a_or_b, request.fingerprint)
            return p.Keys(bytes(auth.g_a_or_b), int(auth.key_fingerprint))
        elif isinstance(request, p.Connect):
            servers = [ntgcalls.RTCServer(*server) for server in request.servers]
            await engine.connect(key, servers, request.versions, request.p2p, request.custom)
        elif isinstance(request, p.AttachPlayback):
            await engine.attach_playback(key)
        elif isinstance(request, p.OpenRtp):
            return await self._open_rtp(call, request)
        elif isinstance(request, p.AimRtp):
            if call.relay is not None:
                call.relay.remote = (request.host, request.port)
        elif isinstance(request, p.CloseRtp):
            summary = await call.close_rtp()
            self._forget_if_done(call)
            return summary
        elif isinstance(request, p.Release):
            await self._release(call)
        else:
            raise ValueError(f"unknown request {type(request).__name__}")
        return None

    async def _create(self, request: p.Create) -> None:
        if request.call in self.calls:
            raise ValueError(f"call {request.call} exists already")
        engine = self.engines.get(request.sample_rate)
        if engine is None:
            engine = self.engines[request.sample_rate] = CallEngine(sample_rate=request.sample_rate)
        call = self.calls[request.call] = WorkerCall(self, request.call, engine)
        key = request.call
        engine.attach(key, CallMedia(lambda data: self.send(p.Signaling(key, data)),
                                     lambda state: self.send(p.State(key, int(state.value))),
                                     call.on_frame))
        await engine.create(key)
        if call.released is None:
            MediaClock.shared().add(call)

    async def _open_rtp(self, call: WorkerCall, request: p.OpenRtp) -> p.RtpOpened:
        if call.rtp_closed or call.relay is not None:
            raise ValueError("this call's RTP was opened already")
        relay = RtpRelay(request.payload_type, call.engine.sample_rate, on_pcm=call.from_sip)
        port = await relay.open(request.host)
        call.relay = relay
        if request.record_path:
            try:
                call.recorder = CallRecorder(Path(request.record_path), call.engine.sample_rate)
            except Exception as exc:  # noqa: BLE001 - the call goes on unrecorded; the gateway records why
                return p.RtpOpened(port, recording_error=str(exc))
        return p.RtpOpened(port)

    async def _release(self, call: WorkerCall) -> None:
        if call.released is None:
            MediaClock.shared().remove(call)
            call.released = asyncio.ensure_future(call.engine.release(call.key))
        await asyncio.shield(call.released)
        if call.relay is None and not call.rtp_closed:
            # Ended before its RTP was opened: the gateway may still open and close it (a hang-up racing the
            # answer); if it does not, the call is forgotten after a while.
            asyncio.get_running_loop().call_later(UNOPENED_RTP_TTL_S, self._forget_unopened, call)
        self._forget_if_done(call)

    def _forget_unopened(self, call: WorkerCall) -> None:
        if call.relay is None:
            call.rtp_closed = True
            self._forget_if_done(call)

    def _forget_if_done(self, call: WorkerCall) -> None:
        if call.rtp_closed and call.released is not None and call.released.done():
            self.calls.pop(call.key, None)

    async def close(self) -> None:
        for call in list(self.calls.values()):
            MediaClock.shared().remove(call)
            await call.close_rtp()
        for engine in self.engines.values():
            await engine.close()


async def serve(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    worker = Worker(writer)
    worker.report_counters()
    log.info("media worker (pid %d) ready", os.getpid())
    try:
        while True:
            try:
                message = await p.read_message(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            worker.handle(message)
    finally:
        await worker.close()
        writer.close()


def main(argv: list[str]) -> None:
    limit_arenas()
    configure_logging(os.environ)
    # The worker ends when the gateway's end of its socket closes, after stopping its calls (NTgCalls aborts a
    # process that exits with calls): a Ctrl-C or a service manager's SIGTERM to the whole group is the gateway's.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    uvloop.run(serve(int(argv[1])))


if __name__ == "__main__":
    main(sys.argv)
