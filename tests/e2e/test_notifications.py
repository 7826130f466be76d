"""Administrators are told, once per event within the fold window, when the session account is revoked."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from app.store.admin import AccountAdmin
from app.telegram.account import TelegramAccount
from app.telegram.sim import SimClient


@pytest.fixture
def gateway_extra_env() -> dict[str, str]:
    return {"TGTRUNK_ACCOUNT_CHECK": "1"}  # each account is asked for itself every second


async def wait_until(condition, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), timeout)


async def test_a_revoked_session_is_told_to_the_administrator_once(sim_gateway, sim_phone, caplog) -> None:
    caplog.set_level(logging.INFO)
    gateway, network = sim_gateway.gateway, sim_gateway.network
    boss = await sim_phone("bossman")
    # A second account of the installation: the revoked one cannot send, so this one tells the administrator.
    spare_user = network.add_user("+15550008888", "Spare", username="tgtrunk_spare")
    spare = TelegramAccount(SimClient("spare", network, user_id=spare_user.id), rpc_timeout=2.0, rpc_retries=1)
    await spare.start()
    gateway.accounts.add("spare", spare)
    with gateway.db.session() as session:
        session.add(AccountAdmin(account="main", who="@bossman"))

    await asyncio.sleep(2.5)  # two checks of a healthy account: nothing to tell
    assert not boss.messages

    assert network.revoke_sessions(sim_gateway.account.me.id) >= 1
    await wait_until(lambda: boss.messages)
    peer, text = boss.messages[0]
    assert "session of account main was revoked" in text and "tgtrunk account login main" in text
    assert peer.username == "tgtrunk_spare"

    def folded() -> int:
        return sum("notification session-revoked folded" in r.getMessage() for r in caplog.records)
    await wait_until(lambda: folded() >= 2)  # the check keeps failing: each repeat is folded
    await asyncio.sleep(0.5)  # a folded repeat that was nevertheless sent would have arrived by now
    assert len(boss.messages) == 1
    sent = [r.getMessage() for r in caplog.records if "notification session-revoked sent to @bossman" in r.getMessage()]
    assert len(sent) == 1


async def test_a_notification_waits_out_flood_wait_through_the_accounts_chat_sender(sim_gateway, sim_phone, caplog):
    caplog.set_level(logging.INFO)
    gateway, network, me = sim_gateway.gateway, sim_gateway.network, sim_gateway.account.me.id
    boss = await sim_phone("bossman")
    with gateway.db.session() as session:
        session.add(AccountAdmin(account="main", who="@bossman"))
    network.inject("messages.SendMessage", "FLOOD_WAIT_2", user_id=me)
    started = time.monotonic()
    assert gateway.notifier.notify("asterisk-restarted", "tgtrunk: Asterisk restarted", account="main")
    await wait_until(lambda: boss.messages)
    assert time.monotonic() - started >= 2.0  # waited out, as every chat message of the account
    assert [text for _, text in boss.messages] == ["tgtrunk: Asterisk restarted"]
    assert "FLOOD_WAIT of 2 s from Telegram; message to" in caplog.text
    assert [name for user, name in network.requests if user == me].count("messages.SendMessage") == 2
