"""Changes while `serve` runs: the CLI's edits apply live; a killed Asterisk comes back."""

from __future__ import annotations

import os
import signal
from datetime import datetime


async def test_cli_change_takes_effect_without_restart(gateway, baresip_factory):
    assert (await gateway.cli("line", "add", "pbx1", "--mode", "register", "--password", "first-pw")).code == 0
    await gateway.wait_log(r"lines in sync")
    peer = await baresip_factory("127.0.0.2")
    assert (await peer.register("pbx1", "first-pw", gateway.sip_server))["type"] == "REGISTER_OK"

    mark = len(gateway.lines)
    assert (await gateway.cli("line", "reset-password", "pbx1", "--password", "second-pw")).code == 0
    written_at = datetime.now()  # the CLI has committed the change when it exits
    synced = await gateway.wait_log(r"lines in sync", start=mark, timeout=3)
    synced_at = datetime.strptime(synced[:23], "%Y-%m-%d %H:%M:%S,%f")
    assert (synced_at - written_at).total_seconds() < 1.0  # pushed into Asterisk within a second
    assert (await peer.register("pbx1", "first-pw", gateway.sip_server))["type"] == "REGISTER_FAIL"
    assert (await peer.register("pbx1", "second-pw", gateway.sip_server))["type"] == "REGISTER_OK"

    mark = len(gateway.lines)
    assert (await gateway.cli("line", "set", "pbx1", "--trusted-ip", "127.0.0.9/32")).code == 0
    await gateway.wait_log(r"lines in sync", start=mark, timeout=2)
    assert (await peer.register("pbx1", "second-pw", gateway.sip_server))["type"] == "REGISTER_FAIL"

    mark = len(gateway.lines)
    assert (await gateway.cli("line", "remove", "pbx1")).code == 0
    await gateway.wait_log(r"lines in sync: 0 line", start=mark, timeout=2)
    assert (await peer.register("pbx1", "second-pw", gateway.sip_server))["type"] == "REGISTER_FAIL"


async def test_killed_asterisk_comes_back_and_registrations_work_again(gateway, baresip_factory):
    assert (await gateway.cli("line", "add", "pbx1", "--mode", "register", "--password", "pw")).code == 0
    await gateway.wait_log(r"lines in sync")
    first = gateway.asterisk_pid()

    mark = len(gateway.lines)
    os.kill(first, signal.SIGKILL)
    await gateway.wait_log(r"Asterisk exited", start=mark)
    await gateway.wait_log(r"ARI ready", start=mark, timeout=30)
    await gateway.wait_log(r"ARI events connected", start=mark, timeout=10)
    assert gateway.asterisk_pid() != first

    peer = await baresip_factory("127.0.0.2")
    assert (await peer.register("pbx1", "pw", gateway.sip_server))["type"] == "REGISTER_OK"
    status = await peer.dial_until_closed(f"sip:+15550001@{gateway.sip_server}")
    assert status.startswith("503"), status  # in Stasis, no Telegram account: 503 Session is not running
