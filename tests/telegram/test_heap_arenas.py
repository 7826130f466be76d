"""The process that runs NTgCalls keeps glibc to ARENAS malloc arenas (bench/README.md, "Memory per call": fewer
arenas, less memory kept per call). Counted in a fresh child, as glibc reports its arenas (`malloc_info`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from app.telegram.callengine import ARENAS

CHILD = r"""
import ctypes, ctypes.util, sys, tempfile, threading
from app.telegram.callengine import limit_arenas
if sys.argv[1] == "limited":
    limit_arenas()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
all_alive = threading.Barrier(12)
def allocate():
    block = libc.malloc(1000)  # a thread's first allocation picks its arena
    all_alive.wait()
    all_alive.wait()
    libc.free(block)
threads = [threading.Thread(target=allocate) for _ in range(11)]
for thread in threads:
    thread.start()
all_alive.wait()
with tempfile.NamedTemporaryFile(suffix=".xml") as report:
    out = libc.fopen(report.name.encode(), b"w")
    libc.malloc_info(0, out)
    libc.fclose(out)
    print(open(report.name).read().count("<heap nr="))
all_alive.wait()
for thread in threads:
    thread.join()
"""


def arenas(mode: str) -> int:
    result = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parents[2], check=True)
    return int(result.stdout)


def test_eleven_threads_allocating_share_at_most_the_arenas_allowed() -> None:
    assert arenas("default") > ARENAS  # glibc's own limit would give them arenas of their own
    assert arenas("limited") <= ARENAS
