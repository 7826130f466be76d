"""The simulated network's records for tests stay bounded over a long run (issue 8, item 8: memory per call)."""

from __future__ import annotations

from pyrogram import raw

from app.telegram.privatecall import call_protocol
from app.telegram.sim.network import SimNetwork
from app.telegram.sim.transport import dump, load


class Inbox:
    """Where the network pushes a session's updates."""

    def __init__(self) -> None:
        self.updates: list[bytes] = []

    def push(self, updates: bytes) -> None:
        self.updates.append(updates)


LONG_RUN = 1_100  # calls and messages; the network keeps the newest 1 000 of each, and of its request log
KEPT = 1_000


async def test_requests_ended_calls_and_messages_are_bounded() -> None:
    network = SimNetwork()
    alice = network.add_user("+15550000001", "Alice", username="alice")
    bob = network.add_user("+15550000002", "Bob", username="bob")
    conn = network.connect(network.new_auth_key(alice.id), Inbox())

    async def invoke(query: object) -> object:
        result, error = await conn.call(dump(query))
        assert error is None, error
        return load(result)

    resolved = await invoke(raw.functions.contacts.ResolveUsername(username="bob"))
    to_bob = raw.types.InputUser(user_id=bob.id, access_hash=resolved.users[0].access_hash)
    ids = []
    for n in range(LONG_RUN):
        placed = await invoke(raw.functions.phone.RequestCall(user_id=to_bob, random_id=n, g_a_hash=b"\0" * 32,
                                                              protocol=call_protocol()))
        call = placed.phone_call
        ids.append(call.id)
        await invoke(raw.functions.phone.DiscardCall(
            peer=raw.types.InputPhoneCall(id=call.id, access_hash=call.access_hash), duration=0,
            reason=raw.types.PhoneCallDiscardReasonHangup(), connection_id=0))
        network.deliver_message(alice.id, bob.id, f"message {n}")
    network.close()

    assert len(network.requests) == KEPT and network.requests[-1] == (alice.id, "phone.DiscardCall")
    assert sorted(network.calls) == sorted(ids[-KEPT:])  # the newest ended calls, for their discard reason
    assert network.calls[ids[-1]].discard_reason == "hangup"
    assert [text for _sender, text in bob.inbox] == [f"message {n}" for n in range(LONG_RUN - KEPT, LONG_RUN)]
