"""An `ip` line: calls from its host are accepted without a password, from elsewhere refused."""

from __future__ import annotations


async def test_ip_line_accepts_its_host_and_refuses_others(gateway, baresip_factory):
    added = await gateway.cli("line", "add", "sbc", "--mode", "ip", "--host", "127.0.0.2:5060",
                              "--header", "X-Trunk: telegram")
    assert added.code == 0, added.err
    await gateway.wait_log(r"lines in sync")

    trusted = await baresip_factory("127.0.0.2")
    await trusted.add_ua("sbc", gateway.sip_server)
    status = await trusted.dial_until_closed(f"sip:4420@{gateway.sip_server}")
    assert status.startswith("503"), status  # reached the Stasis app: no Telegram account is running
    await gateway.wait_log(r"call from line sbc .* to '4420'")

    mark = len(gateway.lines)
    stranger = await baresip_factory("127.0.0.3")
    await stranger.add_ua("sbc", gateway.sip_server)
    refused = await stranger.dial_until_closed(f"sip:4421@{gateway.sip_server}")
    assert refused.startswith(("401", "403", "407")), refused
    assert not any("4421" in line for line in gateway.lines[mark:] if "call from line" in line)
