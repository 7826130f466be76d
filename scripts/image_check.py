"""The image test's checks against a started appliance: wait for /healthz, add a line with the appliance's own CLI,
register baresip to it, call the demo Tone Test user and measure what baresip heard. Run by scripts/image-test.sh.

    python scripts/image_check.py --sip 127.0.0.1:5060 --http 127.0.0.1:8080 --cli 'podman exec NAME tgtrunk'
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.audio import dominant_frequency, rms_dbfs  # noqa: E402
from tests.e2e.test_sip_to_telegram import wav_pcm  # noqa: E402
from tests.peers import BaresipPeer  # noqa: E402


def health(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def wait_healthy(url: str, started: float, timeout: float) -> float:
    last: object = None
    while time.time() - started < timeout:
        try:
            code, body = health(url)
            if code == 200:
                return time.time() - started
            last = body
        except (OSError, ValueError) as exc:
            last = exc
        time.sleep(0.25)
    raise SystemExit(f"not healthy after {timeout:.0f} s: {last}")


async def call_tone(sip: str, cli: list[str]) -> tuple[float, float]:
    added = subprocess.run([*cli, "line", "add", "desk", "--mode", "register", "--username", "desk"],
                           capture_output=True, text=True, timeout=60)
    if added.returncode != 0:
        raise SystemExit(f"line add failed: {added.stderr}")
    password = re.search(r"password \(shown once.*?\): (\S+)", added.stdout).group(1)  # type: ignore[union-attr]
    phone = await BaresipPeer(address="127.0.0.2").start()
    try:
        for _ in range(40):  # the gateway pushes a new line to Asterisk within a second or two
            await phone.command("uanew", f"<sip:desk@{sip}>;auth_pass={password};regint=60")
            if (await phone.wait_event("REGISTER_OK", "REGISTER_FAIL"))["type"] == "REGISTER_OK":
                break
            await phone.command("uadelall")
            await asyncio.sleep(0.5)
        else:
            raise SystemExit("baresip could not register to the new line")
        await phone.command("dial", f"sip:tone@{sip}")
        await phone.wait_event("CALL_ESTABLISHED", timeout=20)
        await asyncio.sleep(4)  # listen to four seconds of the tone
        await phone.command("hangup")
        await phone.wait_event("CALL_CLOSED")
        heard, rate, _ = wav_pcm(phone.dump_wav("dec"))
        heard = heard[2 * rate:]  # skip the first second
        return dominant_frequency(heard, rate), rms_dbfs(heard)
    finally:
        await phone.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sip", required=True)
    parser.add_argument("--http", required=True)
    parser.add_argument("--cli", required=True, help="how to run the appliance's tgtrunk command")
    parser.add_argument("--started", type=float, default=None, help="epoch seconds of the start (date +%%s.%%N), for the figure")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    started = time.time() if args.started is None else args.started
    healthy_after = wait_healthy(f"http://{args.http}/healthz", started, args.timeout)
    print(f"healthy after {healthy_after:.1f} s")
    frequency, level = asyncio.run(call_tone(args.sip, shlex.split(args.cli)))
    print(f"heard {frequency:.0f} Hz at {level:.1f} dBFS")
    if abs(frequency - 600) > 12 or level < -30:
        raise SystemExit("the demo tone (600 Hz) was not heard")


if __name__ == "__main__":
    main()
