"""Issue 8 item 8: what a call leaves must go with its last reference, whatever its direction and its ending.

Objects in reference cycles wait for a full garbage collection, which a busy gateway runs every few minutes; the
soak (bench/soak.py) grew by what they held. Here the collector is off for a run of calls of every kind, then one
collection keeps what it would have freed (`gc.DEBUG_SAVEALL`): nothing may be there."""

from __future__ import annotations

import asyncio
import gc
import json
import urllib.request
from collections import Counter

from sqlmodel import select

from app.store.callrecord import CallRecord
from app.telegram.sim import Behaviour, Privacy
from tests.e2e.conftest import GATEWAY_PHONE


def kind(obj: object) -> str:
    if type(obj).__name__ == "frame":
        return f"frame {obj.f_code.co_name}"  # type: ignore[attr-defined]
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


async def test_ended_calls_leave_no_reference_cycles(sim_gateway, sim_phone, baresip_factory):
    """Every direction and ending. On the code before: a refused call left its session, its `PrivateCall` and the
    error with its frames (busy, declined, privacy, the PBX's 486), every admin API request its closed socket
    transport (Python 3.11), a call after a quiet moment hdrh's ctypes counts type (hdrh is no longer used), and
    the simulator each call's ring timer."""
    await sim_gateway.add_line("office", username="pbx1", password="pw")
    await sim_phone("dave", Behaviour(echo=True, hangup_after=0.5, record=False))
    await sim_phone("erin", Behaviour(echo=True, record=False))
    await sim_phone("busybee", Behaviour(answer="busy"))
    await sim_phone("decliner", Behaviour(answer="decline"))
    await sim_phone("ringer", Behaviour(answer="no_answer"))
    await sim_phone("private", privacy=Privacy(calls="nobody"))
    bob = await sim_phone("bob", Behaviour(echo=True, record=False))
    pbx = await baresip_factory("127.0.0.2")
    await pbx.command("uanew", f"<sip:pbx1@{sim_gateway.sip_server}>;auth_pass=pw;regint=60;answermode=auto")
    assert (await pbx.wait_event("REGISTER_OK", "REGISTER_FAIL"))["type"] == "REGISTER_OK"
    settings = sim_gateway.gateway.settings
    token = settings.admin_token_path.read_text().strip()
    records = 0

    async def recorded() -> None:
        nonlocal records
        records += 1
        await sim_gateway.wait_record(records)

    async def dial(user: str, end: str = "") -> None:  # the PBX calls a Telegram user
        await pbx.command("dial", f"sip:{user}@{sim_gateway.sip_server}")
        if end == "sip hangs up":
            await pbx.wait_event("CALL_ESTABLISHED", timeout=15)
            await pbx.command("hangup")
        elif end == "sip cancels":
            await pbx.wait_event("CALL_RINGING", "CALL_PROGRESS", timeout=15)
            await pbx.command("hangup")
        await pbx.wait_event("CALL_CLOSED", timeout=15)
        await recorded()

    async def call_in(end: str) -> None:  # a Telegram user calls the gateway, which rings the PBX
        manual = end in ("pbx refuses", "telegram cancels")
        if manual:
            await pbx.command("answermode", "manual")
        theirs = await bob.call(GATEWAY_PHONE)
        if manual:
            await pbx.wait_event("CALL_INCOMING", timeout=15)
            if end == "pbx refuses":
                await pbx.command("hangup")  # baresip declines the INVITE
                await asyncio.wait_for(theirs.ended, 10)
            else:
                await theirs.hangup()
                await pbx.wait_event("CALL_CLOSED", timeout=15)
            await pbx.command("answermode", "auto")
        else:
            await pbx.wait_event("CALL_ESTABLISHED", timeout=15)
            await theirs.wait_connected(10)
            if end == "sip hangs up":
                await pbx.command("hangup")
            else:
                await theirs.hangup()
            await pbx.wait_event("CALL_CLOSED", timeout=10)
        await recorded()

    def admin_api() -> int:  # a request on a connection of its own, as the bench and monitoring make them
        request = urllib.request.Request(f"http://{settings.http_bind}/api/calls?last=1",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            json.load(answer)
            return answer.status

    await dial("erin", "sip hangs up")  # warm-up: what the first call makes once and keeps
    await call_in("sip hangs up")
    gc.collect()
    gc.disable()
    try:
        await dial("dave")  # Telegram hangs up
        await dial("erin", "sip hangs up")
        await dial("busybee")
        await dial("decliner")
        await dial("private")
        await dial("ringer", "sip cancels")
        await call_in("sip hangs up")
        await call_in("telegram hangs up")
        await call_in("pbx refuses")
        await call_in("telegram cancels")
        statuses = [await asyncio.to_thread(admin_api) for _ in range(3)]
        await asyncio.sleep(0.5)  # the admin API's closed connections are torn down on the next loop turns

        gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection would free is kept in gc.garbage to be looked at
        gc.collect()
        left = Counter(kind(obj) for obj in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    with sim_gateway.gateway.db.session() as session:
        codes = [r.result_code for r in session.exec(select(CallRecord).order_by(CallRecord.id))][2:]
    assert codes == [200, 200, 486, 603, 403, 487, 200, 200, 486, 487]
    assert statuses == [200, 200, 200]
    assert dict(left) == {}
