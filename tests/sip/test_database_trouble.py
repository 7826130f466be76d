"""A full disk under a running gateway: bans still work, line sync says so once, a crashing task is restarted and
shown in /healthz and `tgtrunk status`."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from app.pbx.install import AsteriskInstall
from app.pbx.instance import runtime_dir_for
from tests.conftest import ASTERISK_ROOT


def healthz(gateway) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    url = f"http://{gateway.env['TGTRUNK_HTTP_BIND']}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_full_disk_during_auth_failures_still_bans_and_stores_bans_once_it_recovers(
        small_disk, make_gateway, baresip_factory):
    gateway = await make_gateway(TGTRUNK_BAN_THRESHOLD="3", TGTRUNK_BAN_WINDOW="60", TGTRUNK_BAN_SECONDS="300",
                                 TGTRUNK_DATABASE_URL=small_disk.database_url)
    assert (await gateway.cli("line", "add", "pbx1", "--mode", "register", "--password", "right")).code == 0
    await gateway.wait_log(r"lines in sync")
    small_disk.fill()

    attacker = await baresip_factory("127.0.0.4")
    for guess in ("guess1", "guess2", "guess3"):
        assert (await attacker.register("pbx1", guess, gateway.sip_server))["type"] == "REGISTER_FAIL"
    await gateway.wait_log(r"banned 127\.0\.0\.4 for 300 s after 3 failed authentications")
    await gateway.wait_log(r"the ban of 127\.0\.0\.4 is kept in memory and enforced, but not stored: "
                           r"the database cannot be written \(database or disk is full\)")
    await gateway.wait_log(r"bans in Asterisk: 127\.0\.0\.4$")
    # Asterisk refuses the banned address even with the right password; others get in.
    refused = await attacker.register("pbx1", "right", gateway.sip_server)
    assert refused["type"] == "REGISTER_FAIL", refused
    friend = await baresip_factory("127.0.0.2")
    assert (await friend.register("pbx1", "right", gateway.sip_server))["type"] == "REGISTER_OK"
    code, health = healthz(gateway)
    assert code == 503 and health["database"]["ok"] is False and "disk is full" in health["database"]["error"]
    assert health["tasks"]["security-log"]["state"] == "running" and health["tasks"]["ok"]

    small_disk.free()
    await gateway.wait_log(r"the database took the ban\(s\) kept in memory: 127\.0\.0\.4", timeout=10)
    other = await baresip_factory("127.0.0.5")
    for guess in ("guess1", "guess2", "guess3"):
        assert (await other.register("pbx1", guess, gateway.sip_server))["type"] == "REGISTER_FAIL"
    await gateway.wait_log(r"banned 127\.0\.0\.5 for 300 s")
    status = await gateway.cli("status")
    assert "127.0.0.4" in status.out and "127.0.0.5" in status.out, status.out
    assert "kept in memory" not in "\n".join(gateway.lines[-5:])


async def test_line_sync_with_a_full_disk_warns_once_and_says_when_it_works_again(small_disk, make_gateway):
    gateway = await make_gateway(TGTRUNK_DATABASE_URL=small_disk.database_url)
    assert (await gateway.cli("line", "add", "pbx1", "--mode", "register", "--password", "pw")).code == 0
    await gateway.wait_log(r"lines in sync")
    start = len(gateway.lines)
    small_disk.fill()
    await gateway.wait_log(r"line sync is failing \(OperationalError: database or disk is full\)", start=start)
    failing_at = len(gateway.lines)
    # The status row is retried every poll and keeps failing: over 3 s (the old code's traceback came every 2 s)
    # nothing more may be said. A quiet interval is what is checked here, so it is waited out.
    await asyncio.sleep(3)
    code, health = healthz(gateway)
    assert code == 503 and health["database"]["ok"] is False
    small_disk.free()
    recovered = await gateway.wait_log(r"line sync works again after \d+ s", timeout=10, start=failing_at)
    assert int(re.search(r"after (\d+) s", recovered).group(1)) >= 3
    said = gateway.lines[start:]
    assert sum("line sync is failing" in line for line in said) == 1, said
    assert not any("Traceback" in line for line in said), said
    code, health = healthz(gateway)
    assert code == 200 and health["ok"], health


async def test_a_crashing_background_task_is_restarted_and_shown_in_healthz_and_status(gateway):
    code, health = healthz(gateway)
    assert code == 200 and health["ok"] and health["tasks"]["security-log"]["state"] == "running", health

    # The operator's mistake: a directory where Asterisk's security log should be. The watcher cannot read it.
    install = AsteriskInstall(ASTERISK_ROOT, "")
    log_file = Path(install.host_path(runtime_dir_for(install, gateway.data_dir))) / "log" / "security.log"
    log_file.unlink(missing_ok=True)
    log_file.mkdir()
    start = len(gateway.lines)
    await gateway.wait_log(r"background task security-log failed; restarting it in 0\.5 s", start=start)
    await gateway.wait_log(r"IsADirectoryError", start=start)
    # Restarted, it is shown as failing until it has run 5 s without failing again.
    code, health = healthz(gateway)
    assert code == 503 and health["ok"] is False and health["tasks"]["ok"] is False
    task = health["tasks"]["security-log"]
    assert task["failures_in_a_row"] == 1 and "IsADirectoryError" in task["last_error"], task
    assert health["asterisk"]["ok"] and health["database"]["ok"]
    status = await gateway.cli("status")
    assert "health:   FAILING: tasks" in status.out, status.out
    assert "task security-log" in status.out and "IsADirectoryError" in status.out, status.out
    assert sum("Traceback" in line for line in gateway.lines[start:]) == 1

    # The log is followed by name, so the task keeps failing (and /healthz says so) while the directory is there.
    shutil.rmtree(log_file)
    await gateway.wait_log(r"background task security-log is running again after \d+ failure\(s\)", timeout=10,
                           start=start)
    code, health = healthz(gateway)
    assert code == 200 and health["ok"] and health["tasks"]["security-log"]["restarts"] >= 1, health
    assert "health:   ok" in (await gateway.cli("status")).out
