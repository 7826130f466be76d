"""Subnormal floats flushed to zero on NTgCalls' threads: its Opus encoder then costs a quarter less on silence.

On digital silence (all zeros: what Asterisk sends while nothing plays on the SIP side, and what tgtrunk fills in
while no RTP comes) the filter states in NTgCalls' Opus encoder decay into subnormal floats, which x86 computes in
microcode: Opus' `tone_lpc` alone took 21 % of the NTgCalls floor's cycles on silence, against 2 % on a tone (perf).
With the CPU's flush-to-zero (FTZ) and denormals-are-zero (DAZ) flags set, a leg carrying silence costs 0.78× the
CPU (bench/README.md, "What a call carries changes its cost"); a leg carrying a tone costs the same either way.

The flags are in each thread's MXCSR register, and a new thread starts with a copy of its creator's. NTgCalls makes
its threads from the thread that first creates an instance and from threads of its own, so `flush_to_zero()` on
the event loop's thread before the first `NTgCalls()` reaches all of them (`CallEngine` does it). Python's floats on
that thread flush too: a result below 2.2e-308 becomes 0.0, a range nothing in tgtrunk computes in.

No maintained library sets these flags (PyPI's `daz` is a 2018 0.0.1 source package that needs a compiler), and
Python cannot run `ldmxcsr` itself: two functions of a few bytes of x86-64 code are mapped into an executable page
and called through ctypes. Elsewhere (another architecture, or a system that refuses executable memory) nothing
changes and one warning is logged.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import mmap
import platform
from collections.abc import Callable
from typing import NamedTuple

log = logging.getLogger(__name__)

FTZ = 1 << 15  # MXCSR: subnormal results become zero
DAZ = 1 << 6  # MXCSR: subnormal inputs count as zero

# System V x86-64, leaf functions using the red zone below the stack pointer.
_SET = bytes.fromhex(
    "0fae5c24fc"  # stmxcsr [rsp-4]
    "814c24fc40800000"  # or dword [rsp-4], FTZ | DAZ
    "0fae5424fc"  # ldmxcsr [rsp-4]
    "c3")  # ret
_GET = bytes.fromhex(
    "0fae5c24fc"  # stmxcsr [rsp-4]
    "8b4424fc"  # mov eax, [rsp-4]
    "c3")  # ret


class _Code(NamedTuple):
    page: mmap.mmap  # kept: the functions live in it
    set_flags: Callable[[], None]
    read_flags: Callable[[], int]


@functools.cache
def _code() -> _Code | None:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        log.warning("denormals are not flushed to zero on %s: NTgCalls costs more on silence", platform.machine())
        return None
    try:
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        page.write(_SET + _GET)
        address = ctypes.addressof(ctypes.c_char.from_buffer(page))
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        if libc.mprotect(address, mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
            raise OSError(ctypes.get_errno(), "mprotect refused an executable page")
    except (OSError, ValueError, AttributeError) as exc:
        log.warning("denormals are not flushed to zero (%s): NTgCalls costs more on silence", exc)
        return None
    return _Code(page, ctypes.CFUNCTYPE(None)(address), ctypes.CFUNCTYPE(ctypes.c_uint32)(address + len(_SET)))


def flush_to_zero() -> bool:
    """Set FTZ and DAZ on the calling thread (and so on every thread it creates from now on); False where it
    cannot."""
    code = _code()
    if code is None:
        return False
    code.set_flags()
    return True


def flushing() -> bool:
    """Whether the calling thread flushes subnormal floats to zero (both flags set)."""
    code = _code()
    return code is not None and code.read_flags() & (FTZ | DAZ) == FTZ | DAZ
