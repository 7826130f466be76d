"""Python 3.11's asyncio socket transports keep a reference cycle once closed (the transport holds its own bound
`_read_ready__data_received` as `_read_ready_cb`), so every closed TCP connection (an admin API request, an ARI
connection) waited for a full garbage collection with its socket objects: ~1.4 a call in bench/soak.py, most of
what was left per call. CPython 3.12 clears it on close (gh-100348); this is that fix, for 3.11. `serve` runs on
uvloop since issue 12 (its transports are not these); a gateway on asyncio's own loop (the tests' in-process ones)
still needs it."""

from __future__ import annotations

import sys
from asyncio import selector_events
from typing import Any


def break_transport_cycles() -> None:
    """Process-wide and idempotent; nothing on 3.12 and later."""
    transport: Any = selector_events._SelectorSocketTransport
    if sys.version_info >= (3, 12) or getattr(transport, "_tgtrunk_breaks_cycle", False):
        return
    connection_lost = transport._call_connection_lost

    def _call_connection_lost(self: Any, exc: BaseException | None) -> None:
        try:
            connection_lost(self, exc)
        finally:
            self._read_ready_cb = None  # its reader is removed already: nothing reads through it again

    transport._call_connection_lost = _call_connection_lost
    transport._tgtrunk_breaks_cycle = True
