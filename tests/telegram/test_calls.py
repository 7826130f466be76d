"""Real NTgCalls calls between the gateway's engine and simulated users, through the simulated servers."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.telegram.account import TelegramAccount
from app.calls.codes import for_end, for_error
from app.telegram.callengine import SAMPLE_RATE, SIGNAL_QUIET_MAX_S, SIGNAL_QUIET_S
from app.telegram.privatecall import CallEnded, CallState, DiscardReason, PrivateCall
from app.telegram.errors import TelegramError
from app.telegram.sim import Behaviour, CallAudio, SimNetwork, SimPhone, Tone
from app.telegram.sim.network import TIMEOUT

from tests.audio import dominant_frequency, level_dbfs
from tests.telegram.conftest import RING_TIMEOUT, IncomingCalls, PhoneFactory

ONE_SECOND = SAMPLE_RATE * 2  # bytes of one second of mono s16le


class Recorder:
    """What the SIP side does: push 20 ms of a tone through push_audio, paced like RTP; and record what it hears."""

    def __init__(self, call: PrivateCall, hz: float | None = None, dbfs: float = -12.0) -> None:
        self.pcm = bytearray()
        self._want = 0
        self._enough: asyncio.Future[None] | None = None
        CallAudio(call, self._on_audio, Tone(hz, dbfs) if hz else None)

    def _on_audio(self, pcm: bytes) -> None:
        self.pcm.extend(pcm)
        if self._enough is not None and not self._enough.done() and len(self.pcm) >= self._want:
            self._enough.set_result(None)

    async def wait(self, n_bytes: int, timeout: float = 10.0) -> None:
        self._want = n_bytes
        if len(self.pcm) < n_bytes:
            self._enough = asyncio.get_running_loop().create_future()
            await asyncio.wait_for(self._enough, timeout)


def assert_tone(pcm: bytes, hz: float, dbfs: float) -> None:
    last_second = bytes(pcm[-ONE_SECOND:])
    measured = dominant_frequency(last_second)
    assert abs(measured - hz) <= 0.02 * hz, f"heard {measured:.1f} Hz, sent {hz} Hz"
    level = level_dbfs(last_second)
    print(f"heard {measured:.2f} Hz at {level:.2f} dBFS (sent {hz} Hz at {dbfs} dBFS)")
    assert abs(level - dbfs) <= 3.0, f"heard {level:.1f} dBFS, sent {dbfs} dBFS"


async def test_outgoing_call_carries_tone_both_ways(gateway: TelegramAccount, make_phone: PhoneFactory) -> None:
    alice = await make_phone("alice", Behaviour(tone_hz=1000, tone_dbfs=-12))
    call = await gateway.call(await gateway.resolve("@alice"))
    heard = Recorder(call, 1000, -18)
    await call.wait_ringing(5)
    await call.wait_accepted(5)
    await call.wait_connected(10)
    assert call.state is CallState.CONNECTED
    await heard.wait(2 * ONE_SECOND)
    await alice.wait_heard(2 * ONE_SECOND)
    assert_tone(heard.pcm, 1000, -12)  # alice -> gateway
    assert_tone(alice.heard, 1000, -18)  # gateway -> alice
    await call.hangup()
    end = await asyncio.wait_for(alice.calls[0].ended, 5)
    assert (end.reason, end.by_peer, end.answered) == (DiscardReason.HANGUP, True, True)


async def test_incoming_call_carries_tone_both_ways(gateway: TelegramAccount, incoming: IncomingCalls,
                                                     make_phone: PhoneFactory) -> None:
    bob = await make_phone("bob", Behaviour(tone_hz=1000, tone_dbfs=-10))
    bob_call = await bob.call("@tgtrunk_gw")
    call = await asyncio.wait_for(incoming.get(), 5)
    assert call.state is CallState.RINGING and call.peer.username == "bob" and call.peer.phone == "+" + bob.user.phone
    await bob_call.wait_ringing(5)
    heard = Recorder(call, 1000, -14)
    await call.accept()
    await bob_call.wait_accepted(5)
    await call.wait_connected(10)
    await heard.wait(2 * ONE_SECOND)
    await bob.wait_heard(2 * ONE_SECOND)
    assert_tone(heard.pcm, 1000, -10)
    assert_tone(bob.heard, 1000, -14)
    await bob_call.hangup()
    end = await asyncio.wait_for(call.ended, 5)
    assert (end.reason, end.by_peer, end.answered) == (DiscardReason.HANGUP, True, True)


async def test_user_declines(gateway: TelegramAccount, make_phone: PhoneFactory, network: SimNetwork) -> None:
    await make_phone("carol", Behaviour(answer="decline"))
    call = await gateway.call("@carol")
    end = await asyncio.wait_for(call.ended, 5)
    assert (end.reason, end.by_peer, end.answered, for_end(end).code) == (DiscardReason.HANGUP, True, False, 603)
    assert network.calls[call.id].discard_reason == "hangup"


async def test_user_busy(gateway: TelegramAccount, make_phone: PhoneFactory) -> None:
    await make_phone("dave", Behaviour(answer="busy"))
    call = await gateway.call("@dave")
    try:
        await call.wait_accepted(5)
    except CallEnded as exc:
        assert for_end(exc.end).code == 486
    else:
        raise AssertionError("a busy user answered")
    end = call.ended.result()
    assert (end.reason, end.by_peer) == (DiscardReason.BUSY, True)


async def test_no_answer_times_out_as_missed(gateway: TelegramAccount, make_phone: PhoneFactory) -> None:
    erin = await make_phone("erin", Behaviour(answer="no_answer"))
    call = await gateway.call("@erin")
    await call.wait_ringing(5)
    end = await asyncio.wait_for(call.ended, RING_TIMEOUT + 5)
    assert (end.reason, end.by_peer, for_end(end).code) == (DiscardReason.MISSED, False, 480)
    their = await asyncio.wait_for(erin.calls[0].ended, 5)
    assert (their.reason, their.by_peer) == (DiscardReason.MISSED, True)


async def test_offline_user_never_rings(gateway: TelegramAccount, network: SimNetwork) -> None:
    network.add_user("+15559990001", "Frank", username="frank")  # no app online
    call = await gateway.call("@frank")
    end = await asyncio.wait_for(call.ended, RING_TIMEOUT + 5)
    with pytest.raises(CallEnded):  # it never rang
        await call.wait_ringing(1)
    assert end.reason is DiscardReason.MISSED


async def test_user_hangs_up_connected_call(gateway: TelegramAccount, make_phone: PhoneFactory) -> None:
    await make_phone("gina", Behaviour(hangup_after=0.5))
    call = await gateway.call("@gina")
    await call.wait_connected(10)
    end = await asyncio.wait_for(call.ended, 10)
    assert (end.reason, end.by_peer, end.answered, for_end(end).code) == (DiscardReason.HANGUP, True, True, 200)


async def test_gateway_declines_incoming_as_busy(incoming: IncomingCalls, make_phone: PhoneFactory) -> None:
    hank = await make_phone("hank")
    hank_call = await hank.call("@tgtrunk_gw")
    call = await asyncio.wait_for(incoming.get(), 5)
    await call.hangup(DiscardReason.BUSY)
    end = await asyncio.wait_for(hank_call.ended, 5)
    assert (end.reason, end.by_peer, for_end(end).code) == (DiscardReason.BUSY, True, 486)


async def test_caller_gives_up_while_gateway_rings(incoming: IncomingCalls, make_phone: PhoneFactory) -> None:
    ivy = await make_phone("ivy")
    ivy_call = await ivy.call("@tgtrunk_gw")
    call = await asyncio.wait_for(incoming.get(), 5)
    await ivy_call.wait_ringing(5)
    await ivy_call.hangup(DiscardReason.HANGUP)
    end = await asyncio.wait_for(call.ended, 5)
    assert (end.reason, end.by_peer, end.answered) == (DiscardReason.HANGUP, True, False)


async def test_unanswered_incoming_call_is_missed(incoming: IncomingCalls, make_phone: PhoneFactory) -> None:
    jack = await make_phone("jack")
    jack_call = await jack.call("@tgtrunk_gw")
    call = await asyncio.wait_for(incoming.get(), 5)
    end = await asyncio.wait_for(call.ended, RING_TIMEOUT + 5)
    assert (end.reason, end.by_peer) == (DiscardReason.MISSED, False)
    their = await asyncio.wait_for(jack_call.ended, 5)
    assert their.reason is DiscardReason.MISSED


async def test_chat_messages_both_ways(gateway: TelegramAccount, make_phone: PhoneFactory) -> None:
    kim = await make_phone("kimberly", Behaviour(autoreply="pong"))
    got: asyncio.Queue[tuple[object, str]] = asyncio.Queue()
    gateway.on_message = lambda peer, text: got.put_nowait((peer, text))
    await gateway.send_message(await gateway.resolve("@kimberly"), "ping")
    peer, text = await asyncio.wait_for(got.get(), 5)
    assert (peer.username, text) == ("kimberly", "pong")
    assert kim.messages[0][1] == "ping"


async def no_calls_left(gateway: TelegramAccount, *phones: SimPhone) -> None:
    """Until no NTgCalls call is left in the gateway's engine or the people's."""
    endpoints = [gateway.engine] + [phone.account.engine for phone in phones if phone.account]
    while any([await endpoint.ntg.calls() for endpoint in endpoints if endpoint]):
        await asyncio.sleep(0.05)


async def test_hanging_up_at_any_moment_of_media_setup_leaves_nothing_behind(
        gateway: TelegramAccount, make_phone: PhoneFactory) -> None:
    """NTgCalls crashes the process (segfault) when a call is stopped while another step on it still runs on
    its threads: connect_p2p, or signaling it is still processing. CI hit it when a call was hung up just as
    it was answered. Here both sides hang up at every moment of the setup window, four calls at a time."""
    phones = [await make_phone(f"echo{n}", Behaviour(echo=True, record=False)) for n in range(4)]
    for round_ in range(12):
        calls = [await gateway.call(f"@echo{n}") for n in range(4)]
        await asyncio.gather(*(call.wait_accepted(5) for call in calls))
        # Not waiting for anything: this moves the hang-up across the 0-88 ms in which media is set up.
        await asyncio.sleep(0.008 * round_)
        if round_ % 2:
            await asyncio.gather(*(phone.calls[-1].hangup() for phone in phones))
        else:
            await asyncio.gather(*(call.hangup() for call in calls))
        ends = [asyncio.wait_for(call.ended, 5) for call in calls + [phone.calls[-1] for phone in phones]]
        await asyncio.gather(*ends)

    await asyncio.wait_for(no_calls_left(gateway, *phones), 5)  # every NTgCalls call was stopped, on both sides

    call = await gateway.call("@echo0")  # and the same people can be called again
    await call.wait_connected(10)
    await call.hangup()


async def test_a_call_hung_up_during_media_setup_is_stopped_only_once_its_signaling_is_quiet(
        gateway: TelegramAccount, make_phone: PhoneFactory) -> None:
    """NTgCalls' stop closes the connection before its signaling: a message still being processed on its threads
    then runs on a closed connection (segfaults in add_remote_candidate, set_remote_params, RtpDemuxer::RemoveSink).
    50 ms after the last signaling handed over was not enough on a loaded machine; the stop now waits until the
    signaling both ways has been quiet for SIGNAL_QUIET_S."""
    await make_phone("nadia", Behaviour(echo=True, record=False))
    call = await gateway.call("@nadia")
    await call.wait_accepted(5)

    async def signaling() -> None:  # media is being set up: signaling flows both ways from now on
        while call.peer.id not in gateway.engine._last_signal:
            await asyncio.sleep(0.001)
    await asyncio.wait_for(signaling(), 5)
    await call.hangup()
    hung_up = time.monotonic()
    stopping = gateway.engine.release(call.peer.id)  # the stop the hang-up started
    await asyncio.wait_for(stopping, SIGNAL_QUIET_MAX_S + 5)
    assert time.monotonic() - hung_up >= SIGNAL_QUIET_S - 0.1
    assert not await gateway.engine.ntg.calls()


async def test_caller_giving_up_during_request_call_leaves_nothing_behind(
        gateway: TelegramAccount, make_phone: PhoneFactory, network: SimNetwork) -> None:
    """A SIP CANCEL while RequestCall is on its way: the NTgCalls call made for it must be stopped, or every later
    call with that user fails (NTgCalls keys calls by user)."""
    leo = await make_phone("leonard", Behaviour(echo=True, record=False))
    network.inject("phone.RequestCall", TIMEOUT)  # Telegram takes its time to answer
    placing = asyncio.ensure_future(gateway.call("@leonard"))

    async def request_sent() -> None:
        while (gateway.me.id, "phone.RequestCall") not in network.requests:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(request_sent(), 5)
    placing.cancel()  # what the SIP side does when its caller hangs up during setup
    await asyncio.gather(placing, return_exceptions=True)
    assert placing.cancelled()

    await asyncio.wait_for(no_calls_left(gateway), 5)
    call = await gateway.call("@leonard")  # and leo can be called again
    await call.wait_connected(10)
    await call.hangup()
    assert len(leo.calls) == 1  # the given-up call never reached him


async def test_second_call_to_the_same_user_is_busy_and_the_first_goes_on(
        gateway: TelegramAccount, make_phone: PhoneFactory) -> None:
    await make_phone("miriam", Behaviour(echo=True, record=False))
    first = await gateway.call("@miriam")
    await first.wait_connected(10)
    try:
        await gateway.call("@miriam")
    except TelegramError as exc:
        assert for_error(exc).code == 486
    else:
        raise AssertionError("a second simultaneous call with the same user was placed")
    assert first.state is CallState.CONNECTED and not first.ended.done()
    await first.hangup()
