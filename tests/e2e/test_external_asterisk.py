"""Issue 15: tgtrunk as a Stasis application on the user's own Asterisk (TGTRUNK_ARI_URL), no bundled Asterisk.

"The user's Asterisk" is a second Asterisk from the bundled root with its own ari.conf, http.conf, phones (baresip)
and a dialplan entering Stasis(tgtrunk,telegram,${EXTEN}) (tests/pbx.py: UserAsterisk); Telegram is the simulated
network with real NTgCalls media."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from app.calls.accounts import Accounts
from app.gateway import Gateway
from app.pbx.install import AsteriskInstall
from app.pbx.instance import runtime_dir_for
from app.settings import load_settings
from app.telegram.account import TelegramAccount
from app.telegram.sim import Behaviour, Privacy, SimClient, SimNetwork
from tests.audio import RATE, dominant_frequency, rms_dbfs
from tests.conftest import ASTERISK_ROOT, gateway_env, remove_runtime_dir
from tests.e2e.conftest import GATEWAY_PHONE, SimGateway
from tests.e2e.test_sip_to_telegram import sent_and_heard
from tests.pbx import UserAsterisk
from tests.peers import BaresipPeer, free_port

ROUTE = "telegram"


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.05)
    try:
        await asyncio.wait_for(poll(), timeout)
    except asyncio.TimeoutError:
        pytest.fail(f"not within {timeout:.0f} s: {what}")


def asterisk_children() -> set[int]:
    """Asterisk processes started by this test process."""
    pids = set()
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                if "asterisk" in Path(f"/proc/{pid}/cmdline").read_text():
                    pids.add(int(pid))
            except OSError:
                pass
    return pids


@pytest.fixture
async def user_asterisk(asterisk_install: AsteriskInstall) -> AsyncIterator[UserAsterisk]:
    pbx = UserAsterisk(asterisk_install, route=ROUTE)
    await pbx.start()
    try:
        yield pbx
    finally:
        await pbx.stop()


@pytest.fixture
async def sim_gateway(user_asterisk: UserAsterisk, tmp_path: Path) -> AsyncIterator[SimGateway]:
    """The gateway in this process in external mode (overrides the bundled one of tests/e2e/conftest.py, so
    `sim_phone` puts its users on this gateway's network)."""
    network = SimNetwork(ring_timeout=30.0)
    me = network.add_user(GATEWAY_PHONE, "Gateway", username="tgtrunk_gw")
    account = TelegramAccount(SimClient("gateway", network, user_id=me.id), ring_timeout=4.0, rpc_timeout=2.0,
                              rpc_retries=1)
    await account.start()
    accounts = Accounts()
    accounts.add("main", account)
    env = gateway_env(tmp_path / "gw", free_port(), free_port(), **user_asterisk.gateway_env())
    gateway = Gateway(load_settings(env), accounts)
    stop = asyncio.Event()
    runner = asyncio.create_task(gateway.run(stop))
    ready = asyncio.create_task(gateway.supervisor.ready.wait())
    done, _ = await asyncio.wait({runner, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if runner in done:
        runner.result()
    assert ready in done, "the gateway did not come up"
    sim = SimGateway(gateway, network, account)
    await sim.add_line(ROUTE, "stasis", pbx_number="201", originate="PJSIP/{number}",
                       callerid_templates=("+{phone}",), callername_template="{name} (TG)")
    try:
        yield sim
    finally:
        stop.set()
        await asyncio.wait_for(runner, 10)
        await gateway.close()
        network.close()


async def phone(baresip_factory, user_asterisk: UserAsterisk, ext: str = "201", **options: str) -> BaresipPeer:
    peer = await baresip_factory("127.0.0.2", tone_hz=1000)
    extra = "".join(f";{key}={value}" for key, value in options.items())
    await peer.command("uanew", f"<sip:{ext}@{user_asterisk.sip}>;auth_pass={user_asterisk.phone_password[ext]};"
                                f"regint=60{extra}")
    assert (await peer.wait_event("REGISTER_OK", "REGISTER_FAIL"))["type"] == "REGISTER_OK"
    return peer


async def test_phone_calls_telegram_user_tone_both_ways_with_no_bundled_asterisk(
        sim_gateway, sim_phone, baresip_factory, user_asterisk, asterisk_install):
    gateway = sim_gateway.gateway
    # No bundled Asterisk: no instance, no runtime folder for this data directory, no Asterisk but the user's.
    assert gateway.instance is None
    assert not asterisk_install.host_path(runtime_dir_for(asterisk_install, gateway.settings.data_dir)).exists()
    assert asterisk_children() == {user_asterisk.pid}
    assert gateway.status()["asterisk"] | {"version": None} == {
        "mode": "external", "url": user_asterisk.url, "version": None, "app": "tgtrunk", "app_registered": True,
        "ready": True, "restarts": 0}
    assert gateway.status()["asterisk"]["version"].startswith("22.")

    alice = await sim_phone("alice", Behaviour(tone_hz=600, tone_dbfs=-12))
    peer = await phone(baresip_factory, user_asterisk)
    await peer.command("dial", f"sip:alice@{user_asterisk.sip}")
    await peer.wait_event("CALL_ESTABLISHED", timeout=15)
    await alice.wait_heard(RATE * 2 * 3, timeout=15)  # 3 s of what the phone sends
    await peer.command("hangup")
    await peer.wait_event("CALL_CLOSED", timeout=10)
    assert (await asyncio.wait_for(alice.calls[-1].ended, 10)).by_peer

    sent, heard_sip, rate = sent_and_heard(peer)
    heard_tg = alice.heard_since(RATE * 2)
    assert dominant_frequency(heard_tg) == pytest.approx(1000, rel=0.02)
    assert rms_dbfs(heard_tg) == pytest.approx(rms_dbfs(sent), abs=3)
    assert dominant_frequency(heard_sip, rate) == pytest.approx(600, rel=0.02)
    assert rms_dbfs(heard_sip) == pytest.approx(-12 - 3.01, abs=3)

    record = await sim_gateway.wait_record()
    assert (record.direction, record.line, record.dialled, record.caller) == ("sip-to-telegram", ROUTE, "alice", "201")
    assert (record.peer_username, record.result_code) == ("alice", 200)
    assert record.packets_in >= 80 and record.packets_out >= 80


async def test_telegram_user_rings_the_phone_with_caller_id_and_tone_both_ways(
        sim_gateway, sim_phone, baresip_factory, user_asterisk):
    bob = await sim_phone("bob", Behaviour(tone_hz=600, tone_dbfs=-12))
    peer = await phone(baresip_factory, user_asterisk, answermode="auto")

    call = await bob.call(GATEWAY_PHONE)
    answered = await peer.wait_event("CALL_ESTABLISHED", timeout=15)
    assert answered["peeruri"].startswith(f"sip:+{bob.user.phone}@")  # the route's Caller ID template
    assert answered["peerdisplayname"] == "Bob Sim (TG)"
    await call.wait_connected(10)
    await bob.wait_heard(RATE * 2 * 3, timeout=15)
    await call.hangup()
    await peer.wait_event("CALL_CLOSED", timeout=10)

    sent, heard_sip, rate = sent_and_heard(peer)
    heard_tg = bob.heard_since(RATE * 2)
    assert dominant_frequency(heard_tg) == pytest.approx(1000, rel=0.02)
    assert rms_dbfs(heard_tg) == pytest.approx(rms_dbfs(sent), abs=3)
    assert dominant_frequency(heard_sip, rate) == pytest.approx(600, rel=0.02)
    assert rms_dbfs(heard_sip) == pytest.approx(-15, abs=3)

    record = await sim_gateway.wait_record()
    assert (record.direction, record.line, record.dialled, record.peer_username, record.result_code) == \
        ("telegram-to-sip", ROUTE, "201", "bob", 200)


async def test_dtmf_both_ways(sim_gateway, sim_phone, baresip_factory, user_asterisk):
    alice = await sim_phone("alice", Behaviour(record=False))
    peer = await phone(baresip_factory, user_asterisk)
    await peer.command("dial", f"sip:alice@{user_asterisk.sip}")
    await peer.wait_event("CALL_ESTABLISHED", timeout=15)
    await alice.calls[-1].wait_connected(10)

    await peer.command("sndcode", "123#")  # RFC 4733 from the phone
    message = await alice.wait_message(lambda m: m.text == "123#", timeout=10)
    assert message.text == "123#"

    await alice.send_message(alice.calls[-1].peer, "4*7")
    heard = []
    while len(heard) < 3:
        heard.append((await peer.wait_event("CALL_DTMF_START", timeout=10))["param"])
    assert heard == ["4", "*", "7"]
    await peer.command("hangup")
    await peer.wait_event("CALL_CLOSED", timeout=10)
    assert (await sim_gateway.wait_record()).result_code == 200


async def test_busy_and_private_users_give_their_sip_codes_at_the_phone(
        sim_gateway, sim_phone, baresip_factory, user_asterisk):
    await sim_phone("busybee", Behaviour(answer="busy"))
    await sim_phone("private", privacy=Privacy(calls="nobody"))
    peer = await phone(baresip_factory, user_asterisk)

    async def dial(target: str) -> str:
        return (await peer.dial_until_closed(f"sip:{target}@{user_asterisk.sip}", timeout=20)).split()[0]

    # Straight from the phone's context (PJSIPHangup), and through a Local channel as a FreePBX Custom trunk
    # (Hangup with TGTRUNK_CAUSE, which Asterisk turns back into the code).
    assert [await dial("busybee"), await dial("private")] == ["486", "403"]
    assert [await dial("9busybee"), await dial("9private")] == ["486", "403"]

    record = await sim_gateway.wait_record(count=4)
    with sim_gateway.gateway.db.session() as session:
        from sqlmodel import select

        from app.store.callrecord import CallRecord
        records = [(r.line, r.dialled, r.result_code, r.reason)
                   for r in session.exec(select(CallRecord).order_by(CallRecord.id))]
    assert records == [(ROUTE, "busybee", 486, "Busy Here"), (ROUTE, "private", 403, "USER_PRIVACY_RESTRICTED")] * 2
    assert record.direction == "sip-to-telegram"


async def test_user_asterisk_killed_and_restarted_while_idle(sim_gateway, sim_phone, baresip_factory, user_asterisk):
    supervisor = sim_gateway.gateway.supervisor
    alice = await sim_phone("alice", Behaviour(echo=True, hangup_after=1.0))

    await user_asterisk.kill()
    await until(lambda: not supervisor.ready.is_set(), 10, "the gateway noticed the Asterisk was lost")
    await user_asterisk.start()
    await until(lambda: supervisor.ready.is_set() and supervisor.restarts == 1, 20,
                "the Stasis application registered again")
    # As its admin would check it: the application is known to that Asterisk again.
    assert "tgtrunk" in await user_asterisk.rx("ari show apps")

    peer = await phone(baresip_factory, user_asterisk)
    await peer.command("dial", f"sip:alice@{user_asterisk.sip}")
    await peer.wait_event("CALL_ESTABLISHED", timeout=15)
    await peer.wait_event("CALL_CLOSED", timeout=15)  # alice hangs up after 1 s
    record = await sim_gateway.wait_record()
    assert (record.line, record.peer_username, record.result_code) == (ROUTE, "alice", 200)
    assert alice.calls[-1].duration >= 1


async def serve_once(tmp_path: Path, **env: str) -> tuple[int, list[str]]:
    data_dir = tmp_path / "gw-serve"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "serve", env=gateway_env(data_dir, free_port(), free_port(), **env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 90)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail("`tgtrunk serve` did not exit within 90 s")
    finally:
        remove_runtime_dir(data_dir)
    return proc.returncode or 0, (out + err).decode().splitlines()


async def test_wrong_credentials_give_one_clear_line_and_a_failing_exit(user_asterisk, tmp_path):
    code, output = await serve_once(tmp_path, **user_asterisk.gateway_env(TGTRUNK_ARI_PASSWORD="wrong"))
    assert code != 0
    errors = [line for line in output if "error" in line.lower()]
    assert errors == [f"tgtrunk: error: the Asterisk at {user_asterisk.url} refused ARI user 'pbxadmin' (401): "
                      "check TGTRUNK_ARI_USER and TGTRUNK_ARI_PASSWORD against its ari.conf"], output
    assert not any("Traceback" in line for line in output)
    assert "wrong" not in "\n".join(output)  # the password is not echoed


async def test_wrong_url_gives_one_clear_line_and_a_failing_exit(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    code, output = await serve_once(tmp_path, TGTRUNK_ARI_URL=url, TGTRUNK_ARI_USER="pbxadmin",
                                    TGTRUNK_ARI_PASSWORD="secret")
    assert code != 0
    errors = [line for line in output if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith(f"tgtrunk: error: cannot reach ARI at {url} ("), output
    assert not any("Traceback" in line for line in output)


async def test_serve_and_status_in_external_mode(make_gateway, user_asterisk):
    """`tgtrunk serve` as a process: no Asterisk child, no runtime folder; `tgtrunk status` shows the mode, the
    Asterisk's version and the registered application."""
    gateway = await make_gateway(**user_asterisk.gateway_env())
    with pytest.raises(AssertionError, match="no Asterisk child"):
        gateway.asterisk_pid()
    install = AsteriskInstall(ASTERISK_ROOT, "")
    assert not install.host_path(runtime_dir_for(install, gateway.data_dir)).exists()
    result = await gateway.cli("status")
    assert f"mode:     Stasis application tgtrunk on your own Asterisk at {user_asterisk.url}" in result.out
    assert "asterisk: 22." in result.out and "application tgtrunk registered" in result.out, result.out
    added = await gateway.cli("line", "add", ROUTE, "--mode", "stasis", "--pbx-number", "201")
    assert added.code == 2 and "a stasis line needs --originate" in added.err


async def test_telegram_call_through_a_local_channel_template(sim_gateway, sim_phone, baresip_factory, user_asterisk):
    """`--originate 'Local/{number}@from-internal'` (FreePBX: a ring group, any extension): the PBX's own dialplan
    rings the phone, with the route's Caller ID."""
    from app.sip import lines

    await asyncio.to_thread(lines.update_line, sim_gateway.gateway.db, ROUTE,
                            {"originate": "Local/{number}@from-internal"})
    await sim_gateway.gateway.lines.sync()
    carol = await sim_phone("carol", Behaviour(tone_hz=600, tone_dbfs=-12, record=False))
    peer = await phone(baresip_factory, user_asterisk, answermode="auto")

    call = await carol.call(GATEWAY_PHONE)
    answered = await peer.wait_event("CALL_ESTABLISHED", timeout=15)
    assert answered["peeruri"].startswith(f"sip:+{carol.user.phone}@")
    assert answered["peerdisplayname"] == "Carol Sim (TG)"
    await call.wait_connected(10)
    await call.hangup()
    await peer.wait_event("CALL_CLOSED", timeout=10)
    record = await sim_gateway.wait_record()
    assert (record.direction, record.line, record.dialled, record.result_code) == \
        ("telegram-to-sip", ROUTE, "201", 200)
