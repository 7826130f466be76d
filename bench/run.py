"""N concurrent SIP -> Telegram calls through the bundled Asterisk and tgtrunk, with real RTP and real NTgCalls.

    .venv/bin/python bench/run.py [--calls 1,10,30,60] [--seconds 15]

Three processes, measured apart: `tgtrunk serve` (with its Asterisk child), the simulated Telegram network
(`python -m app.telegram.sim`, its people answer and echo), and a second Asterisk acting as the PBX, registered to
the gateway, which originates the calls and plays a 1004 Hz tone (Milliwatt) into each; with `--audio speech` a
recorded voice prompt in a loop, with `--audio silence` nothing (NTgCalls' Opus encoder costs more for speech and for
silence than for a clean tone: bench/README.md, "What a call carries changes its cost"). Writes the results table to
stdout and into bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.ari.client import AriClient, AriError, AriEvent  # noqa: E402
from app.pbx.install import AsteriskInstall, find_install  # noqa: E402
from app.pbx.instance import AsteriskInstance, InstanceConfig, runtime_dir_for  # noqa: E402
from app.telegram.sim import SimControl  # noqa: E402
from app.web.admin import MAX_LAST  # noqa: E402
from tests.pbx import freepbx_global, freepbx_transport, freepbx_trunk  # noqa: E402
from tests.peers import free_port  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
# How the PBX knows its peers, and what else it has: bench/soak.py also takes the gateway's calls on it.
PBX_IDENTIFY_BY = "username,ip"
PBX_EXTRA = ""


def pbx_pjsip(port: int, gateway: str) -> str:
    """The PBX's trunk to the gateway, as FreePBX writes it (tests/pbx.py)."""
    return (freepbx_global(PBX_IDENTIFY_BY) + "[system]\ntype = system\n"
            + freepbx_transport("to-gateway", "127.0.0.7", port)
            + freepbx_trunk(gateway, "to-gateway", "bench", password="bench-secret", allow="alaw", expiration=300,
                            endpoint_options=("rtp_symmetric = yes",))
            + PBX_EXTRA)


PBX_EXTENSIONS = """
[general]
static = yes
[bench]
exten => tone,1,Milliwatt()
exten => speech,1,Playback(/usr/share/asterisk/sounds/en_US_f_Allison/demo-congrats)
 same => n,Goto(1)
exten => silence,1,Wait(86400)
"""
AUDIO = ("tone", "speech", "silence")  # what the PBX plays into each call: an extension of PBX_EXTENSIONS
# The gateway's own modules, and what playing the GSM prompt needs.
PBX_MODULES = (ROOT / "asterisk" / "modules.conf").read_text() + "".join(
    f"load => {module}.so\n" for module in ("app_playback", "format_gsm", "codec_gsm"))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def vm_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def child_pids(pid: int, name: str) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            if name in Path(f"/proc/{child}/cmdline").read_text()]


def child_pid(pid: int, name: str) -> int:
    for child in child_pids(pid, name):
        return child
    raise RuntimeError(f"no {name} child of {pid}")


@dataclass
class Row:
    workers: int
    calls: int
    connected: int
    gw_cpu_per_call: float
    ast_cpu_per_call: float
    sim_cpu_per_call: float
    gw_rss_per_call_mb: float
    lost: int
    late: int
    setup_request_ms: float
    setup_200_ms: float
    to_tg_p50_us: float
    to_tg_p99_us: float
    to_sip_p50_us: float
    to_sip_p99_us: float
    frames_per_s: float


