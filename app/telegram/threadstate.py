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

NTgCalls starts a thread per call (its frames come from it) and ends it with the call, so a kept state would
outlive its thread. Each time a new thread keeps one, the states of kept threads that have exited (no longer in
/proc/self/task) are cleared and deleted: nothing can run on them any more. Interpreter internals stay in this
module.
"""

from __future__ import annotations

import ctypes
import os
import threading

_api = ctypes.pythonapi
_api.PyGILState_Ensure.restype = ctypes.c_int
_api.PyGILState_Ensure.argtypes = []
_api.PyThreadState_Get.restype = ctypes.c_void_p
_api.PyThreadState_Get.argtypes = []
_api.PyThreadState_Clear.restype = None
_api.PyThreadState_Clear.argtypes = [ctypes.c_void_p]
_api.PyThreadState_Delete.restype = None
_api.PyThreadState_Delete.argtypes = [ctypes.c_void_p]

_held = threading.local()  # empty on a thread state created for this one callback
_kept: dict[int, int] = {}  # native thread id -> address of the thread state kept for it
_kept_lock = threading.Lock()


def keep() -> None:
    """Make the calling thread's current Python thread state outlive this callback. Cheap after the first call."""
    if getattr(_held, "kept", False):
        return
    _api.PyGILState_Ensure()  # never released here: the thread state's count stays above zero
    _held.kept = True
    state, tid = _api.PyThreadState_Get(), threading.get_native_id()
    with _kept_lock:
        _forget_exited()
        previous = _kept.get(tid)
        if previous is not None and previous != state:  # an exited thread's, whose id this thread now has
            _delete(previous)
        _kept[tid] = state


def kept_threads() -> int:
    """How many threads hold a kept thread state (exited ones are forgotten only when a new one keeps)."""
    return len(_kept)


def _forget_exited() -> None:
    for tid, state in list(_kept.items()):
        if not os.path.exists(f"/proc/self/task/{tid}"):
            del _kept[tid]
            _delete(state)


def _delete(state: int) -> None:
    """A thread state whose thread has exited: nothing runs on it, and the GIL is held."""
    _api.PyThreadState_Clear(state)
    _api.PyThreadState_Delete(state)
