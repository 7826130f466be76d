"""Logging set-up: level and format from the environment, one line per event.

- `TGTRUNK_LOG_LEVEL` (debug, info, warning, error; default info, or debug with `-v`);
- under systemd (`JOURNAL_STREAM` set) no timestamp, since the journal adds its own, and the level as the
  `<N>` prefix the journal reads as the entry's priority;
- `TGTRUNK_LOG_FORMAT=json`: one JSON object a line (time, level, logger, message, and the traceback if any).
A traceback stays inside its event's line in the journal and JSON formats (its line breaks escaped), so a log
collector never sees a fragment of it as an event of its own.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping

from app.settings import SettingsError

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
FORMATS = ("text", "json")
# syslog priorities, as sd-daemon(3) prefixes read by the journal
# Libraries' start-up chatter an operator cannot act on, shown only at debug: pyrogram says "Using TgCrypto" at
# INFO on import, which every `tgtrunk account` command printed.
_QUIET_BELOW_DEBUG = ("pyrogram.crypto.aes",)
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class JournalFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelno, 6)
        return f"<{priority}>" + super().format(record).replace("\n", "\\n")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            event["traceback"] = self.formatException(record.exc_info)
        return json.dumps(event, ensure_ascii=False)


def configure_logging(env: Mapping[str, str], verbose: bool = False) -> None:
    level_name = (env.get("TGTRUNK_LOG_LEVEL") or ("debug" if verbose else "info")).strip().lower()
    if level_name not in LEVELS:
        raise SettingsError(f"TGTRUNK_LOG_LEVEL={level_name!r}: use one of {', '.join(LEVELS)}")
    log_format = (env.get("TGTRUNK_LOG_FORMAT") or "text").strip().lower()
    if log_format not in FORMATS:
        raise SettingsError(f"TGTRUNK_LOG_FORMAT={log_format!r}: use one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    elif env.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level_name])
    for name in _QUIET_BELOW_DEBUG:
        logging.getLogger(name).setLevel(logging.NOTSET if level_name == "debug" else logging.WARNING)
