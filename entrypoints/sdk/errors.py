"""Every failure the SDK reports, each with a stable `code` (PROTOCOL.md) and a message.

Replies of type `session_error` and `error` become a `SessionError` subclass chosen by one
table (`ERROR_CLASSES`), never by matching message text. Transport problems have their own
classes: `AuthenticationError`, `ServerUnreachableError`, `ConnectionLostError`,
`RequestTimeoutError`, `TooManyConnectionsError`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class SimuTradorError(Exception):
    """Base of everything the SDK raises on purpose. `code` is stable; `message` is for people."""

    code: str = "CLIENT_ERROR"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = dict(details or {})

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


# ---------------------------------------------------------------- authentication / transport


class AuthenticationError(SimuTradorError):
    """No usable token: the API key was refused (`INVALID_API_KEY`), the server refused the
    token (`INVALID_TOKEN`), no key was given (`NO_API_KEY`), or the server could not be
    reached to get one (`SERVER_UNREACHABLE`, see `ServerUnreachableError`)."""

    code = "AUTHENTICATION_FAILED"


class ServerUnreachableError(AuthenticationError):
    """Nothing usable answered at the server URL. `details["reason"]` says how it failed:
    `connect` (refused, DNS, TLS: is it running?), `timeout` (something accepted the
    connection but did not answer in time) or `http_status` (a 5xx: maybe passing).

    A subclass of `AuthenticationError` because every connection starts by authenticating:
    an unreachable server means no token could be obtained."""

    code = "SERVER_UNREACHABLE"

    @property
    def reason(self) -> str:
        return str(self.details.get("reason", "connect"))


class UnexpectedResponseError(ServerUnreachableError):
    """Something answered at the server URL, definitely not as a SimuTrador server does
    (HTTP 404, an unreadable body): the URL is wrong. Never retried, since asking again
    gets the same answer. `details["status"]` is the HTTP status when there was one."""

    code = "UNEXPECTED_RESPONSE"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            message, code=code, details={"reason": "unexpected_response", **(details or {})}
        )


class ConnectionLostError(SimuTradorError):
    """The WebSocket closed while a request was in flight. The request may or may not have
    been carried out; the next call reconnects. `close_code` is the WebSocket close code
    (1001 server shutdown, 1006 dropped without a close frame, …) when one is known."""

    code = "CONNECTION_LOST"

    def __init__(self, message: str, *, close_code: int | None = None, reason: str = "") -> None:
        super().__init__(message, details={"close_code": close_code, "reason": reason})
        self.close_code = close_code
        self.reason = reason


class TooManyConnectionsError(SimuTradorError):
    """The server closed the new connection with 4029: the plan's connection limit is reached."""

    code = "TOO_MANY_CONNECTIONS"


class ClientClosedError(SimuTradorError):
    """A call on a `SessionClient` after `close()` (or after its `async with` block ended)."""

    code = "CLIENT_CLOSED"


class RequestTimeoutError(SimuTradorError, TimeoutError):
    """No reply within the call's timeout. The request may still be carried out."""

    code = "REQUEST_TIMEOUT"


class UnexpectedReplyError(SimuTradorError):
    """The server answered with a message this SDK cannot read or did not expect."""

    code = "UNEXPECTED_REPLY"


# ---------------------------------------------------------------- refused requests


class SessionError(SimuTradorError):
    """A request the server refused (`session_error` or `error` reply). The connection is
    still usable. `request_id` is the id of the refused request."""

    code: str = "SESSION_ERROR"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.request_id = request_id


class MissingSymbolsError(SessionError):
    code = "MISSING_SYMBOLS"


class InvalidSymbolError(SessionError):
    code = "INVALID_SYMBOL"

    @property
    def invalid_symbols(self) -> list[str]:
        return [str(s) for s in self.details.get("invalid_symbols", [])]

    @property
    def supported_markets(self) -> list[str]:
        return [str(s) for s in self.details.get("supported_markets", [])]


class TooManySymbolsError(SessionError):
    code = "TOO_MANY_SYMBOLS"


class InvalidDateRangeError(SessionError):
    code = "INVALID_DATE_RANGE"


