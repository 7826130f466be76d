"""`tgtrunk account …` against the simulated network: login (code, 2FA, error paths), privacy, storage, logout."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from app.settings import load_settings
from app.store.db import Database
from app.store.secretbox import SecretBox, SecretBoxError
from app.telegram import sessions
from app.telegram.account import TelegramAccount
from app.telegram.sim import SimClient, SimNetwork

PHONE = "+15551230001"


@pytest.fixture
def net(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimNetwork]:
    monkeypatch.setenv("TGTRUNK_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TGTRUNK_DATABASE_URL", raising=False)
    monkeypatch.delenv("TGTRUNK_SECRET_KEY", raising=False)
    monkeypatch.setenv("TGTRUNK_API_ID", "12345")
    monkeypatch.setenv("TGTRUNK_API_HASH", "0123456789abcdef0123456789abcdef")
    network = SimNetwork()
    network.add_user(PHONE, "Sales", username="acme_sales")
    sessions.use_client_factory(lambda name, **kw: SimClient(name, network, **kw))
    yield network
    sessions.use_client_factory(None)


class Keyboard:
    """Answers prompts in order; records them so tests can check what was asked."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *answers: str, passwords: tuple[str, ...] = ()) -> None:
        self.answers, self.passwords, self.prompts = list(answers), list(passwords), []
        monkeypatch.setattr("builtins.input", self._input)
        monkeypatch.setattr("getpass.getpass", self._getpass)

    def _input(self, prompt: str = "") -> str:
        self.prompts.append(prompt)
        return self.answers.pop(0)

    def _getpass(self, prompt: str = "") -> str:
        self.prompts.append(prompt)
        return self.passwords.pop(0)


def login(*extra: str) -> int:
    return main(["account", "login", "sales", "--phone", PHONE, *extra])


