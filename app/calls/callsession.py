"""One call through the gateway: a SIP channel on one side, a Telegram call on the other."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from app.ari.channel import REJECT_CONTEXT, Channel
from app.ari.client import ARI_FAILURES, AriClient, AriError
from app.calls import codes
from app.calls.accounts import AccountHandle
from app.calls.mediabridge import MEDIA_SAMPLE_RATE, MediaBridge
from app.media.recorder import CallRecorder
from app.store.callrecord import CallRecord
from app.store.db import Database
from app.store.line import utcnow
from app.telegram.peer import Peer
from app.telegram.privatecall import DiscardReason, PrivateCall
from app.workers.pool import RemoteCallEngine

log = logging.getLogger(__name__)

DTMF_DIGITS = re.compile(r"^[0-9*#A-Da-d]{1,32}$")
DTMF_GROUP_S = 1.0  # digits typed within this pause go to the chat as one message


async def first_done(*tasks: "asyncio.Future[object]") -> "set[asyncio.Future[object]]":
    """Wait until one of them finishes, cancel the others; the finished ones (the caller owns the tasks)."""
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
    return done


class AsteriskLost(Exception):
    """Asterisk died during the call: no hang-up will come from the SIP side, the call ends now."""


class Reject(Exception):
    """End the SIP side with this code (before answer) and record why."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