class InsufficientCapitalError(SessionError):
    code = "INSUFFICIENT_CAPITAL"


class ExcessiveCapitalError(SessionError):
    code = "EXCESSIVE_CAPITAL"


class SessionLimitExceededError(SessionError):
    """Too many active sessions, or too many created this hour (then `retry_after_ms`)."""

    code = "SESSION_LIMIT_EXCEEDED"

    @property
    def retry_after_ms(self) -> int | None:
        value = self.details.get("retry_after_ms")
        return int(value) if isinstance(value, int | float) else None


class SessionNotFoundError(SessionError):
    code = "SESSION_NOT_FOUND"


class AccessDeniedError(SessionError):
    code = "ACCESS_DENIED"


class InvalidStateError(SessionError):
    code = "INVALID_STATE"


class ValidationFailedError(SessionError):
    code = "VALIDATION_FAILED"

    @property
    def field(self) -> str | None:
        value = self.details.get("field")
        return str(value) if value is not None else None


class ProtocolError(SessionError):
    """An `error` reply: the frame itself was refused. `recoverable` is the server's word on
    whether the connection is still good (it always is for the codes below)."""

    code = "PROTOCOL_ERROR"
    recoverable: bool = True


class InvalidMessageError(ProtocolError):
    code = "INVALID_MESSAGE"


class UnknownMessageTypeError(ProtocolError):
    code = "UNKNOWN_MESSAGE_TYPE"


class MessageTooLargeError(ProtocolError):
    code = "MESSAGE_TOO_LARGE"


class RateLimitExceededError(ProtocolError):
    code = "RATE_LIMIT_EXCEEDED"

    @property
    def retry_after_ms(self) -> int | None:
        value = self.details.get("retry_after_ms")
        return int(value) if isinstance(value, int | float) else None


class InternalServerError(ProtocolError):
    code = "INTERNAL_ERROR"


class DataUnavailableError(SessionError):
    """The server holds no bars of a symbol at the timeframe asked for."""

    code = "DATA_UNAVAILABLE"


class InvalidOrderError(SessionError):
    code = "INVALID_ORDER"


class DuplicateOrderIdError(SessionError):
    code = "DUPLICATE_ORDER_ID"


class OrderNotFoundError(SessionError):
    code = "ORDER_NOT_FOUND"


class InvalidSequenceError(SessionError):
    """A tick_ack for another tick than the one in flight (`details.expected`)."""

    code = "INVALID_SEQUENCE"


class SessionBusyError(SessionError):
    """Another connection drives this simulation."""

    code = "SESSION_BUSY"


ERROR_CLASSES: Mapping[str, type[SessionError]] = {
    cls.code: cls
    for cls in (
        MissingSymbolsError,
        InvalidSymbolError,
        TooManySymbolsError,
        InvalidDateRangeError,
        DataUnavailableError,
        InvalidOrderError,
        DuplicateOrderIdError,
        OrderNotFoundError,
        InvalidSequenceError,
        SessionBusyError,
        InsufficientCapitalError,
        ExcessiveCapitalError,
        SessionLimitExceededError,
        SessionNotFoundError,
        AccessDeniedError,
        InvalidStateError,
        ValidationFailedError,
        InvalidMessageError,
        UnknownMessageTypeError,
        MessageTooLargeError,
        RateLimitExceededError,
        InternalServerError,
    )
}
"""Wire code → exception class, for every code PROTOCOL.md names."""


def error_from_reply(
    code: str,
    message: str,
    details: Mapping[str, Any] | None = None,
    *,
    request_id: str | None = None,
    protocol_level: bool = False,
    recoverable: bool = True,
) -> SessionError:
    """The exception for one refused request. A code this SDK does not know yet still gives a
    `SessionError` (or `ProtocolError` for an `error` reply) carrying that code."""
    cls = ERROR_CLASSES.get(code) or (ProtocolError if protocol_level else SessionError)
    error = cls(message, code=code, details=details, request_id=request_id)
    if isinstance(error, ProtocolError):
        error.recoverable = recoverable
    return error
