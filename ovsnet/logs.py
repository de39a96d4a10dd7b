"""Logging setup for the long-running commands (`supervise`, `agent`): human lines or JSON lines.

`--log-format json` writes one object per line: time, level, logger, event (a short name when the
caller gives one, else the message), message, and the event's fields. Callers pass structured
fields with `extra={"event": ..., "fields": {...}}`; nothing here knows about secrets, so
callers never put one in a message or a field (the agent's events carry names, addresses and
counts only).

Place: docs/architecture.md, "Layers": CLI edge (logging of the long-running commands).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from ovsnet.errors import InvalidInput

LOG_FORMATS = ("text", "json")


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or message,
            "message": message,
        }
        fields = getattr(record, "fields", None)
        if fields:
            line["fields"] = fields
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, sort_keys=True)


def check_log_format(text: str) -> str:
    if text not in LOG_FORMATS:
        raise InvalidInput(f"--log-format {text!r} is unknown", "use text or json")
    return text


def configure(log_format: str, program: str, level: int = logging.INFO) -> None:
    """Send the root logger's records to stderr, as `program: message` lines or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    if check_log_format(log_format) == "json":
        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s {program}: %(message)s", "%Y-%m-%dT%H:%M:%S")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
