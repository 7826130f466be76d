"""A rejected outbound registration (a real PBX Asterisk refuses the password) is told to the administrator once."""

from __future__ import annotations

from tests.pbx import PbxAsterisk
from tests.peers import free_port

PBX_REGISTRAR = """
[registrar]
type = transport
protocol = udp
bind = 127.0.0.6:{registrar_port}

[gw7001]
type = auth
auth_type = userpass
username = gw7001
password = the-pbx-password

[gw7001]
type = aor
max_contacts = 1

[gw7001]
type = endpoint
transport = registrar
context = default
auth = gw7001
aors = gw7001
"""


async def test_a_rejected_outbound_registration_is_told_once(make_gateway, asterisk_install) -> None:
    gateway = await make_gateway(start=False)
    assert (await gateway.cli("account", "admin", "add", "demo", "@echo")).code == 0
    await gateway.start("--simulate-telegram")
    registrar_port = free_port("127.0.0.6")
    pbx = PbxAsterisk(asterisk_install, PBX_REGISTRAR.format(registrar_port=registrar_port))
    await pbx.start()
    try:
        add = ("line", "add", "pbx-out", "--mode", "outbound", "--server", f"127.0.0.6:{registrar_port}",
               "--username", "gw7001", "--password", "a-wrong-password")
        assert (await gateway.cli(*add)).code == 0
        sent = await gateway.wait_log(r"notification registration-rejected sent to @echo \(account demo\)", timeout=20)
        assert "line pbx-out: the PBX 127.0.0.6" in sent and "tgtrunk line set pbx-out --password" in sent
        assert "a-wrong-password" not in "\n".join(gateway.lines)

        # The same event again (the line is removed and added back, still with the wrong password): folded.
        mark = len(gateway.lines)
        assert (await gateway.cli("line", "remove", "pbx-out")).code == 0
        await gateway.wait_log(r"lines in sync: 0 line", start=mark)
        assert (await gateway.cli(*add)).code == 0
        await gateway.wait_log(r"notification registration-rejected \(pbx-out\) folded", timeout=20, start=mark)
        assert sum("notification registration-rejected sent" in line for line in gateway.lines) == 1
    finally:
        await pbx.stop()
