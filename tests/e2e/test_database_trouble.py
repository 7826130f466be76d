"""A call that ends while the database's disk is full: its record is held and written once the disk recovers."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlmodel import select

from app.store.callrecord import CallRecord
from app.telegram.sim import Behaviour


@pytest.fixture
def gateway_extra_env(small_disk) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"TGTRUNK_DATABASE_URL": small_disk.database_url}


async def test_record_of_a_call_during_a_full_disk_is_written_when_the_disk_recovers(
        sim_gateway, sim_phone, baresip_factory, small_disk, caplog):
    caplog.set_level(logging.INFO, logger="app.store.db")
    await sim_gateway.add_line("office", username="pbx1", password="pw")
    carol = await sim_phone("carol", Behaviour(echo=True, hangup_after=2.0))
    peer = await baresip_factory("127.0.0.2")
    assert (await peer.register("pbx1", "pw", sim_gateway.sip_server))["type"] == "REGISTER_OK"

    small_disk.fill()
    await peer.command("dial", f"sip:carol@{sim_gateway.sip_server}")
    await peer.wait_event("CALL_ESTABLISHED", timeout=15)
    await peer.wait_event("CALL_CLOSED", timeout=15)  # carol hung up after 2 s

    gateway = sim_gateway.gateway

    async def held() -> None:
        while not gateway.db.held:
            await asyncio.sleep(0.05)
    await asyncio.wait_for(held(), 10)
    assert any("the database cannot be written (database or disk is full): CallRecord rows are kept in memory"
               in r.getMessage() for r in caplog.records)
    with gateway.db.session() as session:
        assert list(session.exec(select(CallRecord))) == []
    health = gateway.health()
    assert not health["ok"] and health["database"]["held_rows"] == 1

    small_disk.free()
    record = await sim_gateway.wait_record(timeout=10)
    assert (record.direction, record.line, record.peer_username) == ("sip-to-telegram", "office", "carol")
    assert (record.result_code, record.reason) == (200, "Telegram side hung up") and record.duration_s >= 2
    assert any("the database can be written again: 1 held row(s) written" in r.getMessage() for r in caplog.records)
    assert not gateway.db.held and gateway.health()["database"]["ok"]
