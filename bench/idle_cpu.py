"""An idle gateway's own CPU: `tgtrunk serve` with a few lines and no call, measured from /proc (Asterisk excluded).

What stays when no call runs is the polling (line sync, account settings, recordings, the security log) and the
line status; `--tree DIR` runs the same measurement on another checkout (e.g. `git archive` of older code), so two
trees can be compared in alternating rounds:

    .venv/bin/python bench/idle_cpu.py --rounds 3 --tree /tmp/old --tree .
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import cpu_seconds  # noqa: E402  (bench/run.py)
from tests.conftest import gateway_env, remove_runtime_dir  # noqa: E402
from tests.peers import free_port  # noqa: E402


def measure(tree: Path, lines: int, seconds: float) -> float:
    """% of one core that `serve` from `tree` used over `seconds`, after its start settled."""
    data_dir = Path(tempfile.mkdtemp(prefix="tgtrunk-idle-"))
    env = gateway_env(data_dir, free_port(), free_port())
    try:
        for n in range(lines):
            subprocess.run([sys.executable, "-m", "app", "line", "add", f"line{n}", "--mode", "register",
                            "--password", f"pw{n}"], cwd=tree, env=env, check=True, capture_output=True)
        serve = subprocess.Popen([sys.executable, "-m", "app", "serve"], cwd=tree, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            assert serve.stderr is not None
            for line in serve.stderr:  # started once its lines are in Asterisk
                if f"lines in sync: {lines} line" in line:
                    break
            else:
                raise SystemExit(f"the gateway from {tree} exited before its lines were in sync")
            time.sleep(3)  # let the start settle; what is measured is the steady state
            before, started = cpu_seconds(serve.pid), time.monotonic()
            time.sleep(seconds)
            return (cpu_seconds(serve.pid) - before) / (time.monotonic() - started) * 100
        finally:
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(30)
            except subprocess.TimeoutExpired:
                serve.kill()
                serve.wait()
    finally:
        remove_runtime_dir(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, action="append", help="checkout to run serve from (repeatable)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--lines", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    trees = [tree.resolve() for tree in args.tree or [Path(".")]]
    for round_ in range(1, args.rounds + 1):
        for tree in trees:
            load = Path("/proc/loadavg").read_text().split()[0]
            print(f"round {round_}  {tree}  {measure(tree, args.lines, args.seconds):.2f} % of a core "
                  f"(load {load})", flush=True)


if __name__ == "__main__":
    main()
