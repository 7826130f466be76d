"""The data directory is 0700 and the database (with its -wal/-shm) and every secret 0600: after a gateway start,
after CLI writes, and for a data directory an older tgtrunk left open to others (tightened, with a log line)."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

from tests.conftest import GatewayProcess

PRIVATE_FILES = ("tgtrunk.db", "tgtrunk.db-wal", "tgtrunk.db-shm", "admin-token", "ari-password", "secret.key")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def private_modes(data_dir: Path) -> dict[str, str]:
    modes = {"<dir>": f"{mode(data_dir):04o}"}
    modes.update({name: f"{mode(data_dir / name):04o}" for name in PRIVATE_FILES if (data_dir / name).exists()})
    return modes


async def test_a_loose_data_directory_is_tightened_at_start(make_gateway) -> None:
    gateway: GatewayProcess = await make_gateway(start=False)
    database = gateway.data_dir / "tgtrunk.db"
    with sqlite3.connect(database) as db:  # as an older tgtrunk left it: 0644 in a 0755 directory
        db.execute("CREATE TABLE older (x)")
    os.chmod(database, 0o644)
    os.chmod(gateway.data_dir, 0o755)

    await gateway.start()
    await gateway.wait_log(rf"{gateway.data_dir} was 0755 \(readable by others\): tightened to 0700", timeout=1)
    await gateway.wait_log(r"tgtrunk.db was 0644 \(readable by others\): tightened to 0600", timeout=1)
    result = await gateway.cli("line", "add", "office", "--mode", "register", "--username", "pbx1")
    assert result.code == 0, result.err
    await gateway.wait_log(r"lines in sync: 1 line", timeout=10)  # the running gateway read the new row

    modes = private_modes(gateway.data_dir)
    assert {"tgtrunk.db-wal", "tgtrunk.db-shm", "admin-token", "ari-password"} <= set(modes), modes
    assert modes == {"<dir>": "0700", **{name: "0600" for name in modes if name != "<dir>"}}


def test_the_cli_creates_a_private_data_directory(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TGTRUNK_")}
    env["TGTRUNK_DATA_DIR"] = str(data_dir)
    for command in (["line", "add", "office", "--mode", "register"], ["account", "list"]):
        result = subprocess.run([sys.executable, "-m", "app", *command], env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
    modes = private_modes(data_dir)
    assert {"tgtrunk.db", "secret.key"} <= set(modes), modes
    assert modes == {"<dir>": "0700", **{name: "0600" for name in modes if name != "<dir>"}}
