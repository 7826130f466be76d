"""N failed calls in a row on a line are told to the administrators, once within the fold window."""

from __future__ import annotations

import logging

import pytest

from app.store.admin import AccountAdmin
from tests.e2e.test_notifications import wait_until


@pytest.fixture
def gateway_extra_env() -> dict[str, str]:
    return {"TGTRUNK_FAILED_CALLS_NOTIFY": "2"}


async def test_failed_calls_in_a_row_are_told_once(sim_gateway, sim_phone, baresip_factory, caplog) -> None:
    caplog.set_level(logging.INFO)
    network = sim_gateway.network
    await sim_gateway.add_line("office", username="pbx1", password="pw")
    boss = await sim_phone("bossman")
    await sim_phone("alice")
    with sim_gateway.gateway.db.session() as session:
        session.add(AccountAdmin(account="main", who="@bossman"))
    peer = await baresip_factory("127.0.0.2")
    assert (await peer.register("pbx1", "pw", sim_gateway.sip_server))["type"] == "REGISTER_OK"

    async def call(count: int) -> int:
        await peer.command("dial", f"sip:alice@{sim_gateway.sip_server}")
        await peer.wait_event("CALL_CLOSED", timeout=15)
        return (await sim_gateway.wait_record(count)).result_code

    network.inject("phone.RequestCall", "INTERNAL_SERVER_ERROR", times=4)
    assert await call(1) >= 500
    assert await call(2) >= 500  # the second in a row: told
    await wait_until(lambda: boss.messages)
    text = boss.messages[0][1]
    assert "line office: 2 calls in a row failed" in text and "tgtrunk calls" in text
    assert await call(3) >= 500  # a third: folded
    await wait_until(lambda: any("notification calls-failing (office) folded" in r.getMessage() for r in caplog.records))
    assert await call(4) >= 500
    assert len(boss.messages) == 1
