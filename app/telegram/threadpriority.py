"""The thread NTgCalls hands every call's received audio on runs at a raised priority (nice −10).

That thread carries the audio towards SIP: the gateway sends each frame on as RTP straight from NTgCalls' callback
(`CallMedia.on_frame`). On a loaded machine the scheduler preempted it between taking a frame and sending it: at
30 calls on 2 cores the added delay →SIP was 1.8–2.9 ms at p99 in 5 runs of 6, and 0.2–0.5 ms with this thread at
nice −10 (bench/README.md, "The frame thread's priority"). Audio software does the same (WebRTC asks for real-time
priority for its audio threads, Asterisk has `highpriority`); a nice value rather than a real-time class, so a thread
that spins cannot lock the machine up.

Lowering a nice value needs CAP_SYS_NICE (root, as the systemd unit runs) or an RLIMIT_NICE that allows it (the
compose file's `ulimits: nice`); without either the thread keeps its priority and one warning says so.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

MEDIA_NICE = -10

_raised = threading.local()  # kept with the thread's Python thread state (`threadstate.keep`)
_refused = threading.Event()  # warned once


def raise_this_thread() -> None:
    """Give the calling thread MEDIA_NICE, once per thread."""
    if getattr(_raised, "done", False):
        return
    _raised.done = True
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), MEDIA_NICE)
    except OSError as exc:
        if not _refused.is_set():
            _refused.set()
            log.warning("the thread carrying audio towards SIP keeps its normal priority (%s): give tgtrunk "
                        "CAP_SYS_NICE or an RLIMIT_NICE of %d, or audio to the PBX may lag on a loaded machine",
                        exc.strerror, 20 - MEDIA_NICE)
