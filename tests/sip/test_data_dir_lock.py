"""One `tgtrunk serve` per data directory: a second one is refused at once and changes nothing."""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time

from app.pbx.install import AsteriskInstall
from app.pbx.instance import runtime_dir_for
from tests.conftest import ASTERISK_ROOT
from tests.peers import free_port


def snapshot(paths) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


async def test_second_serve_on_the_same_data_directory_is_refused(gateway):
    install = AsteriskInstall(ASTERISK_ROOT, "")
    asterisk_etc = install.host_path(runtime_dir_for(install, gateway.data_dir)) / "etc"
    first_pid = gateway.process.pid
    assert (gateway.data_dir / "serve.pid").read_text() == str(first_pid)
    before = snapshot(sorted(asterisk_etc.iterdir()))
    assert before  # the first gateway wrote its Asterisk configuration

    env = {**gateway.env, "TGTRUNK_SIP_BIND": f"127.0.0.1:{free_port()}", "TGTRUNK_ARI_PORT": str(free_port()),
           "TGTRUNK_HTTP_BIND": f"127.0.0.1:{free_port()}"}
    started = time.monotonic()
    second = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "serve", "--simulate-telegram", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(second.communicate(), 10)
    finally:
        if second.returncode is None:
            second.kill()
            await second.wait()
    elapsed = time.monotonic() - started

    assert second.returncode != 0
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and f"in use by another `tgtrunk serve` (pid {first_pid})" in lines[0], lines
    assert elapsed < 5, elapsed
    assert (gateway.data_dir / "serve.pid").read_text() == str(first_pid)
    assert snapshot(sorted(asterisk_etc.iterdir())) == before
    assert gateway.process.returncode is None
    status = await gateway.cli("status")
    assert f"running (pid {first_pid})" in status.out
