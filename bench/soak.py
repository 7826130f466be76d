"""Many short calls, one after another, to see whether tgtrunk's memory stays flat.

    .venv/bin/python bench/soak.py [--calls 1000] [--warmup 100] [--every 100] [--parallel 2] [--hold 0.5]

The same three processes as bench/run.py: `tgtrunk serve`, the simulated Telegram network in its own process
(its people answer and echo) and a second Asterisk as the PBX, registered to the gateway. Calls alternate
direction: the PBX dials a Telegram user (and plays Milliwatt into the call), or a Telegram user calls the
gateway, which rings the PBX (it answers, waits a moment and hangs up). After the warm-up and then every
`--every` calls the bench waits until every call placed so far has its call record and none is active, and
reads the VmRSS of tgtrunk and its media workers (/proc/PID/status). KiB per call is the slope of a least-squares line through the samples
after the warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402  (bench/run.py: the processes and their set-up)
from run import Bench  # noqa: E402

from app.ari.client import AriError, AriEvent  # noqa: E402
from app.settings import DEFAULT_WORKERS  # noqa: E402
from app.telegram.sim import SimControl  # noqa: E402

# The PBX also takes the gateway's calls: identified by address, answered, hung up after a moment.
run.PBX_IDENTIFY_BY = "ip,username"
run.PBX_EXTRA = """
[tgtrunk]
type = identify
endpoint = tgtrunk
match = 127.0.0.1
"""
run.PBX_EXTENSIONS += """exten => pbx1,1,Answer()
 same => n,Wait({hold})
 same => n,Hangup()