class CallSession:
    """Shared by both directions: media, DTMF, teardown and the call record."""

    direction = ""

    def __init__(self, ari: AriClient, db: Database, app: str, handle: AccountHandle | None, line: str | None) -> None:
        self.ari = ari
        self.db = db
        self.app = app
        self.handle = handle
        self.line = line
        self.sip_channel_id: str | None = None
        self.tg_call: PrivateCall | None = None
        self.media: MediaBridge | None = None
        self.answered = False
        self.sip_gone = asyncio.Event()
        self.asterisk_lost = False
        self.record = CallRecord(direction=self.direction, line=line, account=handle.name if handle else None)
        self.pbx_party = ""  # the PBX side's number: the caller's (PBX -> Telegram) or the one rung (-> PBX)
        self._dtmf_buffer = ""
        self._dtmf_flush: asyncio.TimerHandle | None = None
        self._closed = False
        # Frees the call's place on its line and account (set by the Stasis app); called before the record is
        # written, so a written record always means the place is free again.
        self.release: Callable[[], None] = lambda: None
        self._chats: set[asyncio.Task[None]] = set()  # chat messages on their way (the loop keeps weak references)
        self.task: asyncio.Task[None] | None = None
        self.channels: dict[str, CallSession] | None = None  # the app's channel -> session index
        self.wait_in_stasis: Callable[[str], Awaitable[None]] | None = None
        self.recordings_dir: Path | None = None
        self.record_chat: str | None = None  # set: the call is recorded and posted there (stasis.record_chat)
        self.recorder: CallRecorder | None = None
        self.media_address = "127.0.0.1"  # where Asterisk sends the call's externalMedia RTP (TGTRUNK_MEDIA_ADDRESS)
        self.reject_context: str | None = REJECT_CONTEXT  # how a ringing channel is refused (Channel.reject)

    def bind_channel(self, channel_id: str) -> None:
        """This session owns the SIP channel: its events (hang-up, DTMF) come here."""
        self.sip_channel_id = channel_id
        if self.channels is not None:
            self.channels[channel_id] = self

    # Media -------------------------------------------------------------------------------------
    async def connect_media(self) -> None:
        assert self.sip_channel_id and self.tg_call
        call = self.tg_call
        engine = call.account.engine
        if isinstance(engine, RemoteCallEngine):
            await self._connect_worker_media(engine)
            return
        self.media = MediaBridge(self.ari, self.app, MEDIA_SAMPLE_RATE, self.wait_in_stasis, self.media_address)
        await self.media.open(self.sip_channel_id)
        relay = self.media.relay
        assert relay is not None
        recorder = self._start_recording()
        if recorder is None:
            relay.on_pcm = call.push_audio
            call.on_audio = relay.send_pcm  # on NTgCalls' thread: the relay's sending is thread-safe
            return

        def from_sip(pcm: bytes) -> None:
            call.push_audio(pcm)
            recorder.from_sip(pcm)

        def from_telegram(pcm: bytes, posted_at: float) -> None:  # NTgCalls' thread: neither of these blocks
            relay.send_pcm(pcm, posted_at)
            recorder.from_telegram(pcm)

        relay.on_pcm = from_sip
        call.on_audio = from_telegram

    async def _connect_worker_media(self, engine: RemoteCallEngine) -> None:
        """The call's media worker opens the RTP socket (and records the call, if it is recorded): Asterisk's
        externalMedia channel points at the worker, and no audio passes through this process."""
        assert self.sip_channel_id and self.tg_call
        if self.tg_call.ended.done():
            return  # its NTgCalls call is released already; talk() sees the end
        path = self._recording_path()
        self.media = MediaBridge(self.ari, self.app, MEDIA_SAMPLE_RATE, self.wait_in_stasis, self.media_address,
                                 remote=engine.rtp(self.tg_call.peer.id, path))
        await self.media.open(self.sip_channel_id)
        if path is None:
            return
        assert self.media.remote is not None
        if self.media.remote.recording_error:
            log.error("call on line %s is not recorded: %s", self.line, self.media.remote.recording_error)
            self.record.recording_state, self.record.recording_error = "failed", self.media.remote.recording_error
        else:
            self._recording_started(path)

    def _recording_path(self) -> Path | None:
        if not (self.record_chat and self.recordings_dir):
            return None
        started = utcnow()
        return self.recordings_dir / f"{started:%Y%m%d-%H%M%S}-{self.direction}-{self.line}-{secrets.token_hex(4)}.ogg"

    def _recording_started(self, path: Path) -> None:
        self.record.recording, self.record.recording_chat = str(path), self.record_chat
        self.record.recording_state = "recording"
        log.info("call on line %s is recorded to %s (posted to %s after the call)", self.line, path, self.record_chat)

    def _start_recording(self) -> CallRecorder | None:
        path = self._recording_path()
        if path is None:
            return None
        try:
            self.recorder = CallRecorder(path, MEDIA_SAMPLE_RATE)
        except Exception as exc:  # noqa: BLE001 - the call goes on unrecorded
            log.error("call on line %s is not recorded: %s", self.line, exc)
            self.record.recording_state, self.record.recording_error = "failed", str(exc)
            return None
        self._recording_started(path)
        return self.recorder

    # Events from the SIP side ------------------------------------------------------------------
    def on_sip_hangup(self) -> None:
        self.sip_gone.set()

    def on_asterisk_lost(self) -> None:
        self.asterisk_lost = True
        self.sip_gone.set()

    async def sip_channel_gone(self) -> bool:
        """Whether the SIP channel has hung up, asking Asterisk when its event has not arrived yet."""
        if self.sip_gone.is_set():
            return True
        if not self.sip_channel_id:
            return False
        try:
            return not await Channel(self.ari, self.sip_channel_id).exists()
        except ARI_FAILURES:
            return False

    async def ari_failed(self, exc: BaseException) -> tuple[int, str]:
        """An ARI request failed (or Asterisk was lost): end the Telegram side; the code and reason to record."""
        if self.asterisk_lost:
            await self.hang_up_telegram(DiscardReason.DISCONNECT)
            return codes.ASTERISK_LOST
        if await self.sip_channel_gone():
            # The SIP side hung up while the call was still being set up (e.g. right after the 200):
            # the request failed with "Channel not found", but this is an ordinary hang-up.
            await self.hang_up_telegram(DiscardReason.HANGUP)
            return (200, "SIP side hung up") if self.answered else codes.SIP_CALLER_CANCELLED
        await self.hang_up_telegram(DiscardReason.DISCONNECT)
        return codes.INTERNAL, f"Asterisk: {exc}"

    def on_sip_dtmf(self, digit: str) -> None:
        if not (self.handle and self.handle.dtmf_out and self.tg_call and self.answered):
            return
        self._dtmf_buffer += digit
        if self._dtmf_flush:
            self._dtmf_flush.cancel()
        self._dtmf_flush = asyncio.get_running_loop().call_later(DTMF_GROUP_S, self._send_dtmf_message)

    def _send_dtmf_message(self) -> None:
        digits, self._dtmf_buffer = self._dtmf_buffer, ""
        if digits and self.handle and self.tg_call:
            log.info("DTMF %s from the SIP side -> chat with %s", digits, self.tg_call.peer.id)
            task = asyncio.ensure_future(self._chat(self.tg_call.peer, digits))
            self._chats.add(task)
            task.add_done_callback(self._chats.discard)

    async def _chat(self, peer: Peer, text: str) -> None:
        assert self.handle
        if self.handle.chat is not None:
            await self.handle.chat.text(peer, text)
            return
        try:
            await self.handle.account.send_message(peer, text)
        except Exception as exc:  # noqa: BLE001 - a chat message is best effort
            log.warning("could not send %r to the chat with %s: %s", text, peer.id, exc)

    # Events from the Telegram side -------------------------------------------------------------
    async def on_chat_message(self, text: str) -> bool:
        """Digits the Telegram user types in the chat during the call become DTMF on the SIP side.

        The keypad follows the reference's session settings: DTMF In for calls from Telegram to the PBX,
        DTMF Out for calls from the PBX to Telegram."""
        if not (self.handle and self.answered and self.sip_channel_id):
            return False
        if not (self.handle.dtmf_in if self.direction == "telegram-to-sip" else self.handle.dtmf_out):
            return False
        digits = text.strip().replace(" ", "")
        if not DTMF_DIGITS.match(digits):
            return False
        try:
            await Channel(self.ari, self.sip_channel_id).dtmf(digits.upper())
            log.info("DTMF %s from the chat -> SIP channel %s", digits.upper(), self.sip_channel_id)
        except AriError as exc:
            log.warning("could not play DTMF %s: %s", digits, exc)
        return True

    # Waiting for whichever side ends first -----------------------------------------------------
    async def talk(self) -> str:
        """Both sides connected: wait until one hangs up, end the other; returns the reason."""
        if await self.until_either_ends() == "sip":
            if self.asterisk_lost:
                raise AsteriskLost
            await self.hang_up_telegram(DiscardReason.HANGUP)
            return "SIP side hung up"
        await self.hang_up_sip()
        end = self.tg_call.ended.result()  # type: ignore[union-attr]
        if end.error is not None:  # not a hang-up: e.g. its media worker was lost; the record says so
            raise end.error.copy()  # the call keeps its own
        return "Telegram side hung up"

    async def until_either_ends(self) -> str:
        assert self.tg_call
        sip = asyncio.ensure_future(self.sip_gone.wait())
        done = await first_done(sip, asyncio.ensure_future(asyncio.shield(self.tg_call.ended)))
        return "sip" if sip in done else "telegram"

    # Teardown ----------------------------------------------------------------------------------
    async def hang_up_sip(self, cause: str = "normal") -> None:
        if self.sip_channel_id and not self.sip_gone.is_set():
            try:
                await Channel(self.ari, self.sip_channel_id).hangup(cause)
            except ARI_FAILURES:
                pass

    async def hang_up_telegram(self, reason: DiscardReason = DiscardReason.HANGUP) -> None:
        if self.tg_call and not self.tg_call.ended.done():
            await self.tg_call.hangup(reason)

    async def close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        if self._dtmf_flush:
            self._dtmf_flush.cancel()
        summary = await self.media.close() if self.media else None
        record = self.record
        if summary is not None and record.recording_state == "recording":  # recorded in the media worker
            record.recording_s = summary.recording_s
            if summary.recording_error or summary.recording_s is None:
                record.recording_state = "failed"
                record.recording_error = summary.recording_error or "the media worker kept no recording"
            else:
                record.recording_state = "pending"  # app/calls/recordings.py posts it
        if self.recorder:
            record.recording_s = round(await asyncio.to_thread(self.recorder.close), 2)
            if self.recorder.error:
                record.recording_state, record.recording_error = "failed", self.recorder.error
            else:
                record.recording_state = "pending"  # app/calls/recordings.py posts it
        record.ended_at = utcnow()
        record.result_code = code
        record.reason = reason
        if self.tg_call:
            peer = self.tg_call.peer
            record.peer_id, record.peer_username, record.peer_phone = peer.id, peer.username, peer.phone
            record.duration_s = self.tg_call.duration
        if self.media:
            record.sqlmodel_update(self.media.stats)
        self.release()
        try:
            # Off the loop (a locked database must not stall every call's audio); a full or read-only disk
            # must not lose the record: it is held and retried.
            await asyncio.to_thread(self.db.add_or_hold, record)
        finally:
            if self.handle:
                self.handle.sessions.discard(self)
                if self.handle.on_call_end is not None:
                    self.handle.on_call_end(self)
        log.info("call %s on line %s ended: %s %s (%d s; RTP in %d lost %d late %d, out %d of which silence %d)",
                 self.direction, self.line, code, reason, record.duration_s, record.packets_in, record.lost_in,
                 record.late_in, record.packets_out, record.silence_out)


async def reject_channel(ari: AriClient, channel_id: str, code: int, context: str | None = REJECT_CONTEXT) -> None:
    """Answer a ringing INVITE with an exact SIP code, if it still rings (`context`: see Channel.reject)."""
    try:
        await Channel(ari, channel_id).reject(code, codes.cause_for(code), context)
    except ARI_FAILURES:
        pass  # the caller already hung up, or Asterisk is gone

