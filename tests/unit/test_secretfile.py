"""Secret files: never an empty or short secret, atomic writes, 0600 in a 0700 directory.

A full disk is made real with RLIMIT_FSIZE = 0 in a child process: every write of a byte fails with EFBIG,
as on a full or read-only disk."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from app.settings import load_settings
from app.store.secretbox import load_or_create_key
from app.store.secretfile import SecretFileError, secret_token, write_secret


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def run_on_full_disk(code: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    prelude = """
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TGTRUNK_")}
    env["TGTRUNK_DATA_DIR"] = str(data_dir)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(prelude) + textwrap.dedent(code)],
                          env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("content", [b"", b"\n", b"short", "é".encode() * 20])
def test_an_empty_or_short_token_file_is_regenerated(tmp_path: Path, content: bytes, caplog) -> None:
    path = tmp_path / "admin-token"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING):
        token = secret_token(path, "the admin token")
    assert len(token) == 32 and path.read_text() == token
    assert mode(path) == 0o600
    assert "the admin token" in caplog.text and "a new one was generated" in caplog.text
    assert secret_token(path, "the admin token") == token  # kept from then on


def test_a_new_token_is_0600_in_a_0700_directory(tmp_path: Path) -> None:
    path = tmp_path / "data" / "admin-token"
    token = secret_token(path, "the admin token")
    assert len(token) == 32
    assert mode(path) == 0o600 and mode(path.parent) == 0o700


def test_a_token_file_open_to_others_is_tightened(tmp_path: Path, caplog) -> None:
    path = tmp_path / "ari-password"
    path.write_text("A" * 32)
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        assert secret_token(path, "the ARI password") == "A" * 32
    assert mode(path) == 0o600
    assert "tightened to 0600" in caplog.text


def test_an_empty_secret_key_is_refused_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    path.write_bytes(b"")
    with pytest.raises(SecretFileError, match=r"secret.key is empty; restore it"):
        load_or_create_key(path)
    assert path.read_bytes() == b""  # the sessions encrypted with the lost key are not silently orphaned


def test_the_cli_refuses_an_empty_secret_key_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "secret.key").write_bytes(b"")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TGTRUNK_")}
    env["TGTRUNK_DATA_DIR"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-m", "app", "account", "list"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("tgtrunk: error: the session key")
    assert "is empty" in result.stderr


def test_a_full_disk_leaves_no_empty_secret_behind(tmp_path: Path) -> None:
    """The gateway's ARI password and the session key on a full disk: the write fails, no 0-byte file is left
    to be read as the secret at the next start."""
    result = run_on_full_disk("""
        from app.settings import load_settings
        from app.gateway import ari_password
        from app.store.secretbox import load_or_create_key
        settings = load_settings()
        for load in (lambda: ari_password(settings), lambda: load_or_create_key(settings.secret_key_path)):
            try:
                load()
            except Exception as exc:
                print(type(exc).__name__, exc)
            else:
                print("no error")
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no error" not in result.stdout
    settings = load_settings({"TGTRUNK_DATA_DIR": str(tmp_path)})
    for path in (settings.ari_password_path, settings.secret_key_path):
        assert not path.exists() or path.stat().st_size > 0, f"{path.name} left empty"
    assert [p.name for p in tmp_path.iterdir()] == []  # no temp files either
    assert len(secret_token(settings.ari_password_path, "the ARI password")) == 32  # a later start works


def test_a_failed_rewrite_keeps_the_old_secret(tmp_path: Path) -> None:
    path = tmp_path / "admin-token"
    path.write_text("")  # to be regenerated, on a disk that is full
    result = run_on_full_disk(f"""
        from pathlib import Path
        from app.store.secretfile import SecretFileError, secret_token
        try:
            secret_token(Path({str(path)!r}), "the admin token")
        except SecretFileError as exc:
            print(exc)
    """, tmp_path)
    assert "cannot be written (File too large)" in result.stdout, result.stdout + result.stderr
    assert path.read_text() == ""  # untouched: still refused (regenerated) at the next start, never half-written

    write_secret(path, b"B" * 32)
    result = run_on_full_disk(f"""
        from pathlib import Path
        from app.store.secretfile import write_secret
        try:
            write_secret(Path({str(path)!r}), b"C" * 32)
        except OSError as exc:
            print("refused:", exc.strerror)
    """, tmp_path)
    assert "refused: File too large" in result.stdout, result.stdout + result.stderr
    assert path.read_bytes() == b"B" * 32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["admin-token"]
