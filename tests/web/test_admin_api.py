"""The admin API of a running gateway, tried as an attacker would: raw HTTP over loopback TCP.

Every bad request gets a 4xx with a reason, none a 500 or a traceback in the gateway's log, and a refused body
stores nothing."""

from __future__ import annotations

import asyncio
import json
import stat

from tests.conftest import GatewayProcess


async def http(gateway: GatewayProcess, method: str, path: str, body: bytes | None = None,
               authorization: bytes | None = b"") -> tuple[int, str]:
    """One request on its own connection; `authorization` b"" means the gateway's own token."""
    host, _, port = gateway.env["TGTRUNK_HTTP_BIND"].rpartition(":")
    if authorization == b"":
        authorization = b"Bearer " + (gateway.data_dir / "admin-token").read_bytes().strip()
    head = [f"{method} {path} HTTP/1.1".encode(), f"Host: {host}".encode(), b"Connection: close"]
    if authorization is not None:
        head.append(b"Authorization: " + authorization)
    if body is not None:
        head += [b"Content-Type: application/json", f"Content-Length: {len(body)}".encode()]
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + (body or b""))
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = response.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2].decode(errors="replace")


def assert_no_traceback(gateway: GatewayProcess) -> None:
    bad = [line for line in gateway.lines if "Traceback" in line or "Error handling request" in line]
    assert not bad, "\n".join(gateway.lines[-40:])


GOOD_LINE = {"name": "office", "mode": "register", "username": "pbx1", "password": "secret-pw"}

BAD_BODIES = [
    (b"{bad json", "Invalid JSON"),
    (b"", "Invalid JSON"),
    (b"[]", "Input should be an object"),
    (b"null", "Input should be an object"),
    (b'"office"', "Input should be an object"),
    (json.dumps({**GOOD_LINE, "codecs": ["alaw"]}).encode(), "codecs: Input should be a valid string"),
    (json.dumps({**GOOD_LINE, "pbx_number": {"x": 1}}).encode(), "pbx_number: Input should be a valid string"),
    (json.dumps({**GOOD_LINE, "priority": "abc"}).encode(), "priority: Input should be a valid integer"),
    (json.dumps({**GOOD_LINE, "priority": True}).encode(), "priority: Input should be a valid integer"),
    (json.dumps({**GOOD_LINE, "priority": 10**30}).encode(), "priority"),
    (json.dumps({**GOOD_LINE, "max_calls": "2"}).encode(), "max_calls"),
    (json.dumps({**GOOD_LINE, "rules": "^0=+"}).encode(), "rules: Input should be a valid array"),
    (json.dumps({**GOOD_LINE, "trusted_ips": [1]}).encode(), "trusted_ips.0: Input should be a valid string"),
    (json.dumps({**GOOD_LINE, "is_admin": True}).encode(), "is_admin: unknown field"),
    (json.dumps({"mode": "register"}).encode(), "name: Field required"),
    (json.dumps({**GOOD_LINE, "mode": "sideways"}).encode(), "unknown mode 'sideways'"),
]


async def test_bad_requests_get_a_4xx_with_a_reason_and_store_nothing(gateway: GatewayProcess) -> None:
    assert await http(gateway, "GET", "/api/lines") == (200, "[]")

    for body, reason in BAD_BODIES:
        status, text = await http(gateway, "POST", "/api/lines", body)
        assert status == 400 and reason in text, (body, status, text)

    for last in ("abc", "-1", "0", "1e3", str(10**30), "", "%EF%BC%95"):
        status, text = await http(gateway, "GET", f"/api/calls?last={last}")
        assert status == 400 and "give a whole number from 1 to 1000" in text, (last, status, text)
    assert (await http(gateway, "GET", "/api/calls?last=5")) == (200, "[]")

    for body in (b"[]", b"null", b"{bad", b'{"user": 5}', b'{"user": "tone", "x": 1}'):
        status, text = await http(gateway, "POST", "/api/sim/call", body)
        assert status == 400 and "body must be" in text, (body, status, text)

    status, text = await http(gateway, "GET", "/api/nothing-here")
    assert status == 404 and text
    status, text = await http(gateway, "DELETE", "/api/lines/nobody")
    assert status == 404 and "no line named 'nobody'" in text

    assert await http(gateway, "GET", "/api/lines") == (200, "[]")  # nothing refused was stored
    status, text = await http(gateway, "POST", "/api/lines", json.dumps({**GOOD_LINE, "priority": 5}).encode())
    assert status == 201, text
    status, text = await http(gateway, "GET", "/api/lines")
    assert status == 200 and [(line["name"], line["priority"]) for line in json.loads(text)] == [("office", 5)]
    assert_no_traceback(gateway)


async def test_requests_without_the_right_bearer_token_are_refused(gateway: GatewayProcess) -> None:
    token = (gateway.data_dir / "admin-token").read_bytes().strip()
    for authorization in (
        None,
        b"Bearer ",
        token,  # the bare token, without "Bearer "
        b"Bearer " + token + b"x",
        "Bearer \u00e9\u20ac\u00fc".encode(),  # non-ASCII (UTF-8)
        b"Bearer \xff\xfe",  # not even UTF-8
        b"Basic dXNlcjpwYXNz",
    ):
        for method, path, body in (("GET", "/api/lines", None), ("POST", "/api/lines", json.dumps(GOOD_LINE).encode())):
            status, text = await http(gateway, method, path, body, authorization=authorization)
            assert status == 401 and "admin token" in text, (authorization, method, status, text)
    assert await http(gateway, "GET", "/api/lines") == (200, "[]")
    assert_no_traceback(gateway)


async def test_an_empty_admin_token_file_is_regenerated_and_the_api_stays_closed(make_gateway) -> None:
    gateway = await make_gateway(start=False)
    token_path = gateway.data_dir / "admin-token"
    token_path.write_bytes(b"")
    await gateway.start()

    for authorization in (None, b"Bearer ", b"Bearer"):
        status, _ = await http(gateway, "POST", "/api/lines", json.dumps(GOOD_LINE).encode(),
                               authorization=authorization)
        assert status == 401, authorization
    token = token_path.read_text()
    assert len(token) == 32 and stat.S_IMODE(token_path.stat().st_mode) == 0o600
    assert await http(gateway, "GET", "/api/lines") == (200, "[]")
    await gateway.wait_log(r"the admin token .*admin-token was empty: a new one was generated", timeout=1)
