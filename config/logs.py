"""Structured logging for both processes: one JSON object a line, or readable text for ``dev``.

Context goes in ``extra=`` (``event_id``, ``source``, ``route``, ``action``, ``reason``…) and
becomes fields of the line. Nothing that may hold a secret is ever passed there.
"""

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_STANDARD.add("color_message")  # uvicorn's copy of the message with terminal colours


def context(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **context(record),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        time = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        fields = " ".join(f"{k}={v}" for k, v in context(record).items())
        text = f"{time} {record.levelname:<7} {record.name}: {record.getMessage()} {fields}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text.rstrip()


def setup(fmt: Literal["json", "text"], level: str) -> None:
    """Send every logger's records to stderr in ``fmt``; called once by each composition root.

    Raise ``ValueError`` for a ``level`` not in :data:`LEVELS`, before changing anything.
    """
    if level.upper() not in LEVELS:
        raise ValueError(f"unknown level {level!r} (use one of {', '.join(LEVELS)})")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
