"""The command line: one clear line and exit code 2 for bad input, nothing half-written."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TGTRUNK_")}
    return {**clean, "TGTRUNK_DATA_DIR": str(tmp_path)}


def tgtrunk(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app", *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "message"), [
    (["--mode", "register", "--trusted-ip", "300.1.1.1"], "trusted IP '300.1.1.1' is not an address"),
    (["--mode", "sideways"], "unknown mode 'sideways'"),
    (["--mode", "outbound", "--server", "pbx"], "needs --username and --password"),
])
def test_bad_line_is_refused_in_one_line_and_nothing_is_written(env, args, message):
    result = tgtrunk(env, "line", "add", "office", *args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"tgtrunk: error: {result.stderr.split('error: ', 1)[1].strip()}"]
    assert message in result.stderr
    assert "no lines" in tgtrunk(env, "line", "list").stdout


def test_duplicate_name_and_duplicate_username_are_refused(env):
    assert tgtrunk(env, "line", "add", "office", "--mode", "register", "--username", "pbx1").returncode == 0
    again = tgtrunk(env, "line", "add", "office", "--mode", "ip", "--host", "192.0.2.1")
    assert again.returncode == 2 and "a line named 'office' already exists" in again.stderr
    same_user = tgtrunk(env, "line", "add", "branch", "--mode", "register", "--username", "pbx1")
    assert same_user.returncode == 2 and "SIP username 'pbx1' is already used by line 'office'" in same_user.stderr
    listed = tgtrunk(env, "line", "list").stdout
    assert "office" in listed and "branch" not in listed


def test_unknown_line_is_named(env):
    result = tgtrunk(env, "line", "show", "nope")
    assert result.returncode == 2 and "no line named 'nope'" in result.stderr


def test_serve_refuses_a_port_in_use(env):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        result = tgtrunk({**env, "TGTRUNK_SIP_BIND": f"127.0.0.1:{port}"}, "serve")
    assert result.returncode == 2
    assert f"port 127.0.0.1:{port} is in use by another program" in result.stderr


def test_every_command_has_help(env):
    for args in (["--help"], ["serve", "--help"], ["line", "add", "--help"], ["line", "set", "--help"],
                 ["asterisk", "install", "--help"], ["status", "--help"], ["line", "reset-password", "--help"]):
        result = tgtrunk(env, *args)
        assert result.returncode == 0 and "usage: tgtrunk" in result.stdout, args


def test_account_max_calls_is_set_shown_and_picked_up_by_a_running_gateway(env, tmp_path):
    from app.calls.accounts import Accounts
    from app.calls.accounts import AccountHandle
    from app.store.account import TelegramAccountRow
    from app.store.db import Database

    db = Database(f"sqlite:///{tmp_path / 'tgtrunk.db'}")
    with db.session() as session:
        session.add(TelegramAccountRow(name="sales", phone="+15550001", api_id=1, session_encrypted="x"))
    running = Accounts()
    running.handles["sales"] = AccountHandle("sales", account=None)  # type: ignore[arg-type]

    result = tgtrunk(env, "account", "settings", "sales", "--max-calls", "3")
    assert result.returncode == 0, result.stderr
    assert "max-calls:   3" in result.stdout
    running.refresh_settings(db)
    assert running.handles["sales"].max_calls == 3

    assert tgtrunk(env, "account", "settings", "sales", "--max-calls", "0").returncode == 0
    running.refresh_settings(db)
    assert running.handles["sales"].max_calls is None
    bad = tgtrunk(env, "account", "settings", "sales", "--max-calls", "-1")
    assert bad.returncode == 2 and "--max-calls must be 0 (no limit) or more" in bad.stderr
    db.close()


def test_realm_change_without_password_is_refused_and_the_line_kept(env):
    added = tgtrunk(env, "line", "add", "pbx", "--mode", "outbound", "--server", "192.0.2.1",
                    "--username", "7001", "--password", "pw")
    assert added.returncode == 0, added.stderr
    refused = tgtrunk(env, "line", "set", "pbx", "--realm", "pbx.example")
    assert refused.returncode == 2
    assert "realm of an outbound line needs --password" in refused.stderr
    assert "updated" not in refused.stdout
    assert "realm                asterisk" in tgtrunk(env, "line", "show", "pbx").stdout

    changed = tgtrunk(env, "line", "set", "pbx", "--realm", "pbx.example", "--password", "pw")
    assert changed.returncode == 0, changed.stderr
    assert "realm                pbx.example" in tgtrunk(env, "line", "show", "pbx").stdout


def test_register_line_realm_is_always_the_gateways(env):
    refused = tgtrunk(env, "line", "add", "office", "--mode", "register", "--realm", "other")
    assert refused.returncode == 2 and "a register line's realm is always 'tgtrunk'" in refused.stderr


def test_status_says_which_ports_it_uses(env):
    env = {**env, "TGTRUNK_SIP_BIND": "0.0.0.0:5070", "TGTRUNK_ARI_PORT": "8098", "TGTRUNK_RTP_PORTS": "20001-30000",
           "TGTRUNK_EXTERNAL_ADDRESS": "203.0.113.7", "TGTRUNK_LOCAL_NETS": "192.168.1.0/24"}
    out = tgtrunk(env, "status").stdout
    assert ("ports:    SIP 0.0.0.0:5070 (UDP and TCP), RTP 20001-30000 (UDP), ARI 127.0.0.1:8098, "
            "admin API 127.0.0.1:8080") in out
    assert "public address 203.0.113.7:5070 in SDP and Contact; local networks: 192.168.1.0/24" in out


def test_bad_local_network_is_refused_in_one_line(env):
    result = tgtrunk({**env, "TGTRUNK_LOCAL_NETS": "192.168.1.0/33"}, "status")
    assert result.returncode == 2 and "TGTRUNK_LOCAL_NETS: '192.168.1.0/33' is not a network" in result.stderr


def test_stasis_route_is_added_and_changed_keeping_its_template(env):
    added = tgtrunk(env, "line", "add", "telegram", "--mode", "stasis", "--originate", "PJSIP/{number}",
                    "--pbx-number", "201")
    assert added.returncode == 0, added.stderr
    assert "Stasis(tgtrunk,telegram,${EXTEN})" in added.stdout
    changed = tgtrunk(env, "line", "set", "telegram", "--priority", "5")  # a setting that is not the template
    assert changed.returncode == 0, changed.stderr
    local = tgtrunk(env, "line", "set", "telegram", "--originate", "Local/{number}@from-internal")
    assert local.returncode == 0, local.stderr
    shown = tgtrunk(env, "line", "show", "telegram").stdout
    assert "Local/{number}@from-internal" in shown and "priority             5" in shown
