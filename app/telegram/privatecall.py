"""One private (1:1) Telegram voice call: MTProto signaling through pyrogram's raw API, media through NTgCalls."""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import ntgcalls
from pyrogram import raw

from app.pacing import MediaClock
from app.telegram.callengine import CallEngine, CallMedia, OutboundAudio
from app.telegram.errors import CallFailed, PeerBusy, TelegramCallError, TelegramError, call_error, rpc_id
from app.telegram.peer import Peer

log = logging.getLogger(__name__)


class CallState(enum.Enum):
    REQUESTING = "requesting"  # outgoing: RequestCall sent
    WAITING = "waiting"  # outgoing: Telegram accepted the request, callee not reached yet
    RINGING = "ringing"  # the callee's device rings
    ACCEPTED = "accepted"  # answered; keys being exchanged
    CONNECTING = "connecting"  # media negotiating
    CONNECTED = "connected"
    ENDED = "ended"


class DiscardReason(enum.Enum):
    HANGUP = "hangup"
    BUSY = "busy"
    MISSED = "missed"
    DISCONNECT = "disconnect"

    def to_tl(self) -> raw.base.PhoneCallDiscardReason:
        return {
            DiscardReason.HANGUP: raw.types.PhoneCallDiscardReasonHangup,
            DiscardReason.BUSY: raw.types.PhoneCallDiscardReasonBusy,
            DiscardReason.MISSED: raw.types.PhoneCallDiscardReasonMissed,
            DiscardReason.DISCONNECT: raw.types.PhoneCallDiscardReasonDisconnect,
        }[self]()

    @classmethod
    def from_tl(cls, reason: object) -> "DiscardReason":
        if isinstance(reason, raw.types.PhoneCallDiscardReasonBusy):
            return cls.BUSY
        if isinstance(reason, raw.types.PhoneCallDiscardReasonMissed):
            return cls.MISSED
        if isinstance(reason, raw.types.PhoneCallDiscardReasonDisconnect):
            return cls.DISCONNECT
        return cls.HANGUP


@dataclass(frozen=True)
class CallEnd:
    reason: DiscardReason
    by_peer: bool  # True when the other side (or Telegram) ended it
    answered: bool
    duration: int  # seconds connected
    error: TelegramError | None = None


class CallEnded(TelegramCallError):
    """Raised by `wait_*` when the call ended before reaching that state."""

    def __init__(self, end: CallEnd) -> None:
        super().__init__(f"call ended: {end.reason.value}")
        self.end = end

    def copy(self) -> "CallEnded":
        return CallEnded(self.end)


@dataclass(frozen=True)
class DhParams:
    g: int
    p: bytes
    random: bytes


class CallHost(Protocol):
    """What a call needs from its account (`TelegramAccount`)."""

    engine: CallEngine
    ring_timeout: float

    async def invoke(self, function: Any, timeout: float | None = None) -> Any: ...
    async def dh_config(self) -> DhParams: ...
    def register(self, call: "PrivateCall") -> None: ...
    def unregister(self, call: "PrivateCall") -> None: ...


