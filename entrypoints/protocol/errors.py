"""Protocol-level failures (answered with an `error` frame rather than `session_error`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class ProtocolError(Exception):
    code: ClassVar[str] = "INTERNAL_ERROR"
    recoverable: ClassVar[bool] = True

    def __init__(self, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})


class InvalidMessage(ProtocolError):
    code = "INVALID_MESSAGE"


class UnknownMessageType(ProtocolError):
    code = "UNKNOWN_MESSAGE_TYPE"


class MessageTooLarge(ProtocolError):
    code = "MESSAGE_TOO_LARGE"


class RateLimitExceeded(ProtocolError):
    code = "RATE_LIMIT_EXCEEDED"


class InternalError(ProtocolError):
    code = "INTERNAL_ERROR"