class Bench:
    def __init__(self, seconds: float, workers: int, audio: str = "tone") -> None:
        self.seconds = seconds
        self.audio = audio  # one of AUDIO
        self.workers = workers  # TGTRUNK_WORKERS: 0 is the one-process path
        self.work = Path(tempfile.mkdtemp(prefix="tgtrunk-bench-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.pbx: AsteriskInstance | None = None
        self.install: AsteriskInstall | None = None

    async def start(self, max_calls: int) -> None:
        install = find_install(Path(os.environ.get("TGTRUNK_ASTERISK_ROOT", "/var/lib/tgtrunk/asterisk-root")))
        self.install = install
        if install is None:
            raise SystemExit("Asterisk is not installed: run `make install` (tgtrunk asterisk install) first")
        sim = self._spawn([sys.executable, "-m", "app.telegram.sim", "--port", "0", "--users", str(max_calls),
                           "--behaviour", "echo", "--log-level", "WARNING"], stdout=subprocess.PIPE)
        assert sim.stdout
        ready = sim.stdout.readline().decode().split()
        if ready[:2] != ["SIM", "READY"]:
            raise SystemExit(f"the simulator did not start: {ready}")
        self.sim_pid, self.sim_port = sim.pid, int(ready[2])
        self.sip_port, self.http_port = free_port(), free_port()
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("TGTRUNK_")},
                    "TGTRUNK_DATA_DIR": str(self.work / "gw"), "TGTRUNK_SIP_BIND": f"127.0.0.1:{self.sip_port}",
                    "TGTRUNK_ARI_PORT": str(free_port()), "TGTRUNK_HTTP_BIND": f"127.0.0.1:{self.http_port}",
                    "TGTRUNK_RTP_PORTS": "32000-33998", "TGTRUNK_TELEGRAM_SIM": f"127.0.0.1:{self.sim_port}",
                    "TGTRUNK_ASTERISK_ROOT": str(install.root) if install.root else "",
                    "TGTRUNK_WORKERS": str(self.workers)}
        subprocess.run([sys.executable, "-m", "app", "line", "add", "bench", "--mode", "register",
                        "--username", "pbx1", "--password", "bench-secret"], env=self.env, check=True,
                       capture_output=True)
        log = open(self.work / "gateway.log", "wb")
        gateway = self._spawn([sys.executable, "-m", "app", "serve"], env=self.env, stderr=log)
        self.gw_pid = gateway.pid
        await self._wait_log("tgtrunk is running", 60)
        self.ast_pid = child_pid(self.gw_pid, "asterisk")
        self.worker_pids = child_pids(self.gw_pid, "app.workers.worker")
        if len(self.worker_pids) != self.workers:
            raise SystemExit(f"the gateway runs {len(self.worker_pids)} media workers, not {self.workers}")
        password = secrets.token_urlsafe(12)
        ari_port = free_port()
        self.pbx = AsteriskInstance(install, f"/srv/tgtrunk/bench-pbx-{secrets.token_hex(3)}", InstanceConfig(
            sip_bind="127.0.0.7:0", ari_port=ari_port, ari_password=password, rtp_start=34000, rtp_end=35998,
            overrides={"sorcery.conf": "", "extensions.conf": PBX_EXTENSIONS, "modules.conf": PBX_MODULES,
                       "pjsip.conf": pbx_pjsip(free_port("127.0.0.7"), f"127.0.0.1:{self.sip_port}")}))
        await self.pbx.start()
        self.ari = AriClient("127.0.0.1", ari_port, "tgtrunk", password, "bench")
        while not await self.ari.ping():
            await asyncio.sleep(0.05)
        self.answered: dict[str, float] = {}
        self.ari.on("StasisStart", self._on_answer)
        self.events = asyncio.create_task(self.ari.run_events())
        await asyncio.wait_for(self.ari.connected.wait(), 10)
        while "Registered" not in await self.pbx.rx("pjsip show registrations"):
            await asyncio.sleep(0.2)

    def _spawn(self, cmd: list[str], **kw) -> subprocess.Popen[bytes]:  # type: ignore[no-untyped-def]
        proc = subprocess.Popen(cmd, cwd=ROOT, **kw)
        self.procs.append(proc)
        return proc

    async def _wait_log(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in (self.work / "gateway.log").read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise SystemExit(f"gateway did not log {text!r}; see {self.work / 'gateway.log'}")
            await asyncio.sleep(0.1)

    async def _on_answer(self, event: AriEvent) -> None:
        channel = event["channel"]["id"]
        self.answered[channel] = time.perf_counter()
        try:
            await self.ari.request("POST", f"/channels/{channel}/continue",
                                   params={"context": "bench", "extension": self.audio, "priority": 1})
        except AriError as exc:  # the call ended meanwhile (overload): it simply plays nothing
            print(f"bench: channel {channel} gone before its {self.audio} started ({exc})", file=sys.stderr)

    async def _admin(self, path: str) -> object:
        import urllib.request
        token = (self.work / "gw" / "admin-token").read_text().strip()
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}",
                                         headers={"Authorization": f"Bearer {token}"})
        return await asyncio.to_thread(lambda: json.load(urllib.request.urlopen(request, timeout=10)))

    async def run(self, n: int) -> Row:
        self.answered.clear()
        rss_before = self._tgtrunk_rss_mb()
        calls_before = len(await self._admin(f"/api/calls?last={MAX_LAST}"))  # records of earlier rounds
        started: dict[str, float] = {}
        for i in range(1, n + 1):
            t0 = time.perf_counter()
            channel = await self.ari.request("POST", "/channels", params={
                "endpoint": f"PJSIP/+1555020{i:04d}@tgtrunk", "app": "bench", "timeout": 60})
            started[channel["id"]] = t0
        deadline = time.monotonic() + 60
        while len(self.answered) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        connected = len(self.answered)
        await asyncio.sleep(3)  # let every call settle into steady media before measuring
        measured = (self.gw_pid, self.ast_pid, self.sim_pid, *self.worker_pids)
        before = {pid: cpu_seconds(pid) for pid in measured}
        sim_before = {s.username: s.frames_heard for s in await SimControl("127.0.0.1", self.sim_port).stats()}
        t0 = time.monotonic()
        await asyncio.sleep(self.seconds)
        elapsed = time.monotonic() - t0
        after = {pid: cpu_seconds(pid) for pid in measured}
        sim_after = {s.username: s.frames_heard for s in await SimControl("127.0.0.1", self.sim_port).stats()}
        rss_during = self._tgtrunk_rss_mb()
        for channel in list(started):
            try:
                await self.ari.request("DELETE", f"/channels/{channel}")
            except Exception:  # noqa: BLE001 - already gone
                pass
        records: list[dict] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            every = await self._admin(f"/api/calls?last={MAX_LAST}")
            records = every[: len(every) - calls_before]  # type: ignore[index]  # newest first: this round's
            if len(records) >= n:
                break
            await asyncio.sleep(0.2)

        def per_call(*pids: int) -> float:
            return sum(after[pid] - before[pid] for pid in pids) / elapsed * 100 / max(connected, 1)

        answered = [r for r in records if r["answered_at"]]
        heard = [sim_after[k] - sim_before.get(k, 0) for k in sim_after if sim_after[k] > sim_before.get(k, 0)]
        median = lambda xs: statistics.median(xs) if xs else math.nan  # noqa: E731
        return Row(
            workers=self.workers, calls=n, connected=connected,
            gw_cpu_per_call=per_call(self.gw_pid, *self.worker_pids), ast_cpu_per_call=per_call(self.ast_pid),
            sim_cpu_per_call=per_call(self.sim_pid),
            gw_rss_per_call_mb=(rss_during - rss_before) / max(connected, 1),
            lost=sum(r["lost_in"] for r in records), late=sum(r["late_in"] for r in records),
            setup_request_ms=median([r["setup_ms"] for r in records if r["setup_ms"] is not None]),
            setup_200_ms=median([(self.answered[c] - started[c]) * 1000 for c in self.answered if c in started]),
            to_tg_p50_us=median([r["delay_to_telegram_p50_us"] for r in answered]),
            to_tg_p99_us=max([r["delay_to_telegram_p99_us"] for r in answered], default=math.nan),
            to_sip_p50_us=median([r["delay_to_sip_p50_us"] for r in answered]),
            to_sip_p99_us=max([r["delay_to_sip_p99_us"] for r in answered], default=math.nan),
            frames_per_s=median([h / elapsed for h in heard]),
        )

    def _tgtrunk_rss_mb(self) -> float:
        return self.tgtrunk_rss_kib() / 1024

    def tgtrunk_rss_kib(self) -> int:
        """The gateway's VmRSS and its media workers' (as they are now: a restarted worker has a new pid)."""
        return sum(vm_rss_kib(pid) for pid in (self.gw_pid, *child_pids(self.gw_pid, "app.workers.worker")))

    async def stop(self, keep: bool = False) -> None:
        """Everything started is ended; the work directory (logs, data directory) is removed unless `keep`: after
        a failure, to be read."""
        if getattr(self, "events", None):
            self.events.cancel()
            await self.ari.close()
        if self.pbx:
            await self.pbx.stop()
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if self.pbx:
            shutil.rmtree(self.pbx.host_dir, ignore_errors=True)
        if self.install is not None:  # the gateway's Asterisk runtime folder in the shared root
            shutil.rmtree(self.install.host_path(runtime_dir_for(self.install, self.work / "gw")), ignore_errors=True)
        if keep:
            print(f"logs kept in {self.work}", file=sys.stderr, flush=True)
        else:
            shutil.rmtree(self.work, ignore_errors=True)


