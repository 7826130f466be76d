"""Keep one Python thread state per native thread that calls into Python (NTgCalls' threads).

NTgCalls' binding (pybind11) enters Python from its own threads with `gil_scoped_acquire`: on a thread Python does
not know it creates a thread state for the callback and destroys it afterwards, every time. In CPython 3.11 each
new thread state maps its data stack and the old one unmaps it: mmap/munmap and page faults on every 10 ms frame,
signaling message and log line (6 % of the NTgCalls floor in a profile, issue 12).

`keep()`, called first thing in such a callback, takes one extra `PyGILState_Ensure` on that thread and never
releases it: the binding's own release then no longer brings the thread state's count to zero, so the same state
serves every later callback on that thread. Python keeps per-thread-state data (`threading.local`) as long as
the state lives, which is how `keep` knows it already holds one and how `tests/telegram/test_threadstate.py`
sees whether the binding still behaves as described here.

The cost: a thread state is left behind when a native thread that called `keep()` exits (a few hundred bytes;
NTgCalls' callback threads live as long as its instance). Interpreter internals stay in this module.
"""

from __future__ import annotations

import ctypes
import threading

_PyGILState_Ensure = ctypes.pythonapi.PyGILState_Ensure
_PyGILState_Ensure.restype = ctypes.c_int
_PyGILState_Ensure.argtypes = []

_held = threading.local()  # empty on a thread state created for this one callback


def keep() -> None:
    """Make the calling thread's current Python thread state outlive this callback. Cheap after the first call."""
    if not getattr(_held, "kept", False):
        _PyGILState_Ensure()  # never released: the thread state's count stays above zero
        _held.kept = True
