"""/healthz and `tgtrunk status` for a monitor: which part fails, and exit codes (0 healthy, 1 failing, 3 stopped)."""

from __future__ import annotations

import json
import re

from app.store.account import TelegramAccountRow
from app.store.db import Database
from tests.sip.test_database_trouble import healthz


async def test_a_healthy_gateway_under_journald_then_stopped(make_gateway):
    gateway = await make_gateway(start=False, JOURNAL_STREAM="8:12345")
    await gateway.start("--simulate-telegram")
    code, health = healthz(gateway)
    assert code == 200 and health["ok"], health
    assert health["telegram"] == {"ok": True, "accounts": {"demo": {"connected": True}}}
    status = await gateway.cli("status")
    assert status.code == 0 and "health:   ok" in status.out, status
    health_only = await gateway.cli("status", "--health")
    assert health_only.code == 0 and health_only.out.strip() == "health:   ok", health_only
    # The journal stamps each line itself: no timestamp of ours, the level as the journal's priority prefix.
    running = await gateway.wait_log(r"tgtrunk is running")
    assert re.match(r"<6>INFO [\w.]+: tgtrunk is running", running), running

    await gateway.stop()
    stopped = await gateway.cli("status")
    assert stopped.code == 3 and "gateway:  not running" in stopped.out, stopped
    assert (await gateway.cli("status", "--health")).code == 3


async def test_an_account_that_does_not_connect_fails_healthz_and_status(make_gateway):
    gateway = await make_gateway(start=False, TGTRUNK_LOG_FORMAT="json")
    db = Database(f"sqlite:///{gateway.data_dir / 'tgtrunk.db'}")
    with db.session() as session:  # a stored session that no longer opens (say, the key changed)
        session.add(TelegramAccountRow(name="sales", phone="+15550001111", api_id=1, session_encrypted="damaged"))
    db.close()
    await gateway.start()
    code, health = healthz(gateway)
    assert code == 503 and not health["ok"] and not health["telegram"]["ok"], health
    sales = health["telegram"]["accounts"]["sales"]
    assert sales["connected"] is False and sales["error"].startswith("did not start"), sales
    assert health["asterisk"]["ok"] and health["database"]["ok"] and health["tasks"]["ok"]

    status = await gateway.cli("status")
    assert status.code == 1, status
    assert "health:   FAILING: telegram" in status.out and "Telegram account sales is not connected" in status.out
    health_only = await gateway.cli("status", "--health")
    assert health_only.code == 1 and health_only.out.strip() == "health:   FAILING: telegram", health_only

    # One JSON object a line, also for the error about the account.
    failed = await gateway.wait_log(r"Telegram account sales did not start")
    event = json.loads(failed)
    assert event["level"] == "error" and event["message"].startswith("Telegram account sales did not start")
