"""`python -m app.telegram.sim`: the simulated Telegram network in a process of its own.

    python -m app.telegram.sim --port 0 --demo
    python -m app.telegram.sim --port 0 --users 20 --behaviour echo
    python -m app.telegram.sim --port N --stats        # print a running simulator's per-person stats (JSON)

Once listening it prints one line, `SIM READY <port> <gateway_user_id>`, on stdout; the gateway then connects
with `RemoteSimClient(name, "127.0.0.1", port, user_id=gateway_user_id)`. SIGTERM or SIGINT stops it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys

from app.telegram.sim.remote import SimControl
from app.telegram.sim.server import SimServer
from app.telegram.sim.wire import check_loopback
from app.telegram.sim.world import BENCH_BEHAVIOURS, SimWorld

log = logging.getLogger("app.telegram.sim")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m app.telegram.sim", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0 = any free port, printed when ready)")
    parser.add_argument("--demo", action="store_true", help="seed the demo people (@echo @tone @busy …)")
    parser.add_argument("--users", type=int, default=0, metavar="N", help="seed N people bench0001…")
    parser.add_argument("--behaviour", choices=sorted(BENCH_BEHAVIOURS), default="echo",
                        help="what the bench people do once they answered (default echo)")
    parser.add_argument("--ring-timeout", type=float, default=60.0, help="people's ring timeout, seconds")
    parser.add_argument("--stats", action="store_true",
                        help="do not serve: print the per-person stats of the simulator at --host/--port")
    parser.add_argument("--log-level", default="WARNING", help="logging level on stderr (default WARNING)")
    args = parser.parse_args(argv)
    try:
        check_loopback(args.host)
    except ValueError as exc:
        parser.error(str(exc))
    return args


async def serve(args: argparse.Namespace) -> None:
    world = SimWorld(ring_timeout=args.ring_timeout)
    server = SimServer(world.network, args.host, args.port, commands=world.command)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        if args.demo:
            await world.start_demo()
        if args.users:
            await world.start_bench(args.users, args.behaviour)
        await server.start()
        assert world.gateway is not None
        print(f"SIM READY {server.port} {world.gateway.id}", flush=True)
        await stop.wait()
    finally:
        await world.stop()  # people hang up first, so connected gateways hear about it
        await server.close()


async def print_stats(args: argparse.Namespace) -> None:
    rows = await SimControl(args.host, args.port).stats()
    json.dump([row.to_dict() for row in rows], sys.stdout, indent=1)
    print()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(print_stats(args) if args.stats else serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
