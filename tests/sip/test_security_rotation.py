"""The security log is followed by name: a rename rotation (logrotate without copytruncate) loses no failure."""

from __future__ import annotations

from app.pbx.install import AsteriskInstall
from app.pbx.instance import runtime_dir_for
from tests.conftest import ASTERISK_ROOT


async def test_a_wrong_password_after_a_rename_rotation_is_logged_and_counted_towards_a_ban(
        make_gateway, baresip_factory):
    gateway = await make_gateway(TGTRUNK_BAN_THRESHOLD="3", TGTRUNK_BAN_WINDOW="60", TGTRUNK_BAN_SECONDS="300")
    assert (await gateway.cli("line", "add", "pbx1", "--mode", "register", "--password", "right")).code == 0
    await gateway.wait_log(r"lines in sync")
    install = AsteriskInstall(ASTERISK_ROOT, "")
    security_log = install.host_path(runtime_dir_for(install, gateway.data_dir)) / "log" / "security.log"
    wrong = r"wrong password 'pbx1' \(line pbx1\) from 127\.0\.0\.4:"

    attacker = await baresip_factory("127.0.0.4")
    assert (await attacker.register("pbx1", "guess1", gateway.sip_server))["type"] == "REGISTER_FAIL"
    first = gateway.lines.index(await gateway.wait_log(wrong))

    # logrotate's rename rotation: the file is moved away; Asterisk writes on into it until told to reopen.
    security_log.rename(security_log.with_name("security.log.1"))
    assert (await attacker.register("pbx1", "guess2", gateway.sip_server))["type"] == "REGISTER_FAIL"
    second = gateway.lines.index(await gateway.wait_log(wrong, start=first + 1))

    # logrotate's postrotate: Asterisk reopens its logs, so a new security.log starts under the name.
    reload = await gateway.cli("asterisk", "rx", "logger reload")
    assert reload.code == 0, reload.err
    assert (await attacker.register("pbx1", "guess3", gateway.sip_server))["type"] == "REGISTER_FAIL"
    await gateway.wait_log(wrong, start=second + 1)
    assert security_log.exists()
    await gateway.wait_log(r"banned 127\.0\.0\.4 for 300 s after 3 failed authentications")
    assert "127.0.0.4" in (await gateway.cli("status")).out
    logs = await gateway.cli("logs", "security", "-n", "5")  # Asterisk's own record of it, from the new file
    assert logs.code == 0 and 'RemoteAddress="IPV4/UDP/127.0.0.4/' in logs.out, logs