"""
ANSWER_TIMEOUT_S = 20.0


def slope(points: list[tuple[int, int]]) -> float:
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else float("nan")


class Soak(Bench):
    def __init__(self, hold: float, workers: int) -> None:
        super().__init__(seconds=0, workers=workers)
        self.hold = hold
        self.waiting: dict[str, asyncio.Future[None]] = {}
        self.placed = 0
        self.failed = 0

    async def _on_answer(self, event: AriEvent) -> None:
        channel = event["channel"]["id"]
        try:
            await self.ari.request("POST", f"/channels/{channel}/continue",
                                   params={"context": "bench", "extension": "tone", "priority": 1})
        except AriError:
            pass
        future = self.waiting.get(channel)
        if future is not None and not future.done():
            future.set_result(None)

    async def sip_to_telegram(self, user: int) -> None:
        future = asyncio.get_running_loop().create_future()
        channel = await self.ari.request("POST", "/channels", params={
            "endpoint": f"PJSIP/+1555020{user:04d}@tgtrunk", "app": "bench", "timeout": 30})
        self.waiting[channel["id"]] = future
        try:
            await asyncio.wait_for(future, ANSWER_TIMEOUT_S)
            await asyncio.sleep(self.hold)
        except asyncio.TimeoutError:
            self.failed += 1
        finally:
            del self.waiting[channel["id"]]
            try:
                await self.ari.request("DELETE", f"/channels/{channel['id']}")
            except AriError:
                pass  # already gone

    async def telegram_to_sip(self, user: int) -> None:
        before = await self.last_record_id()
        await SimControl("127.0.0.1", self.sim_port).call_gateway(f"@bench{user:04d}")
        deadline = time.monotonic() + ANSWER_TIMEOUT_S + self.hold
        while await self.last_record_id() == before:  # the PBX hangs up after `hold`; then the record is written
            if time.monotonic() > deadline:
                self.failed += 1
                return
            await asyncio.sleep(0.1)

    def check_alive(self) -> None:
        gateway = next(proc for proc in self.procs if proc.pid == self.gw_pid)
        if gateway.poll() is not None:
            tail = (self.work / "gateway.log").read_text(errors="replace").splitlines()[-3:]
            raise SystemExit(f"tgtrunk exited ({gateway.returncode}) after {self.placed} calls: " + " | ".join(tail))

    async def last_record_id(self) -> int:
        records = await self._admin("/api/calls?last=1")
        return records[0]["id"] if records else 0  # type: ignore[index]

    async def settle(self, timeout: float = 60.0) -> None:
        """Until every call placed has its record and nothing is active (their NTgCalls calls stopped), and no
        replaced media worker is still stopping (its RSS is counted while it runs: after `timeout`, it is)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = await self._admin("/api/status")
            if await self.last_record_id() >= self.placed and not any(status["active_calls"].values()):  # type: ignore[index]
                await asyncio.sleep(1.0)  # NTgCalls stops a call in the background after the record
                while len(run.child_pids(self.gw_pid, "app.workers.worker")) > self.workers:
                    if time.monotonic() > deadline:
                        print(f"soak: a replaced media worker still runs after {timeout:.0f} s", file=sys.stderr)
                        return
                    await asyncio.sleep(0.2)
                return
            await asyncio.sleep(0.2)
        print(f"soak: calls still active after {timeout:.0f} s", file=sys.stderr)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000, help="calls after the warm-up (default 1000)")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--every", type=int, default=100, help="calls between RSS samples (default 100)")
    parser.add_argument("--parallel", type=int, default=2, help="calls at a time (default 2)")
    parser.add_argument("--hold", type=float, default=0.5, help="seconds each answered call lasts (default 0.5)")
    parser.add_argument("--direction", choices=("both", "sip", "telegram"), default="both")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                        help=f"TGTRUNK_WORKERS (default {DEFAULT_WORKERS}, the gateway's; 0: the one-process path); "
                             "the RSS is the gateway's and its workers'")
    args = parser.parse_args()
    run.PBX_EXTENSIONS = run.PBX_EXTENSIONS.replace("{hold}", str(args.hold))
    users = 4 * args.parallel  # a user is called again only after the others: its last call is long stopped
    soak = Soak(args.hold, args.workers)
    samples: list[tuple[int, int]] = []
    failed = True
    try:
        print(f"starting the simulator ({users} users), tgtrunk and a PBX Asterisk…", flush=True)
        await soak.start(users)
        started = time.monotonic()
        next_user = itertools.cycle(range(1, users + 1))
        directions = {"both": ("sip", "telegram"), "sip": ("sip",), "telegram": ("telegram",)}[args.direction]
        kinds = itertools.cycle(directions)
        total = args.warmup + args.calls
        while soak.placed < total:
            batch = min(args.parallel, total - soak.placed)
            work = []
            for _ in range(batch):
                kind, user = next(kinds), next(next_user)
                work.append(soak.sip_to_telegram(user) if kind == "sip" else soak.telegram_to_sip(user))
            results = await asyncio.gather(*work, return_exceptions=True)
            soak.placed += batch
            soak.check_alive()
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            if soak.placed >= args.warmup and (soak.placed - args.warmup) % args.every == 0:
                await soak.settle()
                rss = soak.tgtrunk_rss_kib()
                gateway_rss = run.vm_rss_kib(soak.gw_pid)
                samples.append((soak.placed, rss))
                fit = f", {slope(samples):.2f} KiB/call so far" if len(samples) > 1 else ""
                parts = f" (gateway {gateway_rss / 1024:.1f}, workers {(rss - gateway_rss) / 1024:.1f})" \
                    if args.workers else ""
                print(f"{soak.placed} calls, {soak.failed} failed, {time.monotonic() - started:.0f} s: "
                      f"tgtrunk VmRSS {rss / 1024:.1f} MiB{parts}{fit}", flush=True)
        failed = False
    finally:
        await soak.stop(keep=failed)
    if len(samples) > 1:
        load = os.getloadavg()
        print(f"after {args.warmup} warm-up calls: {slope(samples):.2f} KiB per call over {samples[-1][0] - samples[0][0]} "
              f"calls (VmRSS {samples[0][1] / 1024:.1f} -> {samples[-1][1] / 1024:.1f} MiB), {soak.failed} failed; "
              f"load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    asyncio.run(main())