class PrivateCall:
    """A call with one Telegram user; placed with `place()` (through `TelegramAccount.call()`) or made by the
    account for an incoming request with `incoming()`."""

    def __init__(self, account: CallHost, peer: Peer, outgoing: bool) -> None:
        self.account = account
        self.peer = peer
        self.outgoing = outgoing
        self.state = CallState.REQUESTING if outgoing else CallState.RINGING
        self.id: int | None = None
        self.access_hash = 0
        self.from_gateway = False  # set for incoming calls from another gateway account (SIP 482)
        # The one way out: what the user says, in 10 ms pieces of mono s16le at the engine's rate, called on
        # NTgCalls' own thread with (pcm, perf_counter when handed over). A thread-safe, non-blocking sink.
        self.on_audio: Callable[[bytes, float], None] | None = None
        self.connected_at: float | None = None
        self.requested_at: float | None = None  # perf_counter() when phone.RequestCall went out
        loop = asyncio.get_running_loop()
        # True once the call got there, False when it ended first (`_wait` then raises CallEnded). They hold no
        # exception: raised, it would keep its traceback's frames, and through them this call (a reference cycle).
        self._ringing: asyncio.Future[bool] = loop.create_future()
        self._accepted: asyncio.Future[bool] = loop.create_future()
        self._connected: asyncio.Future[bool] = loop.create_future()
        self.ended: asyncio.Future[CallEnd] = loop.create_future()
        self._g_a_hash = b""
        self._outbound: OutboundAudio | None = None  # set once NTgCalls is asked to create the call
        self._tasks: set[asyncio.Task[None]] = set()
        self._media_started = False
        self._answered = False
        if not outgoing:
            self._ringing.set_result(True)

    def __repr__(self) -> str:
        direction = "out" if self.outgoing else "in"
        return f"<PrivateCall {direction} {self.peer.id} {self.state.value}>"

    # --- what the rest of the app uses -------------------------------------------------------------

    async def wait_ringing(self, timeout: float | None = None) -> None:
        await self._wait(self._ringing, timeout)

    async def wait_accepted(self, timeout: float | None = None) -> None:
        await self._wait(self._accepted, timeout)

    async def wait_connected(self, timeout: float | None = None) -> None:
        await self._wait(self._connected, timeout)

    async def accept(self) -> None:
        """Answer an incoming call; returns once Telegram took the answer (media connects after)."""
        if self.outgoing or self.state is not CallState.RINGING:
            raise CallFailed(f"cannot accept a call in state {self.state.value}")
        self._set_state(CallState.ACCEPTED)
        try:
            dh = await self.account.dh_config()
            await self._start_media()
            g_b = await self.account.engine.init_exchange(self.peer.id, dh.g, dh.p, dh.random, self._g_a_hash)
            await self.account.invoke(
                raw.functions.phone.AcceptCall(peer=self.input_call(), g_b=g_b, protocol=call_protocol())
            )
        except Exception as exc:  # noqa: BLE001 - every failure ends the call with a typed error
            if self.ended.done():  # the caller hung up meanwhile: that is what happened, not a failure
                raise CallEnded(self.ended.result()) from exc
            await self._fail(exc)
            raise call_error(exc) from exc
        self._answered = True
        self._resolve(self._accepted)

    async def hangup(self, reason: DiscardReason = DiscardReason.HANGUP) -> None:
        """End the call on both sides (decline with BUSY/HANGUP while ringing, MISSED on ring timeout)."""
        if self.ended.done():
            return
        duration = self.duration
        await self._finish(CallEnd(reason, by_peer=False, answered=self._answered, duration=duration))
        await self._discard(reason, duration)

    async def _discard(self, reason: DiscardReason, duration: int) -> None:
        if self.id is not None:
            try:
                await self.account.invoke(
                    raw.functions.phone.DiscardCall(
                        peer=self.input_call(), duration=duration, reason=reason.to_tl(), connection_id=0
                    )
                )
            except Exception as exc:  # noqa: BLE001 - the call is over locally whatever Telegram says
                log.info("DiscardCall for %s failed: %s", self, exc)

    def push_audio(self, pcm: bytes) -> None:
        """The one way in: audio its source already paces (RTP), mono s16le at the engine's rate, handed to
        NTgCalls at once (`OutboundAudio`)."""
        if self.ended.done() or self._outbound is None:
            return  # not before NTgCalls has the call, never into a newer call with the same user
        self._outbound.push(pcm)

    def tick(self, now: float) -> None:
        """From the shared 20 ms clock: silence while no audio comes."""
        if self._outbound is not None and not self.ended.done():
            self._outbound.fill(now)

    @property
    def duration(self) -> int:
        return 0 if self.connected_at is None else int(time.monotonic() - self.connected_at)

    def input_call(self) -> raw.types.InputPhoneCall:
        assert self.id is not None
        return raw.types.InputPhoneCall(id=self.id, access_hash=self.access_hash)

    # --- outgoing ---------------------------------------------------------------------------------

    @classmethod
    async def place(cls, account: CallHost, peer: Peer) -> "PrivateCall":
        """RequestCall; returns once Telegram took the request (the call then rings or fails)."""
        call = cls(account, peer, outgoing=True)
        await call._request()
        return call

    async def _request(self) -> None:
        """RequestCall; raises a typed error if Telegram refuses."""
        try:
            dh = await self.account.dh_config()
            await self._start_media()
            g_a_hash = await self.account.engine.init_exchange(self.peer.id, dh.g, dh.p, dh.random, None)
            self.requested_at = time.perf_counter()
            result = await self.account.invoke(
                raw.functions.phone.RequestCall(
                    user_id=self.peer.input_user(),
                    random_id=int.from_bytes(os.urandom(4), "big") >> 1,
                    g_a_hash=g_a_hash,
                    protocol=call_protocol(),
                    video=False,
                )
            )
        except asyncio.CancelledError:
            # The caller gave up (a SIP CANCEL) during setup: the NTgCalls call made for it is stopped. Cancelled
            # inside RequestCall, Telegram's answer (and the call id to discard) is lost; the user's phone then
            # rings until Telegram's own timeout.
            await self._finish(CallEnd(DiscardReason.HANGUP, by_peer=False, answered=False, duration=0))
            raise
        except Exception as exc:  # noqa: BLE001
            error = call_error(exc)
            await self._finish(CallEnd(DiscardReason.DISCONNECT, by_peer=True, answered=False, duration=0,
                                       error=error.copy()))
            try:
                raise error from exc
            finally:
                error = None  # type: ignore[assignment]  # raised, it holds this frame: not the other way round too
        phone_call = result.phone_call
        self.id, self.access_hash = phone_call.id, phone_call.access_hash
        self._set_state(CallState.WAITING)
        self.account.register(self)
        self.start_ring_timer()

    def start_ring_timer(self) -> None:
        """Unanswered after the account's ring timeout, the call ends as missed (both directions)."""
        self._spawn(self._ring_timer())

    async def _ring_timer(self) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self._accepted), self.account.ring_timeout)
        except asyncio.TimeoutError:
            if not self.ended.done():
                await self.hangup(DiscardReason.MISSED)
        except (CallEnded, asyncio.CancelledError):
            pass

    async def _on_accepted(self, update: raw.types.PhoneCallAccepted) -> None:
        self._answered = True
        self._set_state(CallState.ACCEPTED)
        self._resolve(self._ringing)
        self._resolve(self._accepted)
        try:
            auth = await self.account.engine.exchange_keys(self.peer.id, update.g_b, 0)
            result = await self.account.invoke(
                raw.functions.phone.ConfirmCall(
                    peer=self.input_call(),
                    g_a=bytes(auth.g_a_or_b),
                    key_fingerprint=auth.key_fingerprint,
                    protocol=call_protocol(),
                )
            )
            await self._connect(result.phone_call)
        except Exception as exc:  # noqa: BLE001
            await self._fail(exc)

    # --- incoming ---------------------------------------------------------------------------------

    @classmethod
    def incoming(cls, account: CallHost, peer: Peer, update: raw.types.PhoneCallRequested) -> "PrivateCall":
        call = cls(account, peer, outgoing=False)
        call.id, call.access_hash = update.id, update.access_hash
        call._g_a_hash = update.g_a_hash
        return call

    async def _on_confirmed(self, update: raw.types.PhoneCall) -> None:
        try:
            await self.account.engine.exchange_keys(self.peer.id, update.g_a_or_b, update.key_fingerprint)
            await self._connect(update)
        except Exception as exc:  # noqa: BLE001
            await self._fail(exc)

    # --- both directions --------------------------------------------------------------------------

    async def _start_media(self) -> None:
        engine = self.account.engine
        if engine.busy_with(self.peer.id):  # NTgCalls keys calls by user: one call with each user at a time
            raise PeerBusy("this account is already in a call with the user")
        engine.attach(self.peer.id, CallMedia(self._on_signaling, self._on_connection, self._on_frame,
                                              self._on_engine_failure))
        # Owned from here: a hangup while NTgCalls still creates the call must stop it once created.
        self._media_started = True
        if not engine.media_in_worker:  # else its worker feeds NTgCalls
            self._outbound = OutboundAudio(engine, self.peer.id)
        await engine.create(self.peer.id)
        if self._outbound is not None:  # an unbroken outbound stream from the start
            MediaClock.shared().add(self)

    async def _connect(self, phone_call: raw.types.PhoneCall) -> None:
        self._set_state(CallState.CONNECTING)
        servers = [_rtc_server(c) for c in phone_call.connections]
        await self.account.engine.connect(
            self.peer.id,
            servers,
            list(phone_call.protocol.library_versions),
            bool(phone_call.p2p_allowed),
            phone_call.custom_parameters.data if phone_call.custom_parameters else None,
        )
        # PLAYBACK only after connect_p2p: attaching it earlier crashes NTgCalls (upstream issue #51).
        await self.account.engine.attach_playback(self.peer.id)

    def _on_signaling(self, data: bytes) -> None:
        if self.id is not None and not self.ended.done():
            self._spawn(self._relay(data))

    async def _relay(self, data: bytes) -> None:
        try:
            await self.account.invoke(raw.functions.phone.SendSignalingData(peer=self.input_call(), data=data))
        except Exception as exc:  # noqa: BLE001
            # After the end (ours, or the other side's that has not reached us yet) a refusal is expected.
            if not self.ended.done() and rpc_id(exc) != "CALL_ALREADY_DECLINED":
                log.warning("SendSignalingData for %s failed: %s", self, exc)

    async def _on_signaling_update(self, data: bytes) -> None:
        if self._media_started and not self.ended.done():
            try:
                await self.account.engine.signal(self.peer.id, data)
            except ntgcalls.ConnectionNotFound:
                pass  # the call ended while this signaling was on its way

    def _on_connection(self, state: ntgcalls.ConnectionState) -> None:
        if state == ntgcalls.ConnectionState.CONNECTED and not self._connected.done():
            self.connected_at = time.monotonic()
            self._set_state(CallState.CONNECTED)
            self._resolve(self._connected)
        elif state in (ntgcalls.ConnectionState.FAILED, ntgcalls.ConnectionState.TIMEOUT) and not self.ended.done():
            self._spawn(self.hangup(DiscardReason.DISCONNECT))

    def _on_engine_failure(self, exc: Exception) -> None:
        if not self.ended.done():
            self._spawn(self._fail(exc))

    def _on_frame(self, pcm: bytes, posted_at: float) -> None:
        sink = self.on_audio  # read once: the loop may clear it meanwhile
        if sink is not None:
            sink(pcm, posted_at)

    def _on_discarded(self, update: raw.types.PhoneCallDiscarded) -> None:
        reason = DiscardReason.from_tl(update.reason)
        self._spawn(self._finish(CallEnd(reason, by_peer=True, answered=self._answered, duration=self.duration)))

    async def _fail(self, exc: BaseException) -> None:
        error = call_error(exc)
        if self.ended.done():  # e.g. NTgCalls refusing a step because the call was hung up meanwhile
            log.debug("call %s: %s after it ended", self, error)
            return
        log.warning("call %s failed: %s", self, error)
        duration = self.duration
        await self._finish(CallEnd(DiscardReason.DISCONNECT, False, self._answered, duration, error.copy()))
        await self._discard(DiscardReason.DISCONNECT, duration)

    async def _finish(self, end: CallEnd) -> None:
        if self.ended.done():
            return
        self._set_state(CallState.ENDED)
        self.ended.set_result(end)
        MediaClock.shared().remove(self)
        for future in (self._ringing, self._accepted, self._connected):
            if not future.done():
                future.set_result(False)
        self.account.unregister(self)
        if self._media_started:
            self.account.engine.release(self.peer.id)  # NTgCalls stops it once idle; the hang-up goes out now
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()

    async def _wait(self, future: asyncio.Future[bool], timeout: float | None) -> None:
        if not await asyncio.wait_for(asyncio.shield(future), timeout):
            raise CallEnded(self.ended.result())

    def _set_state(self, state: CallState) -> None:
        if self.state is not CallState.ENDED:
            self.state = state

    @staticmethod
    def _resolve(future: asyncio.Future[bool]) -> None:
        if not future.done():
            future.set_result(True)

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- update routing (called by the account) ---------------------------------------------------

    def handle(self, phone_call: object) -> None:
        if self.ended.done():
            return
        if isinstance(phone_call, raw.types.PhoneCallDiscarded):
            self._on_discarded(phone_call)
        elif isinstance(phone_call, raw.types.PhoneCallWaiting) and phone_call.receive_date:
            if self.state is CallState.WAITING:
                self._set_state(CallState.RINGING)
            self._resolve(self._ringing)
        elif isinstance(phone_call, raw.types.PhoneCallAccepted) and self.outgoing:
            self._spawn(self._on_accepted(phone_call))
        elif isinstance(phone_call, raw.types.PhoneCall) and not self.outgoing:
            self._spawn(self._on_confirmed(phone_call))

    def handle_signaling(self, data: bytes) -> None:
        self._spawn(self._on_signaling_update(data))


def call_protocol() -> raw.types.PhoneCallProtocol:
    p = ntgcalls.NTgCalls.get_protocol()
    return raw.types.PhoneCallProtocol(
        min_layer=p.min_layer,
        max_layer=p.max_layer,
        udp_p2p=p.udp_p2p,
        udp_reflector=p.udp_reflector,
        library_versions=list(p.library_versions),
    )


def _rtc_server(connection: object) -> ntgcalls.RTCServer:
    if isinstance(connection, raw.types.PhoneConnectionWebrtc):
        return ntgcalls.RTCServer(
            connection.id, connection.ip, connection.ipv6, connection.port,
            connection.username, connection.password, bool(connection.turn), bool(connection.stun), False, None,
        )
    return ntgcalls.RTCServer(
        connection.id, connection.ip, connection.ipv6, connection.port,
        None, None, True, False, bool(connection.tcp), connection.peer_tag,
    )
