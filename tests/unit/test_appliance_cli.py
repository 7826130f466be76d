"""The command line as an appliance's operator meets it: --version, exit codes, log settings, non-root runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import ASTERISK_ROOT


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TGTRUNK_", "JOURNAL_"))}
    return {**clean, "TGTRUNK_DATA_DIR": str(tmp_path / "data")}


def tgtrunk(env: dict[str, str], *args: str, as_user: bool = False) -> subprocess.CompletedProcess[str]:
    # `unshare --user`: a process without root's powers (uid nobody, no capabilities on the machine's files).
    prefix = ["unshare", "--user"] if as_user else []
    return subprocess.run([*prefix, sys.executable, "-m", "app", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_version(env):
    result = tgtrunk(env, "--version")
    assert result.returncode == 0 and result.stdout.strip() == "tgtrunk 0.1.0", result


def test_an_account_command_prints_only_its_answer(env):
    result = tgtrunk(env, "account", "admin", "list")
    assert result.returncode == 0, result
    assert result.stderr == "", result.stderr  # pyrogram's "Using TgCrypto" at INFO came on every account command
    assert result.stdout.startswith("no administrator")


def test_status_exits_3_when_the_gateway_is_not_running(env):
    result = tgtrunk(env, "status")
    assert result.returncode == 3, result
    assert "gateway:  not running" in result.stdout
    health = tgtrunk(env, "status", "--health")
    assert health.returncode == 3 and health.stdout.strip() == "gateway: not running", health


def test_another_users_private_data_directory_is_one_line_not_a_traceback(env):
    data_dir = Path(tempfile.mkdtemp(prefix="tgtrunk-other-"))
    try:
        os.chown(data_dir, 12345, 12345)
        os.chmod(data_dir, 0o700)
        result = tgtrunk({**env, "TGTRUNK_DATA_DIR": str(data_dir)}, "status", as_user=True)
    finally:
        os.rmdir(data_dir)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"tgtrunk: error: the data directory {data_dir} belongs to ") and \
        "is private" in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr


def test_serve_without_root_says_that_the_bundled_asterisk_needs_root(env, tmp_path):
    assert (ASTERISK_ROOT / "usr/sbin/asterisk").exists()
    data_dir = tmp_path / "mine"
    data_dir.mkdir(mode=0o700)
    result = tgtrunk({**env, "TGTRUNK_DATA_DIR": str(data_dir), "TGTRUNK_ASTERISK_ROOT": str(ASTERISK_ROOT)},
                     "serve", as_user=True)
    assert result.returncode == 2, result
    assert "tgtrunk: error: Asterisk is installed in " in result.stderr
    assert "runs there through chroot, which needs root" in result.stderr
    assert "not installed" not in result.stderr


def test_log_level_and_a_bad_log_setting(env):
    with socket.socket() as busy:  # serve stops at the port check, after its first log lines
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port_env = {**env, "TGTRUNK_HTTP_BIND": f"127.0.0.1:{busy.getsockname()[1]}"}
        chatty = tgtrunk({**port_env, "TGTRUNK_LOG_LEVEL": "debug"}, "serve")
        quiet = tgtrunk({**port_env, "TGTRUNK_LOG_LEVEL": "warning"}, "serve")
    assert chatty.returncode == quiet.returncode == 2
    assert "INFO pyrogram" in chatty.stderr, chatty.stderr  # libraries' start-up lines: at debug only
    assert "INFO" not in quiet.stderr and "admin API (TGTRUNK_HTTP_BIND) port" in quiet.stderr, quiet.stderr

    bad = tgtrunk({**env, "TGTRUNK_LOG_LEVEL": "loud"}, "status")
    assert bad.returncode == 2 and bad.stderr.strip() == \
        "tgtrunk: error: TGTRUNK_LOG_LEVEL='loud': use one of debug, info, warning, error", bad
