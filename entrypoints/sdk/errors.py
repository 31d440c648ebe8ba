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
        """How reaching the server failed: `connect`, `timeout`, `http_status` or
        `unexpected_response`."""
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
    """No symbols given (`symbols` empty or absent)."""

    code = "MISSING_SYMBOLS"


class InvalidSymbolError(SessionError):
    """One or more symbols are unknown to the server's catalog: `invalid_symbols` lists them,
    `supported_markets` the exchanges it covers."""

    code = "INVALID_SYMBOL"

    @property
    def invalid_symbols(self) -> list[str]:
        """The symbols refused, as sent."""
        return [str(s) for s in self.details.get("invalid_symbols", [])]

    @property
    def supported_markets(self) -> list[str]:
        """The exchanges the server's catalog covers."""
        return [str(s) for s in self.details.get("supported_markets", [])]


class TooManySymbolsError(SessionError):
    """More symbols than the plan allows (`details`: `requested`, `max_symbols`)."""

    code = "TOO_MANY_SYMBOLS"


class InvalidDateRangeError(SessionError):
    """The dates do not make a usable range: unparsable, start not before end, longer than
    allowed, outside a symbol's stored bars, or without a trading day. `details.field` names
    the date to change; outside the data, `available_from` and `available_to` say where
    the bars are."""

    code = "INVALID_DATE_RANGE"


class InsufficientCapitalError(SessionError):
    """The initial capital is below the server's minimum (`details.min_capital`)."""

    code = "INSUFFICIENT_CAPITAL"


class ExcessiveCapitalError(SessionError):
    """The initial capital is above the server's maximum (`details.max_capital`)."""

    code = "EXCESSIVE_CAPITAL"


class SessionLimitExceededError(SessionError):
    """Too many active sessions, or too many created this hour (then `retry_after_ms`)."""

    code = "SESSION_LIMIT_EXCEEDED"

    @property
    def retry_after_ms(self) -> int | None:
        """Milliseconds to wait before trying again, when the server said; else None."""
        value = self.details.get("retry_after_ms")
        return int(value) if isinstance(value, int | float) else None


class SessionNotFoundError(SessionError):
    """No such session: unknown, deleted or expired (`details.session_id`)."""

    code = "SESSION_NOT_FOUND"


class AccessDeniedError(SessionError):
    """The session belongs to another user."""

    code = "ACCESS_DENIED"


class InvalidStateError(SessionError):
    """The action is not allowed in the session's state (`details`: `state`, `action`,
    `allowed_from`), e.g. results asked before the simulation completed."""

    code = "INVALID_STATE"


class ValidationFailedError(SessionError):
    """Any other refused value (capital form, engine setting, timeframe, metadata, …);
    `field` names it."""

    code = "VALIDATION_FAILED"

    @property
    def field(self) -> str | None:
        """The name of the refused field, when the server gave one."""
        value = self.details.get("field")
        return str(value) if value is not None else None


class ProtocolError(SessionError):
    """An `error` reply: the frame itself was refused. `recoverable` is the server's word on
    whether the connection is still good (it always is for the codes below)."""

    code = "PROTOCOL_ERROR"
    recoverable: bool = True


class InvalidMessageError(ProtocolError):
    """The frame could not be decoded as a request (`details.path` points at the fault)."""

    code = "INVALID_MESSAGE"


class UnknownMessageTypeError(ProtocolError):
    """The frame's `type` is not a request the server knows (`details.supported_types`)."""

    code = "UNKNOWN_MESSAGE_TYPE"


class MessageTooLargeError(ProtocolError):
    """The frame was larger than `max_message_bytes` (`details`: `size`, `max_bytes`)."""

    code = "MESSAGE_TOO_LARGE"


class RateLimitExceededError(ProtocolError):
    """Over the connection's message budget (`messages_per_minute`); `retry_after_ms`
    says when a message is allowed again."""

    code = "RATE_LIMIT_EXCEEDED"

    @property
    def retry_after_ms(self) -> int | None:
        """Milliseconds to wait before trying again, when the server said; else None."""
        value = self.details.get("retry_after_ms")
        return int(value) if isinstance(value, int | float) else None


class InternalServerError(ProtocolError):
    """A fault of the server (logged there, never sent as a traceback); with a
    `details.session_id` the engine failed on that simulation, whose session is now `error`."""

    code = "INTERNAL_ERROR"


class DataUnavailableError(SessionError):
    """The server holds no bars of a symbol at the timeframe asked for."""

    code = "DATA_UNAVAILABLE"


class InvalidOrderError(SessionError):
    """An order breaks a rule of the engine (protocol §7.5); `details.field` names the part."""

    code = "INVALID_ORDER"


class DuplicateOrderIdError(SessionError):
    """The order id (or a bracket id it reserves) is already used in the session."""

    code = "DUPLICATE_ORDER_ID"


class OrderNotFoundError(SessionError):
    """The order to cancel is not open (`details.order_id`)."""

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
