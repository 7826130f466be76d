"""WebRTC's own logging inside NTgCalls, kept to warnings and errors.

NTgCalls 3.0.5 registers its log sink with WebRTC at `LS_VERBOSE` whenever it creates one (with its first
`NTgCalls()` instance; `ntgcalls/src/utils/log_sink_impl.cpp`). So every verbose line (a STUN check, a pacer
update, a bandwidth estimate: ~2 100 lines a second for 10 call legs, bench/README.md) is formatted on WebRTC's
threads, posted to NTgCalls' "LogSink" thread, matched with a `std::regex` there and handed to Python's logging,
where the "webrtc" and "ntgcalls" loggers drop it (NTgCalls sets them to CRITICAL). The binding has no setting
for it.

WebRTC's own functions set it: `LogMessage::RemoveLogToStream` and `AddLogToStream(sink, LS_WARNING)` for the
sink, `LogToDebug(LS_WARNING)` for the threshold below which WebRTC formats nothing. They are not exported, so
their addresses come from the module's symbol table (`.symtab`), read once per process. Where a wheel has no
symbol table (stripped) nothing changes but a warning. Interpreter and binding internals stay in this module;
`tests/telegram/test_nativelog.py` fails when the binding stops behaving as described here.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import mmap
import struct
from dataclasses import dataclass

import ntgcalls

log = logging.getLogger(__name__)

LS_WARNING = 2  # webrtc::LoggingSeverity: LS_VERBOSE 0, LS_INFO 1, LS_WARNING 2, LS_ERROR 3, LS_NONE 4

_ANCHOR = b"PyInit_ntgcalls"  # exported: where the module was loaded
_LOG_TO_DEBUG = b"_ZN6webrtc10LogMessage10LogToDebugENS_15LoggingSeverityE"
_ADD_STREAM = b"_ZN6webrtc10LogMessage14AddLogToStreamEPNS_7LogSinkENS_15LoggingSeverityE"
_REMOVE_STREAM = b"_ZN6webrtc10LogMessage17RemoveLogToStreamEPNS_7LogSinkE"
_STREAMS = b"_ZN6webrtc10LogMessage8streams_E"  # the most recently added sink (a linked list's head)
_NAMES = (_ANCHOR, _LOG_TO_DEBUG, _ADD_STREAM, _REMOVE_STREAM, _STREAMS)

_SYMBOL_TABLES = (2, 11)  # SHT_SYMTAB, SHT_DYNSYM


class NoSymbols(Exception):
    """The module has no symbol table, or not these symbols."""


def symbol_values(path: str, names: tuple[bytes, ...]) -> dict[bytes, int]:
    """`st_value` of each name in a 64-bit little-endian ELF file's symbol tables (`.symtab`, `.dynsym`).

    Read by hand (section headers, then one pass over each table for the wanted names' string offsets):
    pyelftools took 3.8 s to find these among the 120 000 symbols of NTgCalls 3.0.5, this ~0.05 s."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as elf:
        if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
            raise NoSymbols(f"{path} is not a 64-bit little-endian ELF file")
        shoff, = struct.unpack_from("<Q", elf, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", elf, 0x3A)
        sections = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize) for i in range(shnum)]
        found: dict[bytes, int] = {}
        for table in (s for s in sections if s[1] in _SYMBOL_TABLES):
            strtab = sections[table[6]]
            strings = elf[strtab[4] : strtab[4] + strtab[5]]
            wanted: dict[int, bytes] = {}
            for name in names:
                at = strings.find(b"\0" + name + b"\0")
                if at >= 0 and name not in found:
                    wanted[at + 1] = name
            if not wanted:
                continue
            for st_name, _info, _other, _shndx, st_value, _size in struct.iter_unpack(
                    "<IBBHQQ", elf[table[4] : table[4] + table[5]]):
                name = wanted.get(st_name)
                if name is not None and st_value:
                    found[name] = st_value
        missing = [n.decode() for n in names if n not in found]
        if missing:
            raise NoSymbols(f"{path} has no symbol {', '.join(missing)} (a stripped module?)")
        return found


@dataclass
class _WebRtcLogging:
    log_to_debug: ctypes._CFuncPtr  # type: ignore[name-defined]
    add_stream: ctypes._CFuncPtr  # type: ignore[name-defined]
    remove_stream: ctypes._CFuncPtr  # type: ignore[name-defined]
    streams: ctypes.c_void_p

    @classmethod
    def load(cls) -> "_WebRtcLogging":
        path = ntgcalls.__file__
        values = symbol_values(path, _NAMES)
        module = ctypes.PyDLL(path)  # loaded already: the same handle
        anchor = ctypes.cast(getattr(module, _ANCHOR.decode()), ctypes.c_void_p).value
        assert anchor is not None
        bias = anchor - values[_ANCHOR]
        return cls(
            log_to_debug=ctypes.CFUNCTYPE(None, ctypes.c_int)(bias + values[_LOG_TO_DEBUG]),
            add_stream=ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int)(bias + values[_ADD_STREAM]),
            remove_stream=ctypes.CFUNCTYPE(None, ctypes.c_void_p)(bias + values[_REMOVE_STREAM]),
            streams=ctypes.c_void_p.from_address(bias + values[_STREAMS]),
        )

    def set_threshold(self, severity: int) -> None:
        sink = self.streams.value  # NTgCalls' sink, the only one
        if sink:
            self.remove_stream(sink)
            self.add_stream(sink, severity)
        self.log_to_debug(severity)


@functools.cache
def _webrtc_logging() -> _WebRtcLogging | None:
    """Found once per process; None (with one warning) where the module lacks the symbols."""
    try:
        return _WebRtcLogging.load()
    except Exception as exc:  # noqa: BLE001 - best effort: an odd module file must not stop a call engine
        log.warning("NTgCalls' WebRTC logging stays verbose (its lines cost CPU and are dropped): %s", exc)
        return None


def quiet() -> bool:
    """WebRTC formats and hands on only warnings and errors from now on. Call it after each `NTgCalls()` is made:
    NTgCalls registers its sink at `LS_VERBOSE` again whenever it makes a new one. False if it cannot be done."""
    webrtc_logging = _webrtc_logging()
    if webrtc_logging is None:
        return False
    webrtc_logging.set_threshold(LS_WARNING)
    return True
