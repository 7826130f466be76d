"""One NTgCalls instance shared by every call of one account, with its thread callbacks moved onto asyncio.

NTgCalls raises its callbacks on its own threads; signaling and connection states are handed to the loop with
`call_soon_threadsafe` and routed to the `CallMedia` registered for that peer id. Audio frames are not: they go to
`CallMedia.on_frame` right on NTgCalls' thread (the gateway sends them on as RTP from there, so a busy loop never
delays audio on its way to SIP); a sink that needs the loop hops there itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import ntgcalls

from app.pacing import TICK_S
from app.supervise import retrieve
from app.telegram import denormals, nativelog, threadpriority, threadstate
from app.telegram.framesend import FRAME_DATA, FrameSender

log = logging.getLogger(__name__)

# The PCM rate of NTgCalls' EXTERNAL source and PLAYBACK sink; whoever owns the engine chooses it (the gateway
# chooses 8 kHz for Asterisk: app/calls/mediabridge.py). NTgCalls resamples to Opus' 48 kHz natively.
SAMPLE_RATE = 8_000
CHANNELS = 1
BYTES_PER_MS = SAMPLE_RATE * 2 // 1000  # 16-bit mono at SAMPLE_RATE
FRAME_10MS = 10 * BYTES_PER_MS

OP_DRAIN_TIMEOUT_S = 5.0
# NTgCalls processes signaling on its own threads after `send_signaling_data` returns: the SCTP layer on its
# network thread hands each message to its signaling thread, which posts what it asks for (a remote ICE candidate,
# the remote description) back to the network thread. `stop` closes the connection before the signaling, so a
# message still on that path runs on a closed connection: segfaults in `add_remote_candidate`,
# `RtpDemuxer::RemoveSink`, `set_remote_params`, or heap corruption. A call is stopped only once its signaling, in
# and out (what NTgCalls sends is what it is still working on), has been quiet this long. 50 ms was not enough on
# a loaded machine (load average 15 on 2 cores: 2 crashes in 7 runs of bench/teardown_stress.py).
SIGNAL_QUIET_S = 0.5
SIGNAL_QUIET_MAX_S = 3.0  # a call still signaling after this long is stopped anyway (and logged)
# connect_p2p returns before its work is done: it posts the processing of the signaling received so far and the
# creation of the media channels to NTgCalls' threads, which on a loaded machine ran after the stop had begun
# (segfault in RtpDemuxer::RemoveSink with P2PCall::process_signaling_data -> create_channels still running). So a
# call that was connected is stopped only once NTgCalls reported how the connection ended up (connected, failed,
# timed out or closed), or CONNECT_SETTLE_S after connect_p2p was called: when the other side stopped first, no
# state comes before NTgCalls' own 10 s timeout, and a new call with the same user waits for this stop.
CONNECT_SETTLE_S = 2.0
_PLAYBACK = ntgcalls.StreamMode.PLAYBACK
# NTgCalls 3.0.5's close uses freed memory: it destroys the call's incoming audio channel (its webrtc receive
# stream) and then its webrtc::Call in one task on its worker thread, while the receive stream's removal from the
# Call's RTP demuxer was posted to its network thread (RtpStreamReceiverController::Receiver::~Receiver), which
# then runs it on the destroyed demuxer: usually unnoticed, now and then SIGSEGV in RtpDemuxer::RemoveSink or heap
# corruption (uprobes over bench/teardown_stress.py: 72 of 100 such removals ran after the Call was gone;
# bench/README.md, "Crash safety"). A call's PLAYBACK is detached before it is stopped: NTgCalls then clears the
# incoming channels (`enableAudioIncoming(false)`) while the Call is alive, and the stop waits SIGNAL_QUIET_S after
# that, so the removals have run and the close has no receive stream left to tear down.
_NO_MEDIA = ntgcalls.MediaDescription(None, None, None, None)
_SETTLED = (ntgcalls.ConnectionState.CONNECTED, ntgcalls.ConnectionState.FAILED,
            ntgcalls.ConnectionState.TIMEOUT, ntgcalls.ConnectionState.CLOSED)
# NTgCalls 3.0.5 keeps part of every call it ran (its negotiation state: payload-type maps, a few KiB of heap a call,
# heaptrack over bench/soak.py) until its instance is destroyed. So an instance takes this many calls; the next go
# to a fresh one, and the old one is destroyed once its last call is stopped (bench/README.md, "Memory per call").
# A fresh instance costs ~0.2 ms to make and ~2 ms to destroy. What NTgCalls keeps for the process (each remote ICE
# candidate, ~0.5 KiB, never freed) only a process' end gives back: media workers are replaced (app/workers/pool.py).
CALLS_PER_INSTANCE = 20
RETIRE_AFTER_S = 5.0  # after its last stop: what NTgCalls still posted to the instance's threads has run

T = TypeVar("T")

_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def _trim_heap() -> None:
    """Give the heap's free pages back to the system once a call's NTgCalls call is stopped. glibc keeps what
    NTgCalls' threads freed in their arenas (bench/README.md, "Memory per call"). In a thread: it walks every
    arena."""
    trim = getattr(_LIBC, "malloc_trim", None)  # glibc only
    if trim is not None:
        trim(0)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8  # glibc's mallopt parameters
_MMAP_FROM = 64 * 1024
# glibc gives threads arenas of their own, up to 8 a core (16 here); NTgCalls' threads free into them what other
# threads allocated and each arena keeps its own free pages: over bench/soak.py, 1.44 and 1.79 KiB a call with two
# arenas against 1.90 and 2.21 with glibc's default, same runs (bench/README.md, "Memory per call"). Two arenas
# used to die of heap corruption: that was NTgCalls' close using freed memory, mended since (_NO_MEDIA).
ARENAS = 2


def limit_arenas() -> None:
    """At most ARENAS malloc arenas for the process (see ARENAS). glibc fixes its limit when the ninth arena would
    be made, so this is called first thing in a process that will run NTgCalls, before its threads."""
    mallopt = getattr(_LIBC, "mallopt", None)  # glibc only
    if mallopt is not None:
        mallopt(_M_ARENA_MAX, ARENAS)


def _tune_heap() -> None:
    """Blocks of 64 KiB and more in mappings of their own, unmapped when freed. glibc raises its mmap threshold
    each time such a block is freed (up to 32 MiB), after which NTgCalls' per-call buffers come from the arenas
    and, freed, stay there: over a soak the arenas held 15 MiB of free memory after 1 000 calls, 4 MiB with a
    fixed threshold (bench/README.md, "Memory per call"). Process-wide and idempotent."""
    mallopt = getattr(_LIBC, "mallopt", None)  # glibc only
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, _MMAP_FROM)
        mallopt(_M_TRIM_THRESHOLD, _MMAP_FROM)


class Turns:
    """The process-wide turn NTgCalls' lifecycle steps take, one step at a time (one per event loop; `_turns()`).
    NTgCalls 3.0.5 corrupts memory when a call is created, connected, has its playback attached or detached, or is
    stopped while another call's step runs (docs/decisions.md). Creates waiting for the turn (`turn(first=True)`) go
    before the other steps waiting: a call's setup is not held back by other calls' connect_p2p (~36 ms each).
    Creates of different calls running together were tried and taken back: a soak died (`free(): invalid pointer`)
    after 924 calls, where every soak with one step at a time had run clean (bench/README.md, "Where issue 12 ends")."""

    def __init__(self) -> None:
        self._busy = False
        self._waiting: deque[tuple[bool, asyncio.Future[None]]] = deque()  # (goes first, granted), oldest first

    @contextlib.asynccontextmanager
    async def turn(self, first: bool = False) -> AsyncIterator[None]:
        if self._busy or self._waiting:
            await self._wait(first)
        else:
            self._busy = True
        try:
            yield
        finally:
            self._busy = False
            self._hand_on()

    async def _wait(self, first: bool) -> None:
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (first, granted)
        self._waiting.append(entry)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():  # granted as it was cancelled: hand the turn on
                self._busy = False
                self._hand_on()
            elif entry in self._waiting:
                self._waiting.remove(entry)
            raise

    def _hand_on(self) -> None:
        while not self._busy and self._waiting:
            entry = next((e for e in self._waiting if e[0]), self._waiting[0])  # creates first, then in order
            self._waiting.remove(entry)
            if entry[1].done():  # its waiter was cancelled meanwhile and hands nothing on
                continue
            self._busy = True
            entry[1].set_result(None)


_TURNS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Turns]" = weakref.WeakKeyDictionary()


def _turns() -> Turns:
    """The process-wide turns (one per event loop)."""
    loop = asyncio.get_running_loop()
    turns = _TURNS.get(loop)
    if turns is None:
        turns = _TURNS[loop] = Turns()
    return turns


class _NativeLogBridge:
    """What NTgCalls' log thread calls for every native log line (`logger.log(level, text)` on the "webrtc" and
    "ntgcalls" loggers), at every level, whatever the logger's level: the thread state is kept (`threadstate`) and
    a line the logger would drop costs a level check, no more."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def __call__(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        threadstate.keep()
        if self.logger.isEnabledFor(level):
            logging.Logger.log(self.logger, level, msg, *args, **kwargs)