def test_login_stores_an_encrypted_session_and_applies_privacy(net: SimNetwork, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    keys = Keyboard(monkeypatch, "12345", "y")
    assert login() == 0
    out = capsys.readouterr().out
    assert "Logged in sales: @acme_sales" in out
    assert "ok: Allow calls from all users" in out
    assert "ok: Allow P2P calls from everybody" in out
    assert "ok: Disallow adding to groups" in out
    assert "FAILED: Disable calls on other devices (can only be changed 24 h after login" in out
    assert not any("password" in p.lower() for p in keys.prompts)
    user = net.user("acme_sales")
    assert (user.privacy.calls, user.privacy.p2p, user.privacy.groups) == ("everybody", "everybody", "nobody")
    settings = load_settings()
    key_file = settings.secret_key_path
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    row = sessions.get_row(Database(settings.database_url), "sales")
    assert row is not None and row.user_id == user.id and row.privacy_applied_at is None
    session_string = SecretBox.from_env_or_file(key_file).decrypt(row.session_encrypted, "sales").decode()
    assert session_string not in Path(settings.database_url.removeprefix("sqlite:///")).read_bytes().decode(
        "latin-1")
    assert net.authorizations(user.id) == 1


def test_two_step_password_wrong_then_right(net: SimNetwork, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    net.user("acme_sales").password = "correct horse"
    keys = Keyboard(monkeypatch, "12345", passwords=("wrong", "correct horse"))
    assert login("--no-privacy") == 0
    out = capsys.readouterr().out
    assert "the two-step verification password is wrong; try again." in out
    assert "Logged in sales" in out
    assert keys.prompts.count("Two-step verification password: ") == 2


@pytest.mark.parametrize(
    ("setup", "answers", "passwords", "message"),
    [
        ("bad_phone", (), (), "the phone number is not valid"),
        ("none", ("11111", "22222", "33333"), (), "login failed: the code is wrong"),
        ("expired", ("12345",), (), "the code has expired; run the login again"),
        ("password", ("12345",), ("a", "b", "c"), "the two-step verification password is wrong"),
        ("flood", (), (), "Telegram asks to wait 5 minutes"),
    ],
)
def test_login_errors_print_a_clear_message(net: SimNetwork, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str], setup: str,
                                            answers: tuple[str, ...], passwords: tuple[str, ...],
                                            message: str) -> None:
    phone = PHONE
    if setup == "bad_phone":
        phone = "+12"
    elif setup == "password":
        net.user("acme_sales").password = "secret"
    elif setup == "flood":
        net.inject("auth.SendCode", "FLOOD_WAIT_300")
    elif setup == "expired":
        original = net._auth_SendCode

        def send_and_expire(conn, q):  # type: ignore[no-untyped-def]
            result = original(conn, q)
            net.expire_code(q.phone_number)
            return result

        monkeypatch.setattr(net, "_auth_SendCode", send_and_expire)
    Keyboard(monkeypatch, *answers, passwords=passwords)
    assert main(["account", "login", "sales", "--phone", phone, "--no-privacy"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tgtrunk: error: login failed:") and message in err
    assert sessions.get_row(Database(load_settings().database_url), "sales") is None


async def test_stored_session_starts_the_account(net: SimNetwork, monkeypatch: pytest.MonkeyPatch) -> None:
    Keyboard(monkeypatch, "12345")
    # The CLI runs its own event loop; run it in a thread so this test's loop stays free.
    import asyncio
    assert await asyncio.to_thread(login, "--no-privacy") == 0
    settings = load_settings()
    row = sessions.get_row(Database(settings.database_url), "sales")
    account = await sessions.open_account(row, SecretBox.from_env_or_file(settings.secret_key_path))
    try:
        assert isinstance(account, TelegramAccount) and account.me.username == "acme_sales"
    finally:
        await account.stop()


def test_session_unreadable_without_the_key(tmp_path: Path) -> None:
    box = SecretBox.from_env_or_file(tmp_path / "secret.key")
    token = box.encrypt(b"session-string", context="sales")
    assert b"session-string" not in token.encode()
    assert box.decrypt(token, context="sales") == b"session-string"
    with pytest.raises(SecretBoxError):
        SecretBox.from_env_or_file(tmp_path / "other.key").decrypt(token, context="sales")
    with pytest.raises(SecretBoxError):
        box.decrypt(token, context="support")  # bound to the account name
    env_box = SecretBox.from_env_or_file(tmp_path / "unused.key", env={"TGTRUNK_SECRET_KEY": "s3cret"})
    assert not (tmp_path / "unused.key").exists()
    again = SecretBox.from_env_or_file(tmp_path / "unused.key", env={"TGTRUNK_SECRET_KEY": "s3cret"})
    assert again.decrypt(env_box.encrypt(b"x")) == b"x"


def test_settings_list_show_and_logout(net: SimNetwork, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    Keyboard(monkeypatch, "12345")
    assert login("--no-privacy") == 0
    assert main(["account", "settings", "sales", "--no-dtmf-in", "--messages", "--autoreply", "Calls only"]) == 0
    row = sessions.get_row(Database(load_settings().database_url), "sales")
    assert (row.dtmf_in, row.messages, row.autoreply, row.dtmf_out) == (False, True, "Calls only", True)
    capsys.readouterr()
    assert main(["account", "list"]) == 0
    assert "@acme_sales" in capsys.readouterr().out
    assert main(["account", "show", "nope"]) == 2
    assert "no Telegram account named 'nope'" in capsys.readouterr().err
    user_id = net.user("acme_sales").id
    assert net.authorizations(user_id) == 1
    assert main(["account", "logout", "sales"]) == 0
    assert net.authorizations(user_id) == 0
    assert sessions.get_row(Database(load_settings().database_url), "sales") is None


def test_privacy_can_be_applied_after_24_hours(net: SimNetwork, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    Keyboard(monkeypatch, "12345")
    assert login("--no-privacy") == 0
    net.fresh_session_days = 0  # a day has passed
    assert main(["account", "privacy", "sales"]) == 0
    assert "ok: Disable calls on other devices (1 device(s) changed)" in capsys.readouterr().out
    assert all(d.call_requests_disabled for d in net.user("acme_sales").devices)
