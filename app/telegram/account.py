"""A logged-in Telegram user account as the gateway uses it: resolve targets, place and take calls, chat."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from pyrogram import Client, raw
from pyrogram import errors as tg
from pyrogram.handlers import RawUpdateHandler

from app.supervise import retrieve
from app.telegram.callengine import SAMPLE_RATE, CallEngine
from app.telegram.errors import AnonymousUser, PeerNotFound, call_error
from app.telegram.peer import Peer
from app.telegram.privatecall import DhParams, DiscardReason, PrivateCall
from app.telegram.target import Target, TargetError, TargetKind, parse_target

log = logging.getLogger(__name__)

T = TypeVar("T")
IncomingCallback = Callable[[PrivateCall], Awaitable[None] | None]
MessageCallback = Callable[[Peer, str], Awaitable[None] | None]

ORPHAN_TTL_S = 10.0
HANDLERS_DRAIN_TIMEOUT_S = 5.0  # on stop: how long incoming-call handlers get to finish after their calls ended
UPLOAD_PART = 512 * 1024  # Telegram's largest part; 524288 must be a multiple of it
BIG_FILE = 10 * 1024 * 1024  # larger files go up with saveBigFilePart
DH_CONFIG_MAX_AGE_S = 3600.0  # Telegram rarely changes its prime; a changed one is picked up within the hour


class TelegramAccount:
    """Wraps a pyrogram `Client` (connected, authorized) and one NTgCalls call engine."""

    def __init__(self, client: Client, *, ring_timeout: float = 90.0, rpc_timeout: float = 10.0,
                 rpc_retries: int = 2, sample_rate: int = SAMPLE_RATE) -> None:
        self.client = client
        self.sample_rate = sample_rate  # of the PCM its calls take and give
        self.ring_timeout = ring_timeout
        self.rpc_timeout = rpc_timeout
        self.rpc_retries = rpc_retries
        self.me: Peer | None = None
        self.engine: CallEngine | None = None  # type: ignore[assignment]
        self.on_incoming_call: IncomingCallback | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self.on_message: MessageCallback | None = None
        self.gateway_user_ids: set[int] = set()  # other gateway accounts: their calls are flagged (SIP 482)
        self.calls: dict[int, PrivateCall] = {}
        self._orphans: dict[int, list[tuple[float, object]]] = {}
        self._dh: tuple[int, bytes, int] | None = None  # g, p, version
        self._dh_at = 0.0  # time.monotonic() when _dh was last confirmed
        self._dh_request: asyncio.Future[None] | None = None  # GetDhConfig in flight
        self._handler: tuple[RawUpdateHandler, int] | None = None

    async def start(self) -> "TelegramAccount":
        if not self.client.is_connected:
            await self.client.start()
        self.engine = CallEngine(sample_rate=self.sample_rate)
        handler = RawUpdateHandler(self._on_raw_update)
        self.client.add_handler(handler, group=-100)
        self._handler = (handler, -100)
        full = await self.invoke(raw.functions.users.GetFullUser(id=raw.types.InputUserSelf()))
        self.me = Peer.from_user(full.users[0])
        self._refresh_dh_if_old()  # meanwhile: the first call need not ask
        return self

    async def stop(self) -> None:
        if self._dh_request is not None:
            self._dh_request.cancel()
        for call in list(self.calls.values()):
            await call.hangup(DiscardReason.DISCONNECT)
        if self._handlers:
            _, left = await asyncio.wait(self._handlers, timeout=HANDLERS_DRAIN_TIMEOUT_S)
            for task in left:
                log.warning("an incoming-call handler was still running %.0f s after its call ended; cancelled",
                            HANDLERS_DRAIN_TIMEOUT_S)
                task.cancel()
        if self._handler is not None:
            self.client.remove_handler(*self._handler)
            self._handler = None
        if self.engine is not None:
            await self.engine.close()
        if self.client.is_connected:
            await self.client.stop()

    # --- raw API with typed errors ----------------------------------------------------------------

    async def invoke(self, function: Any, timeout: float | None = None) -> Any:
        """`client.invoke` with the account's timeout; Telegram errors propagate as pyrogram raises them."""
        return await self.client.invoke(
            function, retries=self.rpc_retries, timeout=timeout or self.rpc_timeout, sleep_threshold=0
        )

    async def _typed(self, coro: Awaitable[T]) -> T:
        try:
            return await coro
        except Exception as exc:  # noqa: BLE001
            raise call_error(exc) from exc

    async def dh_config(self) -> DhParams:
        """Telegram's DH generator and prime, asked once an hour, with 256 fresh random bytes from this machine.

        Asking `messages.getDhConfig` for every call would put a round trip before each RequestCall; the
        server's random bytes only add to the client's own entropy, and os.urandom is the kernel's CSPRNG.
        A call waits for the request only when there is no config yet: an hour-old one serves while it is renewed
        (as it does when renewing fails).
        """
        refreshing = self._refresh_dh_if_old()
        if refreshing is not None and self._dh is None:
            await asyncio.shield(refreshing)  # a caller cancelled does not cancel the others' request
        assert self._dh is not None
        return DhParams(self._dh[0], self._dh[1], os.urandom(256))

    def _refresh_dh_if_old(self) -> "asyncio.Future[None] | None":
        """The one request for Telegram's DH config in flight while ours is missing or old (made here if need be):
        calls placed at once share it."""
        if self._dh is not None and time.monotonic() - self._dh_at <= DH_CONFIG_MAX_AGE_S:
            return None
        if self._dh_request is None:
            request = self._dh_request = asyncio.ensure_future(self._refresh_dh())
            request.add_done_callback(self._dh_refreshed)
        return self._dh_request

    def _dh_refreshed(self, request: "asyncio.Future[None]") -> None:
        self._dh_request = None
        retrieve(request)  # its callers saw its error, if any

    async def _refresh_dh(self) -> None:
        version = self._dh[2] if self._dh else 0
        try:
            result = await self.invoke(raw.functions.messages.GetDhConfig(version=version, random_length=0))
        except Exception as exc:  # noqa: BLE001 - a config we have is still good; without one the call fails
            if self._dh is None:
                raise
            log.warning("refreshing Telegram's DH config failed (%s); using the one from %.0f s ago",
                        exc, time.monotonic() - self._dh_at)
            return
        if isinstance(result, raw.types.messages.DhConfig):
            self._dh = (result.g, result.p, result.version)
        self._dh_at = time.monotonic()

    # --- targets ----------------------------------------------------------------------------------

    async def resolve(self, target: Target | str) -> Peer:
        """A `Target`, or text in the one target grammar (`app.telegram.target`): +phone, @username, idUSERID."""
        if isinstance(target, str):
            try:
                target = parse_target(target)
            except TargetError as exc:
                raise PeerNotFound(f"Not Found: {exc}") from None
        if target.kind is TargetKind.PHONE:
            return await self.resolve_phone(target.value)
        if target.kind is TargetKind.USERNAME:
            return await self.resolve_username(target.value)
        return await self.resolve_user_id(int(target.value))

    async def resolve_phone(self, phone: str) -> Peer:
        """Digits of an international number, without "+"."""
        return await self._typed(self._resolve_phone(phone))

    async def resolve_username(self, username: str) -> Peer:
        return await self._typed(self._resolve_username(username))

    async def resolve_user_id(self, user_id: int) -> Peer:
        """Only a user the account has already met (Telegram needs the access hash): else `AnonymousUser`."""
        return await self._typed(self._resolve_id(user_id))

    async def _resolve_username(self, username: str) -> Peer:
        result = await self.invoke(raw.functions.contacts.ResolveUsername(username=username))
        return self._peer_from(result.users, getattr(result.peer, "user_id", None))

    async def _resolve_phone(self, phone: str) -> Peer:
        try:
            result = await self.invoke(raw.functions.contacts.ResolvePhone(phone=phone))
            return self._peer_from(result.users, getattr(result.peer, "user_id", None))
        except tg.PhoneNotOccupied:
            pass
        # Phone privacy hides the number from strangers; importing it as a contact still finds it.
        imported = await self.invoke(
            raw.functions.contacts.ImportContacts(
                contacts=[raw.types.InputPhoneContact(client_id=1, phone=phone, first_name=phone, last_name="")]
            )
        )
        if not imported.imported:
            raise PeerNotFound("Not Found", rpc="PHONE_NOT_OCCUPIED")
        return self._peer_from(imported.users, imported.imported[0].user_id)

    async def _resolve_id(self, user_id: int) -> Peer:
        try:
            input_peer = await self.client.resolve_peer(user_id)
        except (tg.PeerIdInvalid, KeyError) as exc:
            raise AnonymousUser("Anonymous user", rpc="PEER_ID_INVALID") from exc
        users = await self.invoke(
            raw.functions.users.GetUsers(
                id=[raw.types.InputUser(user_id=input_peer.user_id, access_hash=input_peer.access_hash)]
            )
        )
        if not users or isinstance(users[0], raw.types.UserEmpty):
            raise AnonymousUser("Anonymous user", rpc="PEER_ID_INVALID")
        return Peer.from_user(users[0])

    @staticmethod
    def _peer_from(users: list[Any], user_id: int | None) -> Peer:
        for user in users:
            if isinstance(user, raw.types.User) and (user_id is None or user.id == user_id):
                return Peer.from_user(user)
        raise PeerNotFound("Chat not found")

    # --- calls ------------------------------------------------------------------------------------

    async def call(self, target: Peer | Target | str) -> PrivateCall:
        """Place a call; returns once Telegram accepted the request (the call then rings or fails)."""
        self._refresh_dh_if_old()  # asked while the target is resolved
        peer = target if isinstance(target, Peer) else await self.resolve(target)
        return await PrivateCall.place(self, peer)

    def register(self, call: PrivateCall) -> None:
        assert call.id is not None
        self.calls[call.id] = call
        for _at, update in self._orphans.pop(call.id, []):
            self._route(call, update)

    def unregister(self, call: PrivateCall) -> None:
        if call.id is not None:
            self.calls.pop(call.id, None)

    # --- chat -------------------------------------------------------------------------------------

    async def send_message(self, peer: Peer, text: str) -> None:
        await self._typed(
            self.invoke(
                raw.functions.messages.SendMessage(
                    peer=peer.input_peer(), message=text, random_id=int.from_bytes(os.urandom(8), "big") >> 1
                )
            )
        )

    async def chat_peer(self, chat: str) -> Any:
        """The input peer of a chat to post to: "me" (Saved Messages), a user in the target grammar, or any chat,
        group or channel pyrogram can resolve (@name, or an id such as -100…)."""
        if chat in ("me", "self"):
            return raw.types.InputPeerSelf()
        try:
            return (await self.resolve(chat)).input_peer()
        except PeerNotFound:
            return await self.client.resolve_peer(int(chat) if chat.lstrip("-").isdigit() else chat)

    async def send_voice(self, chat: str, path: Path, caption: str, duration_s: int) -> int:
        """Upload an OGG/Opus file (upload.saveFilePart, or saveBigFilePart past 10 MB) and post it to `chat`
        as a voice message with `caption`; the message's id. Telegram's errors propagate as pyrogram raises them."""
        peer = await self.chat_peer(chat)
        size = path.stat().st_size
        parts = max(1, -(-size // UPLOAD_PART))
        big = size > BIG_FILE
        file_id = int.from_bytes(os.urandom(8), "big") >> 1
        with path.open("rb") as source:
            for part in range(parts):
                data = source.read(UPLOAD_PART)
                if big:
                    query: Any = raw.functions.upload.SaveBigFilePart(file_id=file_id, file_part=part,
                                                                      file_total_parts=parts, bytes=data)
                else:
                    query = raw.functions.upload.SaveFilePart(file_id=file_id, file_part=part, bytes=data)
                await self.invoke(query)
        uploaded = (raw.types.InputFileBig(id=file_id, parts=parts, name=path.name) if big else
                    raw.types.InputFile(id=file_id, parts=parts, name=path.name, md5_checksum=""))
        media = raw.types.InputMediaUploadedDocument(
            file=uploaded, mime_type="audio/ogg",
            attributes=[raw.types.DocumentAttributeAudio(duration=duration_s, voice=True),
                        raw.types.DocumentAttributeFilename(file_name=path.name)])
        updates = await self.invoke(raw.functions.messages.SendMedia(
            peer=peer, media=media, message=caption, random_id=int.from_bytes(os.urandom(8), "big") >> 1))
        for update in getattr(updates, "updates", []):
            if isinstance(update, raw.types.UpdateMessageID):
                return int(update.id)
        return 0

    # --- updates ----------------------------------------------------------------------------------

    async def _on_raw_update(self, _client: Client, update: Any, users: dict[int, Any], _chats: dict) -> None:
        if isinstance(update, raw.types.UpdatePhoneCall):
            await self._on_phone_call(update.phone_call, users)
        elif isinstance(update, raw.types.UpdatePhoneCallSignalingData):
            call = self.calls.get(update.phone_call_id)
            if call is not None:
                call.handle_signaling(update.data)
            else:
                self._keep_orphan(update.phone_call_id, update)
        elif isinstance(update, raw.types.UpdateNewMessage):
            await self._on_new_message(update.message, users)

    async def _on_phone_call(self, phone_call: Any, users: dict[int, Any]) -> None:
        call = self.calls.get(phone_call.id)
        if call is not None:
            call.handle(phone_call)
        elif isinstance(phone_call, raw.types.PhoneCallRequested):
            await self._on_requested(phone_call, users)
        elif not isinstance(phone_call, raw.types.PhoneCallDiscarded) or phone_call.id not in self._orphans:
            self._keep_orphan(phone_call.id, phone_call)

    async def _on_requested(self, phone_call: raw.types.PhoneCallRequested, users: dict[int, Any]) -> None:
        user = users.get(phone_call.admin_id)
        if user is None:
            result = await self.invoke(
                raw.functions.users.GetUsers(id=[raw.types.InputUser(user_id=phone_call.admin_id, access_hash=0)])
            )
            user = result[0]
        call = PrivateCall.incoming(self, Peer.from_user(user), phone_call)
        call.from_gateway = call.peer.id in self.gateway_user_ids
        self.register(call)
        if self.engine is not None and self.engine.busy_with(call.peer.id):
            await call.hangup(DiscardReason.BUSY)  # NTgCalls keys calls by user: one call per peer
            return
        try:
            await self.invoke(raw.functions.phone.ReceivedCall(peer=call.input_call()))
        except Exception as exc:  # noqa: BLE001 - the caller may have hung up already
            log.info("ReceivedCall failed: %s", exc)
        call.start_ring_timer()
        if self.on_incoming_call is not None:
            result = self.on_incoming_call(call)
            if asyncio.iscoroutine(result):
                # The handler's own task, not the call's: the call cancels its tasks when it ends, and a handler
                # (the gateway's whole call session) must live on to hang up its SIP leg and write its record.
                task = asyncio.ensure_future(result)
                self._handlers.add(task)
                task.add_done_callback(self._handler_done)

    def _handler_done(self, task: "asyncio.Task[Any]") -> None:
        self._handlers.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("the incoming-call handler failed", exc_info=task.exception())

    def _route(self, call: PrivateCall, update: object) -> None:
        if isinstance(update, raw.types.UpdatePhoneCallSignalingData):
            call.handle_signaling(update.data)
        else:
            call.handle(update)

    def _keep_orphan(self, call_id: int, update: object) -> None:
        # Updates can overtake the RPC result that tells us the call id; replay them on register().
        now = time.monotonic()
        for key in [k for k, v in self._orphans.items() if v and now - v[0][0] > ORPHAN_TTL_S]:
            del self._orphans[key]
        self._orphans.setdefault(call_id, []).append((now, update))

    async def _on_new_message(self, message: Any, users: dict[int, Any]) -> None:
        if not isinstance(message, raw.types.Message) or message.out or self.on_message is None:
            return
        sender = getattr(message.from_id, "user_id", None) or getattr(message.peer_id, "user_id", None)
        user = users.get(sender)
        if user is None:
            return
        result = self.on_message(Peer.from_user(user), message.message)
        if asyncio.iscoroutine(result):
            await result