def _bridge_native_logs() -> None:
    for name in ("webrtc", "ntgcalls"):  # the loggers NTgCalls' log bridge writes to
        logger = logging.getLogger(name)
        if not isinstance(logger.__dict__.get("log"), _NativeLogBridge):
            logger.log = _NativeLogBridge(logger)  # type: ignore[method-assign]


def cpu_has_avx2() -> bool:
    """NTgCalls' bundled openh264 needs AVX2 (SIGILL without it); audio-only calls are said to avoid it."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return " avx2" in f.read()
    except OSError:
        return True


def external_audio(sample_rate: int = SAMPLE_RATE) -> ntgcalls.AudioDescription:
    return ntgcalls.AudioDescription(ntgcalls.MediaSource.EXTERNAL, sample_rate, CHANNELS, "", True)


def protocol() -> ntgcalls.Protocol:
    return ntgcalls.NTgCalls.get_protocol()


@dataclass
class CallMedia:
    """Per-peer sinks for what NTgCalls reports."""

    on_signaling: Callable[[bytes], None]
    on_state: Callable[[ntgcalls.ConnectionState], None]
    # On NTgCalls' thread: (pcm, perf_counter when handed over). Must be thread-safe and must not block.
    on_frame: Callable[[bytes, float], None] = field(default=lambda _pcm, _at: None)
    # An engine in another process (app/workers) lost the call: the call ends with this error.
    on_failure: Callable[[Exception], None] = field(default=lambda _exc: None)


class MediaSinks:
    """Each call's `CallMedia`, under the peer's user id: the part of CallEngine's API its stand-in for media
    workers (`app/workers/pool.RemoteCallEngine`) shares."""

    def __init__(self) -> None:
        self._media: dict[int, CallMedia] = {}

    def attach(self, peer_id: int, media: CallMedia) -> None:
        self._media[peer_id] = media

    def detach(self, peer_id: int) -> None:
        self._media.pop(peer_id, None)

    def busy_with(self, peer_id: int) -> bool:
        return peer_id in self._media


class OutboundAudio:
    """One call's audio into an engine: live PCM (already paced by its source, RTP) handed over at once in 10 ms
    frames (exactly 10 ms: 20 ms frames were measured to arrive ~4 dB quieter), and silence from the shared 20 ms
    clock (`app.pacing`) while none comes, since NTgCalls wants an unbroken outbound stream. No buffering adds
    delay on the way to Telegram."""

    def __init__(self, engine: "CallEngine", key: int) -> None:
        self.engine = engine
        self.key = key
        self._live_until = 0.0

    def push(self, pcm: bytes) -> None:
        engine, key, frame = self.engine, self.key, self.engine.frame_bytes
        for start in range(0, len(pcm) - frame + 1, frame):
            engine.push_frame(key, pcm[start : start + frame])
        self._live_until = time.monotonic() + 1.5 * TICK_S

    def fill(self, now: float) -> None:
        """From the 20 ms clock: two 10 ms frames of silence unless live audio came within the last tick."""
        if now >= self._live_until:
            silence = bytes(self.engine.frame_bytes)
            self.engine.push_frame(self.key, silence)
            self.engine.push_frame(self.key, silence)


class CallEngine(MediaSinks):
    """Owns one `NTgCalls`; call objects register a `CallMedia` under the peer's user id."""

    media_in_worker = False  # `RemoteCallEngine`'s worker feeds NTgCalls itself: callers push no audio then

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, sample_rate: int = SAMPLE_RATE,
                 fast_path: bool = True, calls_per_instance: int = CALLS_PER_INSTANCE) -> None:
        """`fast_path=False` is the path before issue 12 (a thread state made per callback, one executor job and
        one future per frame), kept so `bench/ntgcalls_floor.py` can measure both in one run."""
        self.loop = loop or asyncio.get_running_loop()
        self.sample_rate = sample_rate
        self.frame_bytes = sample_rate * 2 // 100  # one 10 ms frame: what NTgCalls' EXTERNAL source wants
        if not cpu_has_avx2():
            log.warning("this CPU has no AVX2: NTgCalls' bundled openh264 may crash (SIGILL); calls are audio-only")
        self._keep_thread_states = fast_path
        self._sender: FrameSender | None = None
        if fast_path:
            denormals.flush_to_zero()  # before this engine's NTgCalls makes its threads: they inherit it
            _bridge_native_logs()
            self._sender = FrameSender.shared(self.loop)
        _tune_heap()
        self.calls_per_instance = calls_per_instance
        self.ntg = self._new_instance()  # where the next call goes
        self._calls_placed = 0  # on `ntg`
        self._instance_of: dict[int, ntgcalls.NTgCalls] = {}  # the instance each created call is on
        self._retiring: list[ntgcalls.NTgCalls] = []  # full: destroyed once their last call is stopped
        super().__init__()
        self._pending: dict[int, set[asyncio.Future[Any]]] = {}  # NTgCalls operations in flight, per call
        self._last_frame: dict[int, int] = {}  # the number of each call's latest frame pushed to `_sender`
        self._frame_sends: dict[int, set[asyncio.Future[Any]]] = {}  # old path: frames not yet sent, per call
        self._frames_held: set[int] = set()  # calls whose streams NTgCalls is setting up: no frames meanwhile
        self._stopping: dict[int, asyncio.Future[None]] = {}
        self._stop_tasks: set[asyncio.Task[None]] = set()
        self._last_signal: dict[int, float] = {}
        self._connecting: dict[int, float] = {}  # connect_p2p called (monotonic), no settled state reported yet
        self._playing: set[int] = set()  # calls with PLAYBACK attached: detached before they are stopped

    def _new_instance(self) -> ntgcalls.NTgCalls:
        ntg = ntgcalls.NTgCalls()
        if self._keep_thread_states:  # the fast path; NTgCalls made its log sink verbose again if it made a new one
            nativelog.quiet()
        ntg.on_signaling_data(self._signaling_cb)
        ntg.on_connection_change(self._connection_cb)
        ntg.on_frames(self._frames_cb)
        return ntg

    def _place(self, peer_id: int) -> ntgcalls.NTgCalls:
        """The instance a new call goes on; once it has taken `calls_per_instance`, later calls go to a fresh one."""
        ntg = self._instance_of[peer_id] = self.ntg
        self._calls_placed += 1
        if self._calls_placed >= self.calls_per_instance:
            self._retiring.append(ntg)
            self.ntg, self._calls_placed = self._new_instance(), 0
        return ntg

    def _instance(self, peer_id: int) -> ntgcalls.NTgCalls:
        return self._instance_of.get(peer_id, self.ntg)

    def _forget(self, peer_id: int) -> ntgcalls.NTgCalls | None:
        """The call is stopped: the full instance this was the last call of, to be destroyed, if any."""
        ntg = self._instance_of.pop(peer_id, None)
        if ntg is None or not any(ntg is full for full in self._retiring):
            return None
        if any(ntg is other for other in self._instance_of.values()):
            return None
        self._retiring = [full for full in self._retiring if full is not ntg]
        return ntg

    # NTgCalls threads -> loop
    # Each callback first keeps its native thread's Python thread state (app/telegram/threadstate.py).
    def _signaling_cb(self, peer_id: int, data: bytes) -> None:
        if self._keep_thread_states:
            threadstate.keep()
        self._last_signal[peer_id] = time.monotonic()  # NTgCalls is still working on this call (see SIGNAL_QUIET_S)
        self._post(peer_id, "on_signaling", bytes(data))

    def _connection_cb(self, peer_id: int, info: ntgcalls.ConnectionInfo) -> None:
        if self._keep_thread_states:
            threadstate.keep()
        if info.kind == ntgcalls.ConnectionKind.NORMAL:
            if info.state in _SETTLED:
                self._connecting.pop(peer_id, None)  # on NTgCalls' thread; read by `_connection_settled`
            self._post(peer_id, "on_state", info.state)

    def _frames_cb(self, peer_id: int, mode: object, device: object, frames: list[ntgcalls.Frame]) -> None:
        handed_at = time.perf_counter()  # the delay towards SIP counts from here (the wait for the GIL before is unseen)
        if self._keep_thread_states:
            threadstate.keep()
        if mode != _PLAYBACK:
            return
        if self._keep_thread_states:
            threadpriority.raise_this_thread()  # it carries the audio towards SIP
        pcm = frames[0].data if len(frames) == 1 else b"".join([f.data for f in frames])  # one 10 ms frame, always
        if not pcm:
            return
        if peer_id in self._stopping:
            return  # the last frames of a call being stopped; a newer call with this user may be attached
        media = self._media.get(peer_id)
        if media is None:
            return
        try:
            media.on_frame(pcm, handed_at)
        except Exception:  # noqa: BLE001 - never let it unwind into NTgCalls' native thread
            log.exception("audio sink for %s failed; frame dropped", peer_id)

    def _post(self, peer_id: int, sink: str, value: object) -> None:
        try:
            self.loop.call_soon_threadsafe(self._deliver, peer_id, sink, value)
        except RuntimeError:  # loop closed during shutdown
            pass

    def _deliver(self, peer_id: int, sink: str, value: object) -> None:
        media = self._media.get(peer_id)
        if media is not None and peer_id not in self._stopping:  # not the stopping call's events to a newer one
            getattr(media, sink)(value)

    # P2P steps (thin wrappers so call objects read like the protocol). NTgCalls 3.0.5 corrupts memory (segfaults
    # in set_remote_params, add_track, RtpDemuxer::RemoveSink) when a call is stopped while another step on it is
    # still running on its threads. So every step is tracked per call and `stop` waits for them. That alone still
    # crashed a stress run now and then; with creating, connecting, attaching playback and stopping taking turns
    # across the whole process (`Turns`) it did not (docs/decisions.md); with only creating and stopping taking
    # turns it crashed again (bench/README.md, "Fast path"). Creates waiting go ahead of the other steps waiting
    # (`Turns`). A turn is taken only once the call's frames are sent: waiting for them inside the turn
    # held every other call's setup up.
    async def create(self, peer_id: int) -> None:
        media = self._media.get(peer_id)
        while (stopping := self._stopping.get(peer_id)) is not None:
            await asyncio.shield(stopping)  # the previous call with this user is still being torn down
        # Hung up meanwhile (released: no longer attached), this call must not be created at all: nothing would
        # stop it, and NTgCalls would refuse every later call with this user.
        await self._in_turn(peer_id, [
            lambda: self._place(peer_id).create_p2p_call(peer_id),
            lambda: self._instance(peer_id).set_stream_sources(
                peer_id, ntgcalls.StreamMode.CAPTURE,
                ntgcalls.MediaDescription(external_audio(self.sample_rate), None, None, None)),
        ], unless_released=media, first=True)

    async def attach_playback(self, peer_id: int) -> None:
        # After connect_p2p: attaching PLAYBACK earlier crashes NTgCalls (upstream issue #51).
        self._playing.add(peer_id)  # before: a call released meanwhile may have it attached all the same
        await self._in_turn(peer_id, [lambda: self._instance(peer_id).set_stream_sources(
            peer_id, ntgcalls.StreamMode.PLAYBACK,
            ntgcalls.MediaDescription(external_audio(self.sample_rate), None, None, None))])

    async def init_exchange(self, peer_id: int, g: int, p: bytes, random: bytes, g_a_hash: bytes | None) -> bytes:
        dh = ntgcalls.DhConfig(g, p, random)
        return bytes(await self._op(peer_id, lambda: self._instance(peer_id).init_exchange(peer_id, dh, g_a_hash)))

    async def exchange_keys(self, peer_id: int, g_a_or_b: bytes, fingerprint: int) -> ntgcalls.AuthParams:
        return await self._op(peer_id, lambda: self._instance(peer_id).exchange_keys(peer_id, g_a_or_b, fingerprint))

    async def connect(self, peer_id: int, servers: list[ntgcalls.RTCServer], versions: list[str], p2p: bool,
                      custom: str | None) -> None:
        def start() -> Awaitable[None]:
            self._connecting[peer_id] = time.monotonic()
            return self._instance(peer_id).connect_p2p(peer_id, servers, versions, p2p, custom)
        try:
            await self._in_turn(peer_id, [start])
        except BaseException:
            self._connecting.pop(peer_id, None)  # refused: NTgCalls will report no state for it
            raise

    async def signal(self, peer_id: int, data: bytes) -> None:
        if peer_id in self._stopping:
            return  # late signaling for a call being stopped is of no use, and unsafe to hand over
        self._last_signal[peer_id] = time.monotonic()
        await self._op(peer_id, lambda: self._instance(peer_id).send_signaling_data(peer_id, data))

    def push_frame(self, peer_id: int, pcm: bytes) -> None:
        """Fire-and-forget frame for the pacer and the relay: no await per 10 ms frame.

        Dropped while the call is being stopped or its streams set up (see `_in_turn`)."""
        if peer_id in self._stopping or peer_id in self._frames_held:
            return
        ntg = self._instance(peer_id)
        if self._sender is not None:
            self._last_frame[peer_id] = self._sender.push(ntg, peer_id, pcm)
            return
        sent = ntg.send_external_frame(peer_id, ntgcalls.StreamDevice.MICROPHONE, pcm, FRAME_DATA)
        sent.add_done_callback(retrieve)
        frames = self._frame_sends.setdefault(peer_id, set())
        if sent not in frames:
            frames.add(sent)
            sent.add_done_callback(frames.discard)

    async def _op(self, peer_id: int, start: Callable[[], Awaitable[T]]) -> T:
        if peer_id in self._stopping:
            raise ntgcalls.ConnectionNotFound("the call is being stopped")
        future = asyncio.ensure_future(start())
        self._track(peer_id, future)
        # Shielded: a caller cancelled mid-operation must not make `stop` think NTgCalls is done with it.
        return await asyncio.shield(future)

    async def _in_turn(self, peer_id: int, steps: list[Callable[[], Awaitable[Any]]],
                       unless_released: CallMedia | None = None, first: bool = False) -> None:
        async def turn() -> None:
            # NTgCalls 3.0.5's send_external_frame reads (and may insert into) the call's stream map without its
            # lock, while create (init), connect_p2p (add_track) and set_stream_sources change that map: heap
            # corruption. So no frame is in flight for this call while one of these steps runs.
            self._frames_held.add(peer_id)
            try:
                frames = self._frames_in_flight(peer_id)
                if frames:
                    await asyncio.wait(set(frames), timeout=OP_DRAIN_TIMEOUT_S)
                async with _turns().turn(first):
                    if unless_released is not None and self._media.get(peer_id) is not unless_released:
                        raise ntgcalls.ConnectionNotFound("the call ended before NTgCalls created it")
                    for step in steps:
                        await self._op(peer_id, step)
            finally:
                self._frames_held.discard(peer_id)
        # Its own task: a caller cancelled mid-step (a hang-up) must not hand the turn on while NTgCalls still works.
        task = asyncio.ensure_future(turn())
        task.add_done_callback(retrieve)
        await asyncio.shield(task)

    def _frames_in_flight(self, peer_id: int) -> "set[asyncio.Future[Any]]":
        """What resolves once none of the call's frames is in NTgCalls' hands any more."""
        if self._sender is None:
            return set(self._frame_sends.get(peer_id, ()))
        sent = self._sender.when_sent(self._last_frame.get(peer_id, 0))
        return set() if sent is None else {sent}

    def _track(self, peer_id: int, future: "asyncio.Future[Any]") -> None:
        pending = self._pending.setdefault(peer_id, set())
        pending.add(future)
        future.add_done_callback(lambda done: (pending.discard(done), retrieve(done)))

    def release(self, peer_id: int) -> "asyncio.Future[None]":
        """Stop the call: from now on no callbacks and no new steps; NTgCalls stops it once the steps in flight
        are done (the returned future). The caller need not wait: hanging up is not held back by NTgCalls."""
        self.detach(peer_id)
        stopping = self._stopping.get(peer_id)
        if stopping is None:
            stopping = self._stopping[peer_id] = self.loop.create_future()
            task = asyncio.ensure_future(self._stop_when_idle(peer_id, stopping))
            self._stop_tasks.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(self._stop_tasks.discard)
        return stopping

    async def stop(self, peer_id: int) -> None:
        await asyncio.shield(self.release(peer_id))

    async def _stop_when_idle(self, peer_id: int, done: "asyncio.Future[None]") -> None:
        try:
            pending = self._pending.pop(peer_id, set()) | self._frames_in_flight(peer_id)
            if pending:
                _, late = await asyncio.wait(pending, timeout=OP_DRAIN_TIMEOUT_S)
                if late:
                    log.warning("%d NTgCalls operations for %s still running after %.0f s; stopping anyway",
                                len(late), peer_id, OP_DRAIN_TIMEOUT_S)
            await self._connection_settled(peer_id)
            await self._detach_playback(peer_id)
            await self._signaling_quiet(peer_id)
            async with _turns().turn():
                await self._instance(peer_id).stop(peer_id)
        except ntgcalls.ConnectionNotFound:
            pass
        except Exception:  # noqa: BLE001 - nobody may be waiting; the call is gone for the app either way
            log.exception("stopping the NTgCalls call with %s failed", peer_id)
        finally:
            self._last_signal.pop(peer_id, None)
            self._frame_sends.pop(peer_id, None)
            self._last_frame.pop(peer_id, None)
            self._connecting.pop(peer_id, None)
            self._playing.discard(peer_id)
            full = self._forget(peer_id)
            del self._stopping[peer_id]
            if not done.done():
                done.set_result(None)
        if full is not None:
            await asyncio.sleep(RETIRE_AFTER_S)
            async with _turns().turn():
                del full  # the last reference: NTgCalls' destructor runs here (it releases the GIL while it joins)
            log.debug("an NTgCalls instance was destroyed after its %d calls", self.calls_per_instance)
        await asyncio.to_thread(_trim_heap)

    async def _connection_settled(self, peer_id: int) -> None:
        """Until NTgCalls reported how a connection it was asked to make ended up, at most CONNECT_SETTLE_S after
        connect_p2p was called."""
        while (connected_at := self._connecting.get(peer_id)) is not None:
            if time.monotonic() >= connected_at + CONNECT_SETTLE_S:
                return
            await asyncio.sleep(0.02)

    async def _detach_playback(self, peer_id: int) -> None:
        """Detach the call's PLAYBACK (see _NO_MEDIA); what that posted to NTgCalls' threads runs while the stop
        waits for quiet, which counts from here."""
        if peer_id not in self._playing:
            return  # never attached: NTgCalls made no incoming channel for it
        try:
            async with _turns().turn():
                await self._instance(peer_id).set_stream_sources(peer_id, _PLAYBACK, _NO_MEDIA)
        except ntgcalls.ConnectionNotFound:
            raise  # NTgCalls ended the call itself: nothing to stop
        except Exception:  # noqa: BLE001 - the call is stopped all the same
            log.warning("detaching playback of %s before its stop failed", peer_id, exc_info=True)
        self._last_signal[peer_id] = time.monotonic()

    async def _signaling_quiet(self, peer_id: int) -> None:
        """Until no signaling went to or came from NTgCalls for this call for SIGNAL_QUIET_S (at most
        SIGNAL_QUIET_MAX_S): what was handed over is then processed on NTgCalls' threads."""
        started = time.monotonic()
        while True:
            now = time.monotonic()
            quiet_at = self._last_signal.get(peer_id, 0.0) + SIGNAL_QUIET_S
            if quiet_at <= now:
                return
            if now - started >= SIGNAL_QUIET_MAX_S:
                log.warning("NTgCalls still signaling for %s after %.0f s; stopping anyway", peer_id,
                            SIGNAL_QUIET_MAX_S)
                return
            await asyncio.sleep(min(quiet_at, started + SIGNAL_QUIET_MAX_S) - now)

    async def close(self) -> None:
        for peer_id in list(self._media):
            self.release(peer_id)
        if self._stopping:
            await asyncio.wait([asyncio.shield(f) for f in self._stopping.values()])
        for ntg in [*self._retiring, self.ntg]:
            for peer_id in list(await ntg.calls()):
                await self.stop(peer_id)

    async def cpu_usage(self) -> float:
        return float(await self.ntg.cpu_usage())
