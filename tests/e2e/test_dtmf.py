"""DTMF both ways: RFC 4733 digits from the PBX show in the Telegram chat; digits typed in the chat reach the PBX.

The PBX is a second Asterisk registered to the gateway (FreePBX-shaped trunk), driven through its own ARI."""

from __future__ import annotations

import asyncio

from app.ari.client import AriEvent
from app.telegram.sim import Behaviour
from tests.pbx import PbxAsterisk, freepbx_with_trunk

async def test_dtmf_from_pbx_reaches_chat_and_chat_digits_reach_pbx(sim_gateway, sim_phone, asterisk_install):
    await sim_gateway.add_line("office", username="pbx1", password="pbx-side-secret")
    alice = await sim_phone("alice", Behaviour(record=False))
    pbx = PbxAsterisk(asterisk_install, freepbx_with_trunk(sim_gateway.sip_server))
    await pbx.start()
    digits_at_pbx: list[str] = []
    answered = asyncio.Event()
    got_digits = asyncio.Event()

    def on_dtmf(event: AriEvent) -> None:
        digits_at_pbx.append(event["digit"])
        if len(digits_at_pbx) == 3:
            got_digits.set()

    pbx.ari.on("StasisStart", lambda event: answered.set())
    pbx.ari.on("ChannelDtmfReceived", on_dtmf)
    events = asyncio.create_task(pbx.ari.run_events())
    try:
        await pbx.wait_registration("tgtrunk")
        await asyncio.wait_for(pbx.ari.connected.wait(), 10)
        channel = await pbx.ari.request("POST", "/channels", params={
            "endpoint": "PJSIP/alice@tgtrunk", "app": "pbx", "callerId": "Reception <200>"})
        await asyncio.wait_for(answered.wait(), 15)  # the Telegram user answered
        await alice.calls[-1].wait_connected(10)

        await pbx.ari.request("POST", f"/channels/{channel['id']}/dtmf", params={"dtmf": "123#", "between": 150})

        async def chat() -> str:
            while not alice.messages:
                await asyncio.sleep(0.05)
            return alice.messages[-1][1]
        assert await asyncio.wait_for(chat(), 10) == "123#"

        await alice.send_message(alice.calls[-1].peer, "4*7")
        await asyncio.wait_for(got_digits.wait(), 10)
        assert digits_at_pbx == ["4", "*", "7"]
    finally:
        events.cancel()
        await pbx.stop()