TABLE_HEAD = (
    "| workers | calls | connected | tgtrunk CPU %/call | Asterisk CPU %/call | sim CPU %/call | tgtrunk RSS MB/call "
    "| RTP lost/late | setup INVITE→RequestCall p50 ms | INVITE→200 OK p50 ms | added delay →TG p50/p99 µs "
    "| added delay →SIP p50/p99 µs | frames/s heard by Telegram user (of 100) |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def row_text(r: Row) -> str:
    if r.connected == 0:
        return f"| {r.workers} | {r.calls} | 0 | — | — | — | — | — | — | — | — | — | — |"
    # "nan" where a figure was not collected (no call record came back in time): shown as such
    return (f"| {r.workers} | {r.calls} | {r.connected} | {r.gw_cpu_per_call:.2f} | {r.ast_cpu_per_call:.2f} | {r.sim_cpu_per_call:.2f} "
            f"| {r.gw_rss_per_call_mb:.2f} | {r.lost}/{r.late} | {r.setup_request_ms:.1f} | {r.setup_200_ms:.0f} "
            f"| {r.to_tg_p50_us:.0f}/{r.to_tg_p99_us:.0f} | {r.to_sip_p50_us:.0f}/{r.to_sip_p99_us:.0f} "
            f"| {r.frames_per_s:.1f} |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", default="1,10,30,60", help="comma-separated N (default 1,10,30,60)")
    parser.add_argument("--seconds", type=float, default=15.0, help="measurement window per N (default 15)")
    parser.add_argument("--workers", default=f"0,{os.cpu_count()}",
                        help="comma-separated TGTRUNK_WORKERS, each a run of its own (default 0 and one per core: "
                             "the one-process path and the media workers side by side)")
    parser.add_argument("--audio", choices=AUDIO, default="tone",
                        help="what the PBX plays into each call (default %(default)s)")
    parser.add_argument("--no-readme", action="store_true", help="do not update bench/README.md")
    args = parser.parse_args()
    sizes = [int(n) for n in args.calls.split(",")]
    rows: list[Row] = []
    print(TABLE_HEAD, end="", flush=True)
    for workers in (int(w) for w in args.workers.split(",")):
        bench = Bench(args.seconds, workers, args.audio)
        failed = True
        try:
            print(f"<!-- starting the simulator ({max(sizes)} users), tgtrunk with {workers} media workers and a "
                  f"PBX Asterisk playing {args.audio} -->", flush=True)
            await bench.start(max(sizes))
            for n in sizes:
                rows.append(await bench.run(n))
                print(row_text(rows[-1]), flush=True)
                await asyncio.sleep(2)
            failed = False
        finally:
            await bench.stop(keep=failed)
    if not args.no_readme and rows:
        write_readme(rows, args)


def write_readme(rows: list[Row], args: argparse.Namespace) -> None:
    path = ROOT / "bench" / "README.md"
    text = path.read_text() if path.exists() else ""
    marker = "<!-- results -->"
    head = text.split(marker)[0] if marker in text else text  # the results table is the file's last part
    cpu = os.cpu_count()
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    body = (f"{marker}\nLatest run: {stamp}, {cpu} cores, `{' '.join(['.venv/bin/python', 'bench/run.py'] + sys.argv[1:])}`\n\n"
            + TABLE_HEAD + "\n".join(row_text(r) for r in rows) + "\n")
    path.write_text(head + body)


if __name__ == "__main__":
    asyncio.run(main())
