"""How the server writes its log: `text` (one readable line per record) or `json`
(SIMUTRADOR_LOG_FORMAT=json: one JSON object per line, for a log collector), each record
carrying the user and the session it concerns when the transport knows them."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

LOG_FORMATS = ("text", "json")

current_user_id: ContextVar[str | None] = ContextVar("simutrador_user_id", default=None)
"""The user whose connection is being served (set by the WebSocket transport)."""
current_session_id: ContextVar[str | None] = ContextVar("simutrador_session_id", default=None)
"""The session the message being handled names (set by the dispatcher)."""


@contextlib.contextmanager
def session_context(session_id: str | None) -> Iterator[None]:
    """Records logged inside carry `session_id` (nothing changes for None)."""
    if session_id is None:
        yield
        return
    token = current_session_id.set(session_id)
    try:
        yield
    finally:
        current_session_id.reset(token)


class ContextFilter(logging.Filter):
    """Puts the user and session of the current task on each record (`user_id`,
    `session_id`; None where they do not apply), for either format to show."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "user_id"):
            record.user_id = current_user_id.get()
        if not hasattr(record, "session_id"):
            record.session_id = current_session_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: time (ISO 8601 UTC), level, logger,
    message, then user_id and session_id where they apply, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("user_id", "session_id"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`LEVEL:  logger: message`, then `[user=… session=…]` where they apply."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s:  %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        tags = [
            f"{label}={value}"
            for label, value in (
                ("user", getattr(record, "user_id", None)),
                ("session", getattr(record, "session_id", None)),
            )
            if value is not None
        ]
        if not tags:
            return line
        first, newline, rest = line.partition("\n")
        return f"{first} [{' '.join(tags)}]{newline}{rest}"


def formatter_for(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def install_handler(logger: logging.Logger, log_format: str) -> None:
    """`logger` writes to stderr in `log_format`, with the context filter (once)."""
    if not logger.handlers:
        logger.addHandler(logging.StreamHandler())
    for handler in logger.handlers:
        handler.setFormatter(formatter_for(log_format))
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())


def uvicorn_log_config(base: dict[str, Any], log_format: str) -> dict[str, Any]:
    """uvicorn's logging configuration with its records in `log_format` (json: the same
    objects as the server's own lines; text: uvicorn's own format, unchanged)."""
    if log_format != "json":
        return base
    config: dict[str, Any] = json.loads(json.dumps(base))
    for name in config.get("formatters", {}):
        config["formatters"][name] = {"()": f"{__name__}.JsonFormatter"}
    config.setdefault("filters", {})["simutrador_context"] = {"()": f"{__name__}.ContextFilter"}
    for handler in config.get("handlers", {}).values():
        handler.setdefault("filters", []).append("simutrador_context")
    return config
