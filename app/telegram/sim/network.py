"""The simulated Telegram servers: accounts, logins, privacy, contacts, chats and private-call signaling.

It answers the raw TL functions pyrogram sends (as TL bytes) and pushes raw TL updates, so a gateway's pyrogram
code runs unchanged against it. Calls are relayed like Telegram relays them: the sim never touches media; the
two NTgCalls endpoints exchange keys and signaling through it and then talk WebRTC over loopback.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyrogram import raw
from pyrogram.crypto.prime import CURRENT_DH_PRIME
from pyrogram.raw.all import objects as raw_objects
from pyrogram.errors.rpc_error import exceptions as _rpc_exceptions
from pyrogram.raw.core import Bool, TLObject, Vector

from app.telegram.sim.bots import BotServer, SimMessage, markup_buttons
from app.telegram.sim.transport import PushTarget, dump, load

log = logging.getLogger(__name__)

DH_G = 3
DH_P = CURRENT_DH_PRIME.to_bytes(256, "big")
DH_VERSION = 1
DAY_S = 86_400
TIMEOUT = "TIMEOUT"  # an injected "error" that never answers
# What the network remembers for tests, bounded so a long run (the soak bench, a demo left running) stays flat.
KEEP_REQUESTS = 1_000  # newest (account, function) pairs in `requests`
KEEP_ENDED_CALLS = 1_000  # discarded calls kept in `calls` (for their discard reason); active ones always are
KEEP_MESSAGES = 1_000  # newest messages in each user's inbox


class RpcFail(Exception):
    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or error_code(message)


def error_code(message: str) -> int:
    """The HTTP-like code Telegram uses for an error id, from pyrogram's own table."""
    key = re.sub(r"_\d+$", "_X", message)
    for code, ids in sorted(_rpc_exceptions.items()):
        if key in ids:
            return code
    return 400


@dataclass
class Privacy:
    calls: str = "everybody"  # everybody | contacts | nobody | premium
    p2p: str = "contacts"
    groups: str = "everybody"
    phone_discoverable: bool = True


@dataclass
class Device:
    hash: int
    model: str
    call_requests_disabled: bool = False


@dataclass
class SimUser:
    """A Telegram account known to the network (gateway accounts and simulated people alike)."""

    id: int
    phone: str  # digits only
    first_name: str
    last_name: str = ""
    username: str | None = None
    password: str | None = None  # two-step verification
    premium: bool = False
    privacy: Privacy = field(default_factory=Privacy)
    contacts: set[int] = field(default_factory=set)
    devices: list[Device] = field(default_factory=list)
    inbox: deque[tuple[int, str]] = field(default_factory=lambda: deque(maxlen=KEEP_MESSAGES))  # (from id, text)
    # the same messages with their buttons
    received: deque[SimMessage] = field(default_factory=lambda: deque(maxlen=KEEP_MESSAGES))
    bot_token: str | None = None  # a bot account: logs in with this token
    bot_inline: bool = False  # a bot with inline mode on
    pts: int = 0
    message_id: int = 0


@dataclass
class SimMedia:
    """A file posted with messages.sendMedia, as the receiving chat got it."""

    from_id: int
    to_id: int  # the chat: a user, or the sender itself for Saved Messages
    data: bytes
    caption: str
    mime_type: str
    attributes: list[Any]


@dataclass
class SimCall:
    id: int
    access_hash: int
    admin_id: int
    participant_id: int
    g_a_hash: bytes
    protocol: raw.types.PhoneCallProtocol
    date: int
    state: str = "waiting"  # waiting | accepted | active | discarded
    receive_date: int | None = None
    g_b: bytes = b""
    participant_protocol: raw.types.PhoneCallProtocol | None = None
    discard_reason: str | None = None
    discarded_by: int | None = None
    duration: int = 0

    def other(self, user_id: int) -> int:
        return self.participant_id if user_id == self.admin_id else self.admin_id


@dataclass
class Injection:
    function: str  # e.g. "phone.RequestCall"
    error: str  # e.g. "FLOOD_WAIT_30", "PEER_FLOOD" or TIMEOUT
    times: int = 1
    user_id: int | None = None  # only for requests from this account


@dataclass
class _Login:
    phone: str
    code: str
    phone_code_hash: str
    sent_at: float
    expired: bool = False


@dataclass
class _Srp:
    user_id: int
    srp_id: int
    b: int
    B: bytes
    salt1: bytes
    salt2: bytes


class _Conn:
    """One connected pyrogram session."""

    def __init__(self, network: "SimNetwork", auth_key: bytes, target: PushTarget) -> None:
        self.network = network
        self.auth_key = auth_key
        self.target = target
        self.open = True

    @property
    def user_id(self) -> int | None:
        return self.network._authorized.get(self.auth_key)

    async def call(self, query: bytes) -> tuple[bytes | None, tuple[int, str] | None]:
        return await self.network._handle(self, load(query))

    def close(self) -> None:
        self.open = False
        self.network._conns.discard(self)

    def push(self, data: bytes) -> None:
        if self.open:
            self.target.push(data)


