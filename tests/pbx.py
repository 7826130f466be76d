"""A second Asterisk acting as the customer's PBX, configured the way FreePBX writes a pjsip trunk."""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil

from app.ari.client import AriClient
from app.pbx.install import AsteriskInstall
from app.pbx.instance import AsteriskInstance, InstanceConfig
from tests.peers import free_port


def freepbx_global(identify_by: str = "ip,username,anonymous") -> str:
    return f"[global]\ntype = global\nuser_agent = FPBX-test\nendpoint_identifier_order = {identify_by}\n"


def freepbx_transport(name: str, address: str, port: int) -> str:
    return f"[{name}]\ntype = transport\nprotocol = udp\nbind = {address}:{port}\n"


def freepbx_trunk(gateway: str, transport: str, context: str, *, password: str = "pbx-side-secret",
                  allow: str = "alaw,ulaw", expiration: int = 120, endpoint_options: tuple[str, ...] = ()) -> str:
    """Connectivity > Trunks > pjsip "tgtrunk" as FreePBX writes it: registration Send as pbx1, authentication
    Outbound, the gateway as the contact."""
    return "\n".join([
        "[tgtrunk]", "type = registration", f"transport = {transport}", "outbound_auth = tgtrunk",
        f"server_uri = sip:{gateway}", f"client_uri = sip:pbx1@{gateway}", "contact_user = pbx1",
        "retry_interval = 2", f"expiration = {expiration}", "line = yes", "endpoint = tgtrunk",
        "[tgtrunk]", "type = auth", "auth_type = userpass", "username = pbx1", f"password = {password}",
        "[tgtrunk]", "type = aor", f"contact = sip:{gateway}",
        "[tgtrunk]", "type = endpoint", f"transport = {transport}", f"context = {context}", "disallow = all",
        f"allow = {allow}", "outbound_auth = tgtrunk", "aors = tgtrunk", *endpoint_options, "",
    ])


def freepbx_extension(name: str, transport: str, context: str, *, password: str = "gateway-side-secret",
                      endpoint_options: tuple[str, ...] = ()) -> str:
    """Applications > Extensions > NAME (pjsip): an account the gateway's outbound line registers as."""
    return "\n".join([
        f"[{name}]", "type = auth", "auth_type = userpass", f"username = {name}", f"password = {password}",
        f"[{name}]", "type = aor", "max_contacts = 1",
        f"[{name}]", "type = endpoint", f"transport = {transport}", f"context = {context}", "disallow = all",
        "allow = alaw,ulaw", f"auth = {name}", f"aors = {name}", *endpoint_options, "",
    ])


class PbxAsterisk:
    def __init__(self, install: AsteriskInstall, pjsip_conf: str, extensions_conf: str = "") -> None:
        self.ari_port = free_port()
        password = secrets.token_urlsafe(12)
        self.instance = AsteriskInstance(
            install, f"/srv/tgtrunk/pbx-{secrets.token_hex(4)}",
            InstanceConfig(
                sip_bind="127.0.0.1:0", ari_port=self.ari_port, ari_password=password,
                rtp_start=21000 + self.ari_port % 1000 * 20, rtp_end=21000 + self.ari_port % 1000 * 20 + 19,
                overrides={"sorcery.conf": "", "pjsip.conf": pjsip_conf,
                           "extensions.conf": extensions_conf or "[general]\nstatic=yes\n"},
            ),
        )
        self.ari = AriClient("127.0.0.1", self.ari_port, "tgtrunk", password, "pbx")

    async def start(self) -> "PbxAsterisk":
        await self.instance.start()
        async def ready() -> None:
            while not await self.ari.ping():
                await asyncio.sleep(0.05)
        await asyncio.wait_for(ready(), 30)
        return self

    async def registration_state(self, name: str) -> str:
        out = await self.instance.rx("pjsip show registrations")
        match = re.search(rf"^\s*{re.escape(name)}/\S+\s+\S+\s+(\w+)", out, re.MULTILINE)
        return match.group(1) if match else "absent"

    async def wait_registration(self, name: str, state: str = "Registered", timeout: float = 15.0) -> None:
        async def poll() -> None:
            while await self.registration_state(name) != state:
                await asyncio.sleep(0.2)
        await asyncio.wait_for(poll(), timeout)

    async def contacts(self) -> str:
        return await self.instance.rx("pjsip show contacts")

    async def stop(self) -> None:
        await self.ari.close()
        await self.instance.stop()
        shutil.rmtree(self.instance.host_dir, ignore_errors=True)
