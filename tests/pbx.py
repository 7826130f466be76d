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


# The dialplan lines the README's "Use your own Asterisk / FreePBX" gives, as a user would paste them.
STASIS_DIALPLAN = """
[general]
static = yes

; phones: their extensions, and anything with letters or a + goes to Telegram through the route `telegram`
[from-internal]
exten => _2XX,1,Dial(PJSIP/${{EXTEN}},30)
 same => n,Hangup()
; as a FreePBX outbound route with the Custom trunk Local/$OUTNUM$@tgtrunk-out
exten => _9.,1,Dial(Local/${{EXTEN:1}}@tgtrunk-out)
 same => n,Hangup(${{HANGUPCAUSE}})
include => tgtrunk-out

[tgtrunk-out]
exten => _[a-z].,1,Goto(tgtrunk-route,${{EXTEN}},1)
exten => _+X.,1,Goto(tgtrunk-route,${{EXTEN}},1)

[tgtrunk-route]
exten => _X.,1,Stasis({app},{route},${{EXTEN}})
 same => n,Goto(tgtrunk-end,s,1)
exten => _[a-z+].,1,Stasis({app},{route},${{EXTEN}})
 same => n,Goto(tgtrunk-end,s,1)

; after Stasis(): tgtrunk refused the call (TGTRUNK_SIP_CODE), or was not connected (STASISSTATUS=FAILED)
[tgtrunk-end]
exten => s,1,Set(CODE=${{IF($["${{STASISSTATUS}}" = "FAILED"]?503:${{TGTRUNK_SIP_CODE}})}})
 same => n,GotoIf($["${{CODE}}" = ""]?done)
 same => n,GotoIf($["${{CHANNEL(channeltype)}}" = "PJSIP"]?pjsip)
 same => n,Hangup(${{IF($["${{TGTRUNK_CAUSE}}" = ""]?34:${{TGTRUNK_CAUSE}})}})
 same => n(pjsip),PJSIPHangup(${{CODE}})
 same => n(done),Hangup()
"""

PHONES_PJSIP = """
[transport-udp]
type = transport
protocol = udp
bind = {sip}
"""

PHONE_PJSIP = """
[{ext}]
type = endpoint
context = from-internal
disallow = all
allow = alaw,ulaw
auth = {ext}
aors = {ext}
direct_media = no
rtp_symmetric = yes
force_rport = yes
rewrite_contact = yes
callerid = Phone {ext} <{ext}>

[{ext}]
type = auth
auth_type = userpass
username = {ext}
password = {password}

[{ext}]
type = aor
max_contacts = 1
remove_existing = yes
"""


class UserAsterisk:
    """"The user's Asterisk" for tgtrunk's external mode: its own ari.conf user, http.conf on a free loopback port,
    phones (pjsip endpoints 201, 202, … for baresip) and a dialplan entering `Stasis(app,route,${EXTEN})`."""

    def __init__(self, install: AsteriskInstall, route: str = "telegram", app: str = "tgtrunk",
                 phones: tuple[str, ...] = ("201", "202"), ari_user: str = "pbxadmin") -> None:
        self.http_port = free_port()
        self.sip = f"127.0.0.7:{free_port('127.0.0.7')}"
        self.ari_user = ari_user
        self.ari_password = secrets.token_urlsafe(12)
        self.phone_password = {ext: f"pw{ext}" for ext in phones}
        pjsip = PHONES_PJSIP.format(sip=self.sip) + "".join(
            PHONE_PJSIP.format(ext=ext, password=password) for ext, password in self.phone_password.items())
        rtp_start = 23000 + self.http_port % 1000 * 20
        self.instance = AsteriskInstance(
            install, f"/srv/tgtrunk/user-{secrets.token_hex(4)}",
            InstanceConfig(
                sip_bind=self.sip, ari_port=self.http_port, ari_password="unused",
                rtp_start=rtp_start, rtp_end=rtp_start + 19,
                overrides={
                    "sorcery.conf": "",  # phones from pjsip.conf, nothing pushed
                    "pjsip.conf": pjsip,
                    "extensions.conf": STASIS_DIALPLAN.format(app=app, route=route),
                    "ari.conf": f"[general]\nenabled = yes\n\n[{ari_user}]\ntype = user\nread_only = no\n"
                                f"password = {self.ari_password}\npassword_format = plain\n",
                    "http.conf": f"[general]\nenabled = yes\nbindaddr = 127.0.0.1\nbindport = {self.http_port}\n",
                },
            ),
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def gateway_env(self, **extra: str) -> dict[str, str]:
        return {"TGTRUNK_ARI_URL": self.url, "TGTRUNK_ARI_USER": self.ari_user,
                "TGTRUNK_ARI_PASSWORD": self.ari_password, "TGTRUNK_MEDIA_ADDRESS": "127.0.0.1", **extra}

    @property
    def pid(self) -> int | None:
        return self.instance.pid

    async def start(self) -> "UserAsterisk":
        await self.instance.start()
        ari = AriClient("127.0.0.1", self.http_port, self.ari_user, self.ari_password, "probe")
        try:
            async def ready() -> None:
                while not await ari.ping():
                    await asyncio.sleep(0.05)
            await asyncio.wait_for(ready(), 30)
        finally:
            await ari.close()
        return self

    async def kill(self) -> None:
        """As a crash or `kill -9`: no clean shutdown."""
        process = self.instance.process
        assert process is not None and process.returncode is None
        process.kill()
        await process.wait()

    async def rx(self, command: str) -> str:
        return await self.instance.rx(command)

    async def stop(self) -> None:
        await self.instance.stop()
        shutil.rmtree(self.instance.host_dir, ignore_errors=True)