class SimNetwork(BotServer):
    """Telegram's servers, in-process. Create users with `add_user`, connect clients with `SimClient`."""

    def __init__(self, *, ring_timeout: float = 90.0, code: str = "12345", code_ttl: float = 300.0,
                 fresh_session_days: float = 1.0) -> None:
        self.ring_timeout = ring_timeout
        self.code = code
        self.code_ttl = code_ttl
        self.fresh_session_days = fresh_session_days
        self.users: dict[int, SimUser] = {}
        self.calls: dict[int, SimCall] = {}
        self.injections: list[Injection] = []
        self.requests: deque[tuple[int | None, str]] = deque(maxlen=KEEP_REQUESTS)  # (account, function)
        self._ended: deque[int] = deque()  # ids of discarded calls still in `calls`, oldest first
        self._secret = os.urandom(16)
        self._next_id = 100_000_001
        self._authorized: dict[bytes, int] = {}
        self._login_time: dict[bytes, float] = {}
        self._pending_password: dict[bytes, int] = {}
        self._logins: dict[str, _Login] = {}
        self._srp: dict[int, _Srp] = {}
        self._seen: dict[int, set[int]] = {}
        self._conns: set[_Conn] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self.on_call_end: Callable[[SimCall], None] | None = None
        self._bots_init()
        self.media: list[SimMedia] = []
        self._uploads: dict[tuple[int, int], dict[int, bytes]] = {}  # (user, file id) -> part -> bytes

    # --- set-up ----------------------------------------------------------------------------------

    def add_user(self, phone: str, first_name: str, last_name: str = "", username: str | None = None,
                 password: str | None = None, **kwargs: Any) -> SimUser:
        user = SimUser(id=self._next_id, phone=phone.lstrip("+"), first_name=first_name, last_name=last_name,
                       username=username, password=password, **kwargs)
        self._next_id += 1
        user.devices.append(Device(hash=self._long(b"device", user.id), model="Telegram Android"))
        self.users[user.id] = user
        return user

    def user(self, key: int | str) -> SimUser:
        for user in self.users.values():
            if key in (user.id, user.phone, f"+{user.phone}", user.username, f"@{user.username}"):
                return user
        raise KeyError(key)

    def inject(self, function: str, error: str, times: int = 1, user_id: int | None = None) -> None:
        self.injections.append(Injection(function, error, times, user_id))

    def last_code(self, phone: str) -> str:
        return self._logins[phone.lstrip("+")].code

    def expire_code(self, phone: str) -> None:
        self._logins[phone.lstrip("+")].expired = True

    def new_auth_key(self, user_id: int | None) -> bytes:
        key = os.urandom(256)
        if user_id is not None:
            self._authorize(key, user_id, fresh=False)
        return key

    def connect(self, auth_key: bytes, target: PushTarget) -> _Conn:
        conn = _Conn(self, auth_key, target)
        self._conns.add(conn)
        return conn

    def online(self, user_id: int) -> bool:
        return any(c.user_id == user_id for c in self._conns)

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    # --- dispatch --------------------------------------------------------------------------------

    async def _handle(self, conn: _Conn, query: TLObject) -> tuple[bytes | None, tuple[int, str] | None]:
        while isinstance(query, (raw.functions.InvokeWithoutUpdates, raw.functions.InvokeWithLayer,
                                 raw.functions.InitConnection)):
            query = query.query
        name = query.QUALNAME.removeprefix("functions.")
        self.requests.append((conn.user_id, name))
        injected = self._take_injection(name, conn.user_id)
        if injected == TIMEOUT:
            await asyncio.Event().wait()  # never answers; the client's timeout fires
        try:
            if injected is not None:
                raise RpcFail(injected)
            handler = getattr(self, "_" + name.replace(".", "_"), None)
            if handler is None:
                raise RpcFail("METHOD_NOT_SUPPORTED_BY_SIM", 400)
            if not name.startswith(("auth.", "help.")) and name != "account.GetPassword" and conn.user_id is None:
                raise RpcFail("AUTH_KEY_UNREGISTERED", 401)
            result = handler(conn, query)
            if asyncio.iscoroutine(result):
                result = await result
        except RpcFail as fail:
            return None, (fail.code, fail.message)
        return _encode(result), None

    def _take_injection(self, name: str, user_id: int | None) -> str | None:
        for inj in self.injections:
            if inj.function == name and inj.times > 0 and inj.user_id in (None, user_id):
                inj.times -= 1
                return inj.error
        return None

    # --- helpers ---------------------------------------------------------------------------------

    def _long(self, *parts: object) -> int:
        digest = hashlib.sha256(self._secret + repr(parts).encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def _access_hash(self, viewer: int, target: int) -> int:
        return self._long("access", viewer, target)

    def _view(self, viewer: int, user: SimUser) -> raw.types.User:
        self._seen.setdefault(viewer, set()).add(user.id)
        me = self.users[viewer]
        return raw.types.User(
            id=user.id,
            is_self=user.id == viewer,
            contact=user.id in me.contacts,
            mutual_contact=user.id in me.contacts and viewer in user.contacts,
            access_hash=self._access_hash(viewer, user.id),
            first_name=user.first_name,
            last_name=user.last_name or None,
            username=user.username,
            phone=user.phone,
            premium=user.premium,
            bot=bool(user.bot_token),
            bot_info_version=1 if user.bot_token else None,  # shares flag 14 with `bot`: both or neither
            bot_inline_placeholder="search" if user.bot_inline else None,
            status=raw.types.UserStatusOnline(expires=_now() + 300) if self.online(user.id)
            else raw.types.UserStatusRecently(),
        )

    def _input_user(self, viewer: int, input_user: Any) -> SimUser:
        if isinstance(input_user, (raw.types.InputUserSelf, raw.types.InputPeerSelf)):
            return self.users[viewer]
        user = self.users.get(getattr(input_user, "user_id", -1))
        if user is None:
            raise RpcFail("USER_ID_INVALID")
        if input_user.access_hash != self._access_hash(viewer, user.id):
            if not (input_user.access_hash == 0 and user.id in self._seen.get(viewer, set())):
                raise RpcFail("PEER_ID_INVALID")
        return user

    def _push(self, user_id: int, updates: list[Any], users: list[SimUser]) -> None:
        data = dump(raw.types.Updates(updates=updates, users=[self._view(user_id, u) for u in users],
                                      chats=[], date=_now(), seq=0))
        for conn in list(self._conns):
            if conn.user_id == user_id:
                conn.push(data)

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle | None = None

        def run() -> None:
            nonlocal timer
            self._timers.discard(timer)  # type: ignore[arg-type]
            timer = None  # the handle holds this function: a reference cycle if it held the handle after
            fn()

        timer = loop.call_later(delay, run)
        self._timers.add(timer)

    def _authorize(self, key: bytes, user_id: int, fresh: bool = True) -> None:
        self._authorized[key] = user_id
        self._login_time[key] = time.time() if fresh else time.time() - 30 * DAY_S
        self._pending_password.pop(key, None)

    # --- updates / users / contacts --------------------------------------------------------------

    def _updates_GetState(self, conn: _Conn, q: Any) -> Any:
        user = self.users[conn.user_id]  # type: ignore[index]
        return raw.types.updates.State(pts=user.pts, qts=0, date=_now(), seq=0, unread_count=0)

    def _updates_GetDifference(self, conn: _Conn, q: Any) -> Any:
        return raw.types.updates.DifferenceEmpty(date=_now(), seq=0)

    def _users_GetFullUser(self, conn: _Conn, q: Any) -> Any:
        viewer = conn.user_id
        user = self._input_user(viewer, q.id)
        full = raw.types.UserFull(id=user.id, settings=raw.types.PeerSettings(),
                                  notify_settings=raw.types.PeerNotifySettings(), common_chats_count=0,
                                  phone_calls_available=True, phone_calls_private=user.privacy.p2p != "everybody")
        return raw.types.users.UserFull(full_user=full, chats=[], users=[self._view(viewer, user)])

    def _users_GetUsers(self, conn: _Conn, q: Any) -> Any:
        found = []
        for input_user in q.id:
            try:
                found.append(self._view(conn.user_id, self._input_user(conn.user_id, input_user)))
            except RpcFail:
                continue  # Telegram leaves unknown ids out
        return found

    def _contacts_ResolveUsername(self, conn: _Conn, q: Any) -> Any:
        name = q.username.lower()
        for user in self.users.values():
            if user.username and user.username.lower() == name:
                return raw.types.contacts.ResolvedPeer(peer=raw.types.PeerUser(user_id=user.id), chats=[],
                                                       users=[self._view(conn.user_id, user)])
        raise RpcFail("USERNAME_NOT_OCCUPIED")

    def _contacts_ResolvePhone(self, conn: _Conn, q: Any) -> Any:
        phone = q.phone.lstrip("+")
        for user in self.users.values():
            if user.phone == phone and (user.privacy.phone_discoverable or conn.user_id in user.contacts):
                return raw.types.contacts.ResolvedPeer(peer=raw.types.PeerUser(user_id=user.id), chats=[],
                                                       users=[self._view(conn.user_id, user)])
        raise RpcFail("PHONE_NOT_OCCUPIED")

    def _contacts_ImportContacts(self, conn: _Conn, q: Any) -> Any:
        me = self.users[conn.user_id]  # type: ignore[index]
        imported, users = [], []
        for contact in q.contacts:
            phone = contact.phone.lstrip("+")
            user = next((u for u in self.users.values() if u.phone == phone), None)
            if user is None:
                continue
            me.contacts.add(user.id)
            imported.append(raw.types.ImportedContact(user_id=user.id, client_id=contact.client_id))
            users.append(self._view(me.id, user))
        return raw.types.contacts.ImportedContacts(imported=imported, popular_invites=[], retry_contacts=[],
                                                   users=users)

    # --- chat ------------------------------------------------------------------------------------

    def _messages_SendMessage(self, conn: _Conn, q: Any) -> Any:
        sender = self.users[conn.user_id]  # type: ignore[index]
        to = self._input_user(sender.id, raw.types.InputUser(user_id=q.peer.user_id, access_hash=q.peer.access_hash))
        self.deliver_message(sender.id, to.id, q.message)
        return self._sent(sender, to, q.message, q.random_id)

    def _sent(self, sender: SimUser, to: SimUser, text: str, random_id: int) -> Any:
        """What the sender's app gets back for a message it sent."""
        sender.message_id += 1
        sender.pts += 1
        sent = raw.types.Message(id=sender.message_id, peer_id=raw.types.PeerUser(user_id=to.id), date=_now(),
                                 message=text, out=True, from_id=raw.types.PeerUser(user_id=sender.id))
        return raw.types.Updates(
            updates=[raw.types.UpdateMessageID(id=sender.message_id, random_id=random_id),
                     raw.types.UpdateNewMessage(message=sent, pts=sender.pts, pts_count=1)],
            users=[self._view(sender.id, to)], chats=[], date=_now(), seq=0)

    def deliver_message(self, from_id: int, to_id: int, text: str, via_bot_id: int | None = None,
                        reply_markup: Any = None) -> SimMessage:
        to, sender = self.users[to_id], self.users[from_id]
        to.inbox.append((from_id, text))
        to.message_id += 1
        to.pts += 1
        received = SimMessage(to.message_id, from_id, text, via_bot_id, markup_buttons(reply_markup))
        to.received.append(received)
        message = raw.types.Message(id=to.message_id, peer_id=raw.types.PeerUser(user_id=from_id), date=_now(),
                                    message=text, out=False, from_id=raw.types.PeerUser(user_id=from_id),
                                    via_bot_id=via_bot_id, reply_markup=reply_markup)
        users = [sender] + ([self.users[via_bot_id]] if via_bot_id else [])
        self._push(to_id, [raw.types.UpdateNewMessage(message=message, pts=to.pts, pts_count=1)], users)
        return received

    # --- files -----------------------------------------------------------------------------------

    def _upload_SaveFilePart(self, conn: _Conn, q: Any) -> Any:
        self._save_part(conn, q.file_id, q.file_part, q.bytes)
        return True

    def _upload_SaveBigFilePart(self, conn: _Conn, q: Any) -> Any:
        if not 0 <= q.file_part < q.file_total_parts:
            raise RpcFail("FILE_PART_INVALID")
        self._save_part(conn, q.file_id, q.file_part, q.bytes)
        return True

    def _save_part(self, conn: _Conn, file_id: int, part: int, data: bytes) -> None:
        if part < 0 or part > 3999:
            raise RpcFail("FILE_PART_INVALID")
        if len(data) > 512 * 1024:
            raise RpcFail("FILE_PART_TOO_BIG")
        self._uploads.setdefault((conn.user_id, file_id), {})[part] = data  # type: ignore[arg-type]

    def _messages_SendMedia(self, conn: _Conn, q: Any) -> Any:
        sender = self.users[conn.user_id]  # type: ignore[index]
        if isinstance(q.peer, raw.types.InputPeerSelf):
            to = sender
        elif isinstance(q.peer, raw.types.InputPeerUser):
            to = self._input_user(sender.id, raw.types.InputUser(user_id=q.peer.user_id,
                                                                  access_hash=q.peer.access_hash))
        else:
            raise RpcFail("PEER_ID_INVALID")
        media = q.media
        if not isinstance(media, raw.types.InputMediaUploadedDocument):
            raise RpcFail("MEDIA_INVALID")
        parts = self._uploads.pop((sender.id, media.file.id), {})
        if sorted(parts) != list(range(media.file.parts)):
            raise RpcFail("FILE_PARTS_INVALID")
        data = b"".join(parts[n] for n in range(media.file.parts))
        self.media.append(SimMedia(sender.id, to.id, data, q.message, media.mime_type, list(media.attributes)))
        sender.message_id += 1
        sender.pts += 1
        document = raw.types.Document(id=self._long(b"doc", sender.id, sender.message_id), access_hash=0,
                                      file_reference=b"", date=_now(), mime_type=media.mime_type, size=len(data),
                                      dc_id=1, attributes=list(media.attributes))
        sent = raw.types.Message(id=sender.message_id, peer_id=raw.types.PeerUser(user_id=to.id), date=_now(),
                                 message=q.message, out=True, from_id=raw.types.PeerUser(user_id=sender.id),
                                 media=raw.types.MessageMediaDocument(document=document, voice=True))
        return raw.types.Updates(
            updates=[raw.types.UpdateMessageID(id=sender.message_id, random_id=q.random_id),
                     raw.types.UpdateNewMessage(message=sent, pts=sender.pts, pts_count=1)],
            users=[self._view(sender.id, to)], chats=[], date=_now(), seq=0)

    # --- calls -----------------------------------------------------------------------------------

    def _messages_GetDhConfig(self, conn: _Conn, q: Any) -> Any:
        random = os.urandom(q.random_length)
        if q.version == DH_VERSION:
            return raw.types.messages.DhConfigNotModified(random=random)
        return raw.types.messages.DhConfig(g=DH_G, p=DH_P, version=DH_VERSION, random=random)

    def _phone_GetCallConfig(self, conn: _Conn, q: Any) -> Any:
        return raw.types.DataJSON(data="{}")

    def _phone_RequestCall(self, conn: _Conn, q: Any) -> Any:
        caller = self.users[conn.user_id]  # type: ignore[index]
        callee = self._input_user(caller.id, q.user_id)
        self._check_call_privacy(caller, callee)
        call = SimCall(id=self._long("call", os.urandom(8)) & 0x7FFF_FFFF_FFFF_FFFF,
                       access_hash=self._long("call-hash", os.urandom(8)), admin_id=caller.id,
                       participant_id=callee.id, g_a_hash=q.g_a_hash, protocol=q.protocol, date=_now())
        self.calls[call.id] = call
        self._push(callee.id, [raw.types.UpdatePhoneCall(phone_call=raw.types.PhoneCallRequested(
            id=call.id, access_hash=call.access_hash, date=call.date, admin_id=caller.id,
            participant_id=callee.id, g_a_hash=call.g_a_hash, protocol=call.protocol))], [caller])
        self._later(self.ring_timeout, lambda: self._ring_timeout(call))
        return raw.types.phone.PhoneCall(phone_call=self._waiting(call), users=[self._view(caller.id, callee)])

    def _check_call_privacy(self, caller: SimUser, callee: SimUser) -> None:
        rule = callee.privacy.calls
        if caller.id in callee.contacts or rule == "everybody":
            return
        if rule == "premium":
            if caller.premium:
                return
            raise RpcFail("PRIVACY_PREMIUM_REQUIRED", 403)
        raise RpcFail("USER_PRIVACY_RESTRICTED", 403)

    def _waiting(self, call: SimCall) -> raw.types.PhoneCallWaiting:
        return raw.types.PhoneCallWaiting(id=call.id, access_hash=call.access_hash, date=call.date,
                                          admin_id=call.admin_id, participant_id=call.participant_id,
                                          protocol=call.protocol, receive_date=call.receive_date)

    def _call(self, conn: _Conn, peer: Any, states: tuple[str, ...] | None = None) -> SimCall:
        call = self.calls.get(peer.id)
        if call is None or call.access_hash != peer.access_hash or conn.user_id not in (call.admin_id,
                                                                                         call.participant_id):
            raise RpcFail("CALL_PEER_INVALID")
        if states is not None and call.state not in states:
            raise RpcFail("CALL_ALREADY_DECLINED" if call.state == "discarded" else "CALL_ALREADY_ACCEPTED")
        return call

    def _phone_ReceivedCall(self, conn: _Conn, q: Any) -> Any:
        call = self._call(conn, q.peer, ("waiting",))
        if conn.user_id == call.participant_id and call.receive_date is None:
            call.receive_date = _now()
            self._push(call.admin_id, [raw.types.UpdatePhoneCall(phone_call=self._waiting(call))], [])
        return True

    def _phone_AcceptCall(self, conn: _Conn, q: Any) -> Any:
        call = self._call(conn, q.peer, ("waiting",))
        if conn.user_id != call.participant_id:
            raise RpcFail("CALL_PEER_INVALID")
        call.state, call.g_b, call.participant_protocol = "accepted", q.g_b, q.protocol
        admin, participant = self.users[call.admin_id], self.users[call.participant_id]
        self._push(admin.id, [raw.types.UpdatePhoneCall(phone_call=raw.types.PhoneCallAccepted(
            id=call.id, access_hash=call.access_hash, date=call.date, admin_id=admin.id,
            participant_id=participant.id, g_b=call.g_b, protocol=q.protocol))], [participant])
        return raw.types.phone.PhoneCall(phone_call=self._waiting(call), users=[self._view(participant.id, admin)])

    def _phone_ConfirmCall(self, conn: _Conn, q: Any) -> Any:
        call = self._call(conn, q.peer, ("accepted",))
        if conn.user_id != call.admin_id:
            raise RpcFail("CALL_PEER_INVALID")
        if hashlib.sha256(q.g_a).digest() != call.g_a_hash:
            raise RpcFail("CALL_PROTOCOL_FLAGS_INVALID")  # the caller's key does not match its RequestCall
        call.state = "active"
        versions = _common_versions(call.protocol, call.participant_protocol or q.protocol)
        if not versions:
            self._discard(call, call.admin_id, raw.types.PhoneCallDiscardReasonDisconnect(), 0)
            raise RpcFail("CALL_PROTOCOL_LAYER_INVALID")
        protocol = raw.types.PhoneCallProtocol(min_layer=q.protocol.min_layer, max_layer=q.protocol.max_layer,
                                               udp_p2p=True, udp_reflector=True, library_versions=versions)

        def phone_call(g_a_or_b: bytes) -> raw.types.PhoneCall:
            # No reflectors here: media must go peer-to-peer over loopback.
            return raw.types.PhoneCall(id=call.id, access_hash=call.access_hash, date=call.date,
                                       admin_id=call.admin_id, participant_id=call.participant_id,
                                       g_a_or_b=g_a_or_b, key_fingerprint=q.key_fingerprint, protocol=protocol,
                                       connections=[], start_date=_now(), p2p_allowed=True)

        admin, participant = self.users[call.admin_id], self.users[call.participant_id]
        self._push(participant.id, [raw.types.UpdatePhoneCall(phone_call=phone_call(q.g_a))], [admin])
        return raw.types.phone.PhoneCall(phone_call=phone_call(call.g_b), users=[self._view(admin.id, participant)])

    def _phone_SendSignalingData(self, conn: _Conn, q: Any) -> Any:
        call = self._call(conn, q.peer, ("accepted", "active"))
        self._push(call.other(conn.user_id),  # type: ignore[arg-type]
                   [raw.types.UpdatePhoneCallSignalingData(phone_call_id=call.id, data=q.data)], [])
        return True

    def _phone_DiscardCall(self, conn: _Conn, q: Any) -> Any:
        call = self._call(conn, q.peer)
        if call.state != "discarded":
            self._discard(call, conn.user_id, q.reason, q.duration)  # type: ignore[arg-type]
        return raw.types.Updates(updates=[raw.types.UpdatePhoneCall(phone_call=self._discarded(call))],
                                 users=[], chats=[], date=_now(), seq=0)

    def _phone_SetCallRating(self, conn: _Conn, q: Any) -> Any:
        return raw.types.Updates(updates=[], users=[], chats=[], date=_now(), seq=0)

    def _phone_SaveCallDebug(self, conn: _Conn, q: Any) -> Any:
        return True

    def _discarded(self, call: SimCall) -> raw.types.PhoneCallDiscarded:
        reason = {"hangup": raw.types.PhoneCallDiscardReasonHangup, "busy": raw.types.PhoneCallDiscardReasonBusy,
                  "missed": raw.types.PhoneCallDiscardReasonMissed,
                  "disconnect": raw.types.PhoneCallDiscardReasonDisconnect}[call.discard_reason or "hangup"]()
        return raw.types.PhoneCallDiscarded(id=call.id, reason=reason, duration=call.duration)

    def _discard(self, call: SimCall, by: int, reason: Any, duration: int) -> None:
        call.state, call.discarded_by, call.duration = "discarded", by, duration or 0
        call.discard_reason = {
            raw.types.PhoneCallDiscardReasonBusy: "busy", raw.types.PhoneCallDiscardReasonMissed: "missed",
            raw.types.PhoneCallDiscardReasonDisconnect: "disconnect",
        }.get(type(reason), "hangup")
        self._push(call.other(by), [raw.types.UpdatePhoneCall(phone_call=self._discarded(call))], [])
        self._ended.append(call.id)
        while len(self._ended) > KEEP_ENDED_CALLS:
            self.calls.pop(self._ended.popleft(), None)
        if self.on_call_end is not None:
            self.on_call_end(call)

    def _ring_timeout(self, call: SimCall) -> None:
        if call.state == "waiting":
            self._discard(call, call.participant_id, raw.types.PhoneCallDiscardReasonMissed(), 0)
            self._push(call.participant_id, [raw.types.UpdatePhoneCall(phone_call=self._discarded(call))], [])

    # --- privacy and devices ---------------------------------------------------------------------

    _PRIVACY_KEYS = {
        raw.types.InputPrivacyKeyPhoneCall: "calls",
        raw.types.InputPrivacyKeyPhoneP2P: "p2p",
        raw.types.InputPrivacyKeyChatInvite: "groups",
    }

    def _privacy_rules(self, value: str) -> list[Any]:
        return {
            "everybody": [raw.types.PrivacyValueAllowAll()],
            "contacts": [raw.types.PrivacyValueAllowContacts(), raw.types.PrivacyValueDisallowAll()],
            "premium": [raw.types.PrivacyValueAllowContacts(), raw.types.PrivacyValueAllowPremium(),
                        raw.types.PrivacyValueDisallowAll()],
            "nobody": [raw.types.PrivacyValueDisallowAll()],
        }[value]

    def _account_GetPrivacy(self, conn: _Conn, q: Any) -> Any:
        key = self._PRIVACY_KEYS.get(type(q.key))
        if key is None:
            raise RpcFail("PRIVACY_KEY_INVALID")
        value = getattr(self.users[conn.user_id].privacy, key)  # type: ignore[index]
        return raw.types.account.PrivacyRules(rules=self._privacy_rules(value), chats=[], users=[])

    def _account_SetPrivacy(self, conn: _Conn, q: Any) -> Any:
        key = self._PRIVACY_KEYS.get(type(q.key))
        if key is None:
            raise RpcFail("PRIVACY_KEY_INVALID")
        kinds = {type(_constructor(rule)) for rule in q.rules}
        if raw.types.InputPrivacyValueAllowAll in kinds:
            value = "everybody"
        elif raw.types.InputPrivacyValueAllowContacts in kinds:
            value = "premium" if raw.types.InputPrivacyValueAllowPremium in kinds else "contacts"
        else:
            value = "nobody"
        setattr(self.users[conn.user_id].privacy, key, value)  # type: ignore[index]
        return raw.types.account.PrivacyRules(rules=self._privacy_rules(value), chats=[], users=[])

    def _account_GetAuthorizations(self, conn: _Conn, q: Any) -> Any:
        user = self.users[conn.user_id]  # type: ignore[index]
        current = raw.types.Authorization(
            hash=0, current=True, device_model="tgtrunk", platform="Linux", system_version="", api_id=1,
            app_name="tgtrunk", app_version="0.1", date_created=int(self._login_time.get(conn.auth_key, 0)),
            date_active=_now(), ip="127.0.0.1", country="", region="")
        others = [raw.types.Authorization(
            hash=d.hash, device_model=d.model, platform="Android", system_version="", api_id=6,
            app_name="Telegram Android", app_version="11", date_created=0, date_active=_now(), ip="127.0.0.2",
            country="", region="", official_app=True, call_requests_disabled=d.call_requests_disabled)
            for d in user.devices]
        return raw.types.account.Authorizations(authorization_ttl_days=180, authorizations=[current, *others])

    def _account_ChangeAuthorizationSettings(self, conn: _Conn, q: Any) -> Any:
        user = self.users[conn.user_id]  # type: ignore[index]
        if time.time() - self._login_time.get(conn.auth_key, 0) < self.fresh_session_days * DAY_S:
            raise RpcFail("FRESH_RESET_AUTHORISATION_FORBIDDEN", 406)
        device = next((d for d in user.devices if d.hash == q.hash), None)
        if device is None:
            raise RpcFail("HASH_INVALID")
        if q.call_requests_disabled is not None:
            device.call_requests_disabled = q.call_requests_disabled
        return True

    # --- login -----------------------------------------------------------------------------------

    def _auth_SendCode(self, conn: _Conn, q: Any) -> Any:
        phone = q.phone_number.lstrip("+").replace(" ", "")
        if not re.fullmatch(r"[0-9]{7,15}", phone):
            raise RpcFail("PHONE_NUMBER_INVALID")
        login = _Login(phone=phone, code=self.code, phone_code_hash=os.urandom(8).hex(), sent_at=time.time())
        self._logins[phone] = login
        return raw.types.auth.SentCode(type=raw.types.auth.SentCodeTypeApp(length=len(login.code)),
                                       phone_code_hash=login.phone_code_hash)

    def _auth_SignIn(self, conn: _Conn, q: Any) -> Any:
        phone = q.phone_number.lstrip("+").replace(" ", "")
        login = self._logins.get(phone)
        if login is None or login.phone_code_hash != q.phone_code_hash:
            raise RpcFail("PHONE_CODE_HASH_EMPTY")
        if login.expired or time.time() - login.sent_at > self.code_ttl:
            raise RpcFail("PHONE_CODE_EXPIRED")
        if not q.phone_code:
            raise RpcFail("PHONE_CODE_EMPTY")
        if q.phone_code != login.code:
            raise RpcFail("PHONE_CODE_INVALID")
        user = next((u for u in self.users.values() if u.phone == phone), None)
        if user is None:
            return raw.types.auth.AuthorizationSignUpRequired()
        if user.password:
            self._pending_password[conn.auth_key] = user.id
            raise RpcFail("SESSION_PASSWORD_NEEDED", 401)
        del self._logins[phone]
        self._authorize(conn.auth_key, user.id)
        return raw.types.auth.Authorization(user=self._view(user.id, user))

    def _account_GetPassword(self, conn: _Conn, q: Any) -> Any:
        user_id = conn.user_id or self._pending_password.get(conn.auth_key)
        if user_id is None:
            raise RpcFail("AUTH_KEY_UNREGISTERED", 401)
        user = self.users[user_id]
        empty = raw.types.account.Password(new_algo=raw.types.PasswordKdfAlgoUnknown(),
                                           new_secure_algo=raw.types.SecurePasswordKdfAlgoUnknown(),
                                           secure_random=os.urandom(32))
        if not user.password:
            return empty
        salt1, salt2 = self._long("salt1", user.id).to_bytes(8, "big", signed=True), os.urandom(16)
        salt1 = salt1 + os.urandom(32)
        algo = raw.types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow(
            salt1=salt1, salt2=salt2, g=DH_G, p=DH_P)
        v = pow(DH_G, int.from_bytes(_password_hash(algo, user.password), "big"), CURRENT_DH_PRIME)
        k = int.from_bytes(_sha256(DH_P + _pad(DH_G)), "big")
        b = int.from_bytes(os.urandom(256), "big")
        B = (k * v + pow(DH_G, b, CURRENT_DH_PRIME)) % CURRENT_DH_PRIME
        srp_id = self._long("srp", os.urandom(8))
        self._srp[srp_id] = _Srp(user.id, srp_id, b, _pad(B), salt1, salt2)
        empty.has_password, empty.current_algo, empty.srp_B, empty.srp_id = True, algo, _pad(B), srp_id
        empty.hint = ""
        return empty

    def _auth_CheckPassword(self, conn: _Conn, q: Any) -> Any:
        check = q.password
        srp = self._srp.pop(check.srp_id, None)
        if srp is None or self._pending_password.get(conn.auth_key) != srp.user_id:
            raise RpcFail("SRP_ID_INVALID")
        user = self.users[srp.user_id]
        algo = raw.types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow(
            salt1=srp.salt1, salt2=srp.salt2, g=DH_G, p=DH_P)
        p = CURRENT_DH_PRIME
        v = pow(DH_G, int.from_bytes(_password_hash(algo, user.password or ""), "big"), p)
        A = int.from_bytes(check.A, "big")
        u = int.from_bytes(_sha256(check.A + srp.B), "big")
        S = pow(A * pow(v, u, p) % p, srp.b, p)
        K = _sha256(_pad(S))
        h_p, h_g = _sha256(DH_P), _sha256(_pad(DH_G))
        expected = _sha256(bytes(a ^ b for a, b in zip(h_p, h_g)) + _sha256(srp.salt1) + _sha256(srp.salt2)
                           + check.A + srp.B + K)
        if expected != check.M1:
            raise RpcFail("PASSWORD_HASH_INVALID")
        self._authorize(conn.auth_key, user.id)
        return raw.types.auth.Authorization(user=self._view(user.id, user))

    def _auth_LogOut(self, conn: _Conn, q: Any) -> Any:
        self._authorized.pop(conn.auth_key, None)
        return raw.types.auth.LoggedOut()

    def revoke_sessions(self, user_id: int) -> int:
        """The user terminated every session (Settings > Devices): their keys get AUTH_KEY_UNREGISTERED."""
        keys = [key for key, uid in self._authorized.items() if uid == user_id]
        for key in keys:
            del self._authorized[key]
        return len(keys)

    def authorizations(self, user_id: int) -> int:
        """How many gateway sessions are logged in to this account (for tests)."""
        return sum(1 for uid in self._authorized.values() if uid == user_id)


def _common_versions(a: Any, b: Any) -> list[str]:
    theirs = set(b.library_versions)
    common = [v for v in a.library_versions if v in theirs]
    return common[-1:] if common else []


def _constructor(value: Any) -> Any:
    """pyrogram reads a vector of field-less objects as ints (their constructor ids); turn them back."""
    if not isinstance(value, int):
        return value
    cls = raw_objects.get(value & 0xFFFF_FFFF)
    return value if cls is None else cls()


def _encode(result: Any) -> bytes:
    if isinstance(result, bool):
        return Bool(result)
    if isinstance(result, list):
        return Vector(result)
    return result.write()


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _pad(value: int) -> bytes:
    return value.to_bytes(256, "big")


def _password_hash(algo: Any, password: str) -> bytes:
    h1 = _sha256(algo.salt1 + password.encode() + algo.salt1)
    h2 = _sha256(algo.salt2 + h1 + algo.salt2)
    h3 = hashlib.pbkdf2_hmac("sha512", h2, algo.salt1, 100000)
    return _sha256(algo.salt2 + h3 + algo.salt2)


def _now() -> int:
    return int(time.time())
