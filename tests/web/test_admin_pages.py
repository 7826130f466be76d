"""The admin pages in a real headless Chromium against a running gateway (simulated Telegram, real baresip)."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import aiohttp
from playwright.async_api import Page, expect

from tests.conftest import GatewayProcess

DOCS = Path(__file__).resolve().parents[2] / "docs"


def base_url(gateway: GatewayProcess) -> str:
    return f"http://{gateway.env['TGTRUNK_HTTP_BIND']}"


async def screenshot(page: Page, name: str) -> None:
    """With TGTRUNK_DOCS_SCREENSHOTS=1 the pages are saved into docs/ (how the README's pictures are made)."""
    if os.environ.get("TGTRUNK_DOCS_SCREENSHOTS"):
        await page.screenshot(path=str(DOCS / f"admin-{name}.png"), full_page=True)


async def log_in(page: Page, gateway: GatewayProcess, secret: str) -> None:
    await page.goto(base_url(gateway) + "/")
    await expect(page).to_have_url(re.compile(r"/login$"))
    await page.fill("input[name=secret]", secret)
    await page.click("text=Log in")


async def test_log_in_add_a_line_see_a_live_call_and_change_a_line(make_gateway, baresip_factory, browser_page) -> None:
    page = browser_page
    gateway = await make_gateway(start=False)
    await gateway.start("--simulate-telegram")
    token = (gateway.data_dir / "admin-token").read_text().strip()

    await log_in(page, gateway, "not-the-token")
    await expect(page.get_by_role("alert")).to_have_text("wrong token or password")
    await gateway.wait_log(r"admin pages: failed login from 127\.0\.0\.1")
    await page.fill("input[name=secret]", token)
    await page.click("text=Log in")
    await expect(page.locator("h2", has_text="Asterisk")).to_be_visible()
    await expect(page.locator("main")).to_contain_text("ready")
    await screenshot(page, "login-status")

    await page.click("header >> text=Lines")
    form = page.locator("#add-line")
    await form.locator("input[name=name]").fill("desk")
    await form.locator("input[name=username]").fill("desk")
    await form.locator("input[name=password]").fill("desk-secret")
    await form.get_by_role("button", name="Add line").click()
    await expect(page.get_by_role("status")).to_have_text("line desk added")
    await expect(page.locator("#line-desk")).to_contain_text("register")
    listed = await gateway.cli("line", "show", "desk")
    assert listed.code == 0 and "desk" in listed.out
    await gateway.wait_log(r"lines in sync: 1 line")

    phone = await baresip_factory("127.0.0.2")
    await phone.command("uanew", f"<sip:desk@{gateway.sip_server}>;auth_pass=desk-secret;regint=60;answermode=auto")
    assert (await phone.wait_event("REGISTER_OK", "REGISTER_FAIL"))["type"] == "REGISTER_OK"
    await phone.command("dial", f"sip:echo@{gateway.sip_server}")
    await phone.wait_event("CALL_ESTABLISHED", timeout=15)
    await page.click("header >> text=Status")
    live = page.locator("#live-calls")
    await expect(live).to_contain_text("sip-to-telegram", timeout=10_000)
    await expect(live).to_contain_text("@echo")
    await expect(live.locator("tr").nth(1)).to_contain_text("yes")  # answered, the page refreshes by itself
    await screenshot(page, "live-call")
    await phone.command("hangup")
    await phone.wait_event("CALL_CLOSED")
    await expect(live).to_contain_text("no call right now", timeout=10_000)

    await page.click("header >> text=Calls")
    await expect(page.locator("#calls")).to_contain_text("200")
    await page.select_option("select[name=direction]", "telegram-to-sip")
    await page.click("text=Filter")
    await expect(page.locator("#calls")).to_contain_text("no call matches")
    await screenshot(page, "calls")

    # A change made on the page is applied by the running gateway: the line now serves an account that is not
    # running, so a call on it is refused; set back, calls go through again.
    await page.click("header >> text=Lines")
    row = page.locator("#line-desk")
    applied = len(gateway.lines)
    await row.locator("input[name=account]").fill("sales")
    await row.get_by_role("button", name="Save desk").click()
    await expect(page.get_by_role("status")).to_contain_text("line desk saved")
    await gateway.wait_log(r"line desk changed: the running gateway uses", start=applied)
    await screenshot(page, "lines")
    assert re.search(r"^account +sales$", (await gateway.cli("line", "show", "desk")).out, re.M)
    closed = await phone.dial_until_closed(f"sip:echo@{gateway.sip_server}")
    assert closed.startswith("503"), closed
    applied = len(gateway.lines)
    await row.locator("input[name=account]").fill("")
    await row.get_by_role("button", name="Save desk").click()
    await expect(page.get_by_role("status")).to_contain_text("line desk saved")
    await gateway.wait_log(r"line desk changed: the running gateway uses", start=applied)
    await phone.command("dial", f"sip:echo@{gateway.sip_server}")
    await phone.wait_event("CALL_ESTABLISHED", timeout=15)
    await phone.command("hangup")
    await phone.wait_event("CALL_CLOSED")

    await page.click("text=Reset password")
    new_password = (await page.locator("#password").text_content() or "").strip()
    assert len(new_password) >= 12
    await expect(page.locator("#line-desk")).to_be_visible()

    await page.click("text=Log out")
    await expect(page).to_have_url(re.compile(r"/login$"))
    await page.goto(base_url(gateway) + "/lines")
    await expect(page).to_have_url(re.compile(r"/login$"))
    bad = [line for line in gateway.lines if "Traceback" in line or "Error handling request" in line]
    assert not bad, "\n".join(bad)


async def test_forms_need_the_session_and_its_csrf_token(make_gateway) -> None:
    gateway = await make_gateway()
    token = (gateway.data_dir / "admin-token").read_text().strip()
    url = base_url(gateway)
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(url + "/", allow_redirects=False) as response:
            assert response.status == 303 and response.headers["Location"] == "/login"
        async with anonymous.post(url + "/lines", data={"name": "x", "mode": "register"}, allow_redirects=False) as response:
            assert response.status == 303

    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as browser:
        async with browser.post(url + "/login", data={"secret": token}, allow_redirects=False) as response:
            assert response.status == 303
            cookie = response.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        async with browser.get(url + "/lines") as response:
            page = await response.text()
            csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        # A form posted from another site carries the cookie (were it not SameSite) but not the token.
        async with browser.post(url + "/lines", data={"name": "evil", "mode": "register"}) as response:
            assert response.status == 403 and "stale" in await response.text()
        async with browser.post(url + "/lines", data={"name": "bad name!", "mode": "register", "csrf": csrf}) as response:
            assert response.status == 400 and "bad name!" in await response.text()
        async with browser.post(url + "/lines", data={"name": "ok", "priority": "abc", "csrf": csrf}) as response:
            assert response.status == 400 and "priority: &#39;abc&#39; is not a whole number" in await response.text()
        async with browser.post(url + "/lines/nobody/remove", data={"csrf": csrf}) as response:
            assert response.status == 404 and "no line named" in await response.text()
        async with browser.get(url + "/calls?code=abc") as response:
            assert response.status == 400
        assert (await gateway.cli("line", "list")).out.count("\n") <= 1  # nothing was stored

        # A new password logs every open session out; then the password logs in.
        setting = await asyncio.create_subprocess_exec(
            *gateway_cli(gateway), "admin", "password", "--stdin", env=gateway.env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await setting.communicate(b"correct horse battery\n")
        assert setting.returncode == 0, err
        assert oct((gateway.data_dir / "admin-password").stat().st_mode & 0o777) == "0o600"
        assert b"correct horse" not in (gateway.data_dir / "admin-password").read_bytes()
        async with browser.get(url + "/lines", allow_redirects=False) as response:
            assert response.status == 303
        async with browser.post(url + "/login", data={"secret": "correct horse battery"}, allow_redirects=False) as response:
            assert response.status == 303
        async with browser.get(url + "/", allow_redirects=False) as response:
            assert response.status == 200
    assert "correct horse" not in "\n".join(gateway.lines)


def gateway_cli(gateway: GatewayProcess) -> list[str]:
    import sys
    return [sys.executable, "-m", "app"]


async def test_editing_a_line_in_the_pages_keeps_what_the_form_does_not_show(make_gateway) -> None:
    """The edit form carries a few fields; the others (here the identity header, a CLI setting) and the
    password stay as they were, because the pages change a line the way the CLI does."""
    gateway = await make_gateway()
    token = (gateway.data_dir / "admin-token").read_text().strip()
    added = await gateway.cli("line", "add", "desk", "--mode", "register", "--password", "desk-secret",
                              "--identity-header", "rpid", "--record")
    assert added.code == 0, added.err
    before = (await gateway.cli("line", "show", "desk")).out
    url = base_url(gateway)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.post(url + "/login", data={"secret": token}, allow_redirects=False) as response:
            assert response.status == 303
        async with browser.get(url + "/lines") as response:
            csrf = re.search(r'name="csrf" value="([^"]+)"', await response.text()).group(1)
        async with browser.post(url + "/lines/desk/edit", data={"pbx_number": "200", "csrf": csrf}) as response:
            assert response.status == 200 and "line desk saved" in await response.text()
        after = (await gateway.cli("line", "show", "desk")).out
        assert re.search(r"identity_header\s+rpid", after), after
        assert re.search(r"^record\s+True$", after, re.M), after
        assert re.search(r"pbx_number\s+200", after), after
        assert re.search(r"password\s+set", before) and re.search(r"password\s+set", after)
        async with browser.post(url + "/lines/nobody/edit", data={"pbx_number": "1", "csrf": csrf}) as response:
            assert response.status == 404 and "no line named" in await response.text()


async def test_failed_logins_lock_that_address_out_for_a_while(make_gateway) -> None:
    """Five wrong secrets from one address: the sixth attempt is refused (429, Retry-After) even with the right
    token, without its secret being checked; another address still logs in."""
    gateway = await make_gateway(start=False)
    await gateway.start()
    token = (gateway.data_dir / "admin-token").read_text().strip()
    url = base_url(gateway)
    async with aiohttp.ClientSession() as guesser:
        for guess in range(5):
            async with guesser.post(url + "/login", data={"secret": f"guess-{guess}"}, allow_redirects=False) as response:
                assert response.status == 401
        async with guesser.post(url + "/login", data={"secret": token}, allow_redirects=False) as response:
            assert response.status == 429
            assert 590 <= int(response.headers["Retry-After"]) <= 601
            assert "too many failed logins; try again in" in await response.text()
    await gateway.wait_log(r"admin pages: login from 127\.0\.0\.1 refused: 5 failed logins within 600 s")
    other = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=other) as operator:
        async with operator.post(url + "/login", data={"secret": token}, allow_redirects=False) as response:
            assert response.status == 303
    assert token not in "\n".join(gateway.lines)
