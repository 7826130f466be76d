"""Every failure of a SIP -> Telegram call answers the INVITE with its exact code (seen by the SIP peer)."""

from __future__ import annotations

import asyncio

from sqlmodel import select

from app.store.callrecord import CallRecord
from app.telegram.sim import Behaviour, Privacy
from app.telegram.sim.network import TIMEOUT
from tests.e2e.conftest import GATEWAY_PHONE


async def test_each_failure_gives_its_sip_code(sim_gateway, sim_phone, baresip_factory):
    network = sim_gateway.network
    await sim_gateway.add_line("office", username="pbx1", password="pw")
    await sim_gateway.add_line("orphan", username="pbx2", password="pw", account="nobody-logged-in")
    await sim_phone("private", privacy=Privacy(calls="nobody"))
    await sim_phone("premiumonly", privacy=Privacy(calls="premium"))
    await sim_phone("busybee", Behaviour(answer="busy"))
    await sim_phone("sleepy", Behaviour(answer="no_answer"))
    await sim_phone("decliner", Behaviour(answer="decline"))
    await sim_phone("floody")
    stranger = network.add_user("+15550177777", "Stranger")  # exists, but the gateway never met its id
    peer = await baresip_factory("127.0.0.2")
    assert (await peer.register("pbx1", "pw", sim_gateway.sip_server))["type"] == "REGISTER_OK"

    async def dial(target: str) -> str:
        return (await peer.dial_until_closed(f"sip:{target}@{sim_gateway.sip_server}", timeout=20)).split()[0]

    results = {
        "privacy": await dial("private"),
        "premium": await dial("premiumonly"),
        "unknown username": await dial("nosuchuser"),
        "unknown phone": await dial("+15559990000"),
        "malformed number": await dial("12"),
        "id never met": await dial(f"id{stranger.id}"),
        "busy": await dial("busybee"),
        "no answer": await dial("sleepy"),
        "declined": await dial("decliner"),
    }
    network.inject("phone.RequestCall", "PEER_FLOOD")
    results["peer flood"] = await dial("floody")
    network.inject("phone.RequestCall", "FLOOD_WAIT_30")
    results["flood wait"] = await dial("floody")
    network.inject("phone.RequestCall", TIMEOUT, times=3)
    results["rpc timeout"] = await dial("floody")

    assert results == {
        "privacy": "403", "premium": "403", "unknown username": "404", "unknown phone": "404",
        "malformed number": "404", "id never met": "470", "busy": "486", "no answer": "480",
        "declined": "603", "peer flood": "503", "flood wait": "503", "rpc timeout": "408",
    }
    with sim_gateway.gateway.db.session() as session:
        reasons = [r.reason for r in session.exec(select(CallRecord).where(CallRecord.result_code == 503))]
    assert reasons == ["PEER_FLOOD", "Too Many Requests: retry after 30"]  # the wait said once, as the page has it


async def test_line_without_running_account_is_503_and_unregistered_line_is_405(sim_gateway, baresip_factory):
    await sim_gateway.add_line("orphan", username="pbx2", password="pw", account="nobody-logged-in")
    await sim_gateway.add_line("office", username="pbx1", password="pw")
    peer = await baresip_factory("127.0.0.2")
    assert (await peer.register("pbx2", "pw", sim_gateway.sip_server))["type"] == "REGISTER_OK"
    assert (await peer.dial_until_closed(f"sip:alice@{sim_gateway.sip_server}")).startswith("503")

    # An INVITE with the right password but no REGISTER before it
    await peer.add_ua("pbx1", sim_gateway.sip_server, password="pw")
    await peer.command("uafind", f"sip:pbx1@{sim_gateway.sip_server}")
    assert (await peer.dial_until_closed(f"sip:alice@{sim_gateway.sip_server}")).startswith("405")

    # Redialled: the line's PBX was unregistered at its last call, so Telegram is not asked to look "alice" up.
    def lookups() -> int:
        return sum(name == "contacts.ResolveUsername" for _user, name in sim_gateway.network.requests)
    before = lookups()
    assert (await peer.dial_until_closed(f"sip:alice@{sim_gateway.sip_server}")).startswith("405")
    assert lookups() == before


async def test_max_calls_holds_under_parallel_attempts(sim_gateway, sim_phone, baresip_factory):
    await sim_gateway.add_line("office", username="pbx1", password="pw", max_calls=2)
    for n in range(5):
        await sim_phone(f"echo{n}", Behaviour(echo=True, record=False))
    peer = await baresip_factory("127.0.0.2")
    assert (await peer.register("pbx1", "pw", sim_gateway.sip_server))["type"] == "REGISTER_OK"

    for n in range(5):
        await peer.command("dial", f"sip:echo{n}@{sim_gateway.sip_server}")
    outcomes: list[str] = []

    async def collect() -> None:
        while len(outcomes) < 5:
            event = await peer.wait_event("CALL_ESTABLISHED", "CALL_CLOSED", timeout=20)
            outcomes.append("connected" if event["type"] == "CALL_ESTABLISHED" else event["param"].split()[0])
    await asyncio.wait_for(collect(), 30)
    assert sorted(outcomes) == ["503", "503", "503", "connected", "connected"]


async def test_account_limit_holds_both_ways_and_the_gateway_cap_after_it(sim_gateway, sim_phone, baresip_factory):
    await sim_gateway.add_line("office", username="pbx1", password="pw", pbx_number="100")  # no line limit
    main = sim_gateway.gateway.accounts.handles["main"]
    main.max_calls = 2  # as `tgtrunk account settings main --max-calls 2` sets it
    for n in range(4):
        await sim_phone(f"echo{n}", Behaviour(echo=True, record=False))
    carol = await sim_phone("carol")
    peer = await baresip_factory("127.0.0.2")
    assert (await peer.register("pbx1", "pw", sim_gateway.sip_server))["type"] == "REGISTER_OK"

    for n in range(4):
        await peer.command("dial", f"sip:echo{n}@{sim_gateway.sip_server}")
    outcomes: list[str] = []

    async def collect(expected: int) -> None:
        while len(outcomes) < expected:
            event = await peer.wait_event("CALL_ESTABLISHED", "CALL_CLOSED", timeout=20)
            outcomes.append("connected" if event["type"] == "CALL_ESTABLISHED" else event["param"].split()[0])
    await asyncio.wait_for(collect(4), 30)
    assert sorted(outcomes) == ["503", "503", "connected", "connected"]

    # The account is full in the other direction too: a Telegram user calling in is refused.
    call = await carol.call(GATEWAY_PHONE)
    end = await asyncio.wait_for(call.ended, 15)
    assert not end.answered
    record = await sim_gateway.wait_record(count=3)  # after the two SIP calls refused the same way
    assert (record.direction, record.result_code) == ("telegram-to-sip", 503)
    assert record.reason == "no free lines: account main allows 2 calls"
    with sim_gateway.gateway.db.session() as session:
        refused = list(session.exec(select(CallRecord).where(CallRecord.result_code == 503)))
    assert sorted(((r.direction, r.line) for r in refused), key=str) == [
        ("sip-to-telegram", "office"), ("sip-to-telegram", "office"), ("telegram-to-sip", None)]

    # With room on the account, the whole gateway's cap (TGTRUNK_MAX_CALLS) refuses the next one.
    main.max_calls = None
    sim_gateway.gateway.stasis.max_calls = 2
    await peer.command("dial", f"sip:echo3@{sim_gateway.sip_server}")
    closed = await peer.wait_event("CALL_CLOSED", timeout=20)
    assert closed["param"].split()[0] == "503"
