"""The gateway's real engine against a simulator running in another process (`python -m app.telegram.sim`)."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.telegram.account import TelegramAccount
from app.telegram.privatecall import CallState, DiscardReason
from app.telegram.sim import RemoteSimClient, SimControl

from tests.telegram.conftest import IncomingCalls
from tests.telegram.test_calls import ONE_SECOND, Recorder, assert_tone

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
READY_TIMEOUT_S = 30.0
EXIT_TIMEOUT_S = 10.0


@dataclass
class Simulator:
    pid: int
    port: int
    gateway_user_id: int
    log: Path

    @property
    def control(self) -> SimControl:
        return SimControl(HOST, self.port)


async def port_closed(port: int) -> bool:
    try:
        _reader, writer = await asyncio.open_connection(HOST, port)
    except ConnectionRefusedError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


async def stop_process(proc: asyncio.subprocess.Process) -> int:
    """SIGTERM by PID, wait for a clean exit; SIGKILL if it does not come."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(proc.wait(), EXIT_TIMEOUT_S)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise


@pytest.fixture
async def simulator(tmp_path: Path) -> AsyncIterator[Simulator]:
    log = tmp_path / "sim.log"
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app.telegram.sim", "--host", HOST, "--port", "0", "--users", "2",
            "--behaviour", "tone", "--log-level", "INFO", cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=stderr)
    port = 0
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), READY_TIMEOUT_S)).decode()
        assert line.startswith("SIM READY "), f"simulator said {line!r}; log: {log.read_text()[-2000:]}"
        _sim, _ready, port_text, gateway_text = line.split()
        port = int(port_text)
        yield Simulator(proc.pid, port, int(gateway_text), log)
    finally:
        code = await stop_process(proc)
        assert code == 0, f"simulator exited with {code}; log: {log.read_text()[-2000:]}"
        if port:
            assert await port_closed(port)


@pytest.fixture
async def gateway(simulator: Simulator) -> AsyncIterator[TelegramAccount]:
    client = RemoteSimClient("gateway", HOST, simulator.port, user_id=simulator.gateway_user_id)
    account = TelegramAccount(client, ring_timeout=5.0, rpc_timeout=5.0, rpc_retries=1)
    await account.start()
    yield account
    await account.stop()


async def test_call_to_a_person_in_another_process_carries_tone(simulator: Simulator,
                                                                 gateway: TelegramAccount) -> None:
    assert gateway.me is not None and gateway.me.id == simulator.gateway_user_id
    call = await gateway.call("+15550200001")
    assert call.peer.username == "bench0001"
    heard = Recorder(call, 1000, -18)
    await call.wait_ringing(5)
    await call.wait_accepted(5)
    await call.wait_connected(10)
    await heard.wait(2 * ONE_SECOND)
    assert_tone(heard.pcm, 1000, -12)  # bench0001 plays 1 kHz at -12 dBFS
    await call.hangup()
    end = await asyncio.wait_for(call.ended, 5)
    assert (end.reason, end.by_peer, end.answered) == (DiscardReason.HANGUP, False, True)

    stats = {row.username: row for row in await simulator.control.stats()}
    print(f"sim stats: {stats['bench0001']}")
    assert (stats["bench0001"].calls, stats["bench0001"].answered) == (1, 1)
    assert stats["bench0001"].seconds_heard > 0.5 and stats["bench0001"].frames_heard > 50
    assert (stats["bench0002"].calls, stats["bench0002"].answered, stats["bench0002"].frames_heard) == (0, 0, 0)


async def test_person_in_another_process_calls_the_gateway(simulator: Simulator,
                                                           incoming: IncomingCalls) -> None:
    await simulator.control.call_gateway("@bench0002")
    call = await asyncio.wait_for(incoming.get(), 5)
    assert call.state is CallState.RINGING and call.peer.username == "bench0002"
    heard = Recorder(call)
    await call.accept()
    await call.wait_connected(10)
    await heard.wait(ONE_SECOND)
    assert_tone(heard.pcm, 1000, -12)
    await call.hangup()
    end = await asyncio.wait_for(call.ended, 5)
    assert (end.reason, end.by_peer, end.answered) == (DiscardReason.HANGUP, False, True)
