"""Every rejection the core can make, each with a stable wire code (PROTOCOL.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar


class DomainError(Exception):
    """Base of all rejections. `code` is stable and travels on the wire."""

    code: ClassVar[str] = "VALIDATION_FAILED"

    def __init__(self, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}: {self.message!r}, {self.details!r})"


class MissingSymbols(DomainError):
    code = "MISSING_SYMBOLS"

    def __init__(self) -> None:
        super().__init__("At least one symbol is required", {"field": "symbols"})


class InvalidSymbol(DomainError):
    code = "INVALID_SYMBOL"

    def __init__(self, invalid_symbols: Sequence[str], supported_markets: Sequence[str]) -> None:
        shown = ", ".join(f"'{s}'" for s in invalid_symbols)
        noun = "Symbol" if len(invalid_symbols) == 1 else "Symbols"
        verb = "is" if len(invalid_symbols) == 1 else "are"
        super().__init__(
            f"{noun} {shown} {verb} not supported",
            {
                "invalid_symbols": list(invalid_symbols),
                "supported_markets": list(supported_markets),
            },
        )
        self.invalid_symbols = tuple(invalid_symbols)


class TooManySymbols(DomainError):
    code = "TOO_MANY_SYMBOLS"

    def __init__(self, requested: int, maximum: int) -> None:
        super().__init__(
            f"{requested} symbols requested; your plan allows at most {maximum} per session",
            {"requested": requested, "max_symbols": maximum},
        )


class InvalidDateRange(DomainError):
    code = "INVALID_DATE_RANGE"


class InsufficientCapital(DomainError):
    code = "INSUFFICIENT_CAPITAL"

    def __init__(self, requested: str, minimum: str) -> None:
        super().__init__(
            f"Initial capital {requested} is below the minimum of {minimum}",
            {"initial_capital": requested, "min_capital": minimum},
        )


class ExcessiveCapital(DomainError):
    code = "EXCESSIVE_CAPITAL"

    def __init__(self, requested: str, maximum: str) -> None:
        super().__init__(
            f"Initial capital {requested} is above the maximum of {maximum}",
            {"initial_capital": requested, "max_capital": maximum},
        )


class SessionLimitExceeded(DomainError):
    code = "SESSION_LIMIT_EXCEEDED"


class SessionNotFound(DomainError):
    code = "SESSION_NOT_FOUND"

    def __init__(self, session_id: str) -> None:
        super().__init__(f"Session '{session_id}' not found", {"session_id": session_id})


class AccessDenied(DomainError):
    code = "ACCESS_DENIED"

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"Session '{session_id}' belongs to another user", {"session_id": session_id}
        )


class InvalidState(DomainError):
    code = "INVALID_STATE"

    def __init__(self, session_id: str, current: str, action: str, allowed: Sequence[str]) -> None:
        super().__init__(
            f"Cannot {action} session '{session_id}' in state '{current}'",
            {
                "session_id": session_id,
                "state": current,
                "action": action,
                "allowed": list(allowed),
                "allowed_from": list(allowed),  # the name v1 used; kept for its clients
            },
        )


class ValidationFailed(DomainError):
    code = "VALIDATION_FAILED"

    def __init__(self, field: str, message: str, **details: Any) -> None:
        super().__init__(message, {"field": field, **details})
        self.field = field


class AuthenticationFailed(DomainError):
    """An API key or token was refused. Never says which part was wrong beyond `reason`."""

    code = "INVALID_API_KEY"


class InvalidToken(AuthenticationFailed):
    code = "INVALID_TOKEN"


class DataUnavailable(DomainError):
    """The catalog knows the symbol, but the store holds no bar of it at that timeframe."""

    code = "DATA_UNAVAILABLE"

    def __init__(self, symbol: str, timeframe: str) -> None:
        super().__init__(
            f"No {timeframe} bars are stored for {symbol}",
            {"symbol": symbol, "timeframe": timeframe},
        )


class DataConflict(DomainError):
    """Bars to store collide with bars already stored (and replacing was not asked for)."""

    code = "DATA_CONFLICT"


class InvalidBars(DomainError):
    """Bars that break the rules of PROTOCOL.md §5; `details.problems` lists them."""

    code = "INVALID_BARS"


class InvalidOrder(DomainError):
    code = "INVALID_ORDER"

    def __init__(self, field: str, message: str, **details: Any) -> None:
        super().__init__(message, {"field": field, **details})
        self.field = field


class DuplicateOrderId(DomainError):
    code = "DUPLICATE_ORDER_ID"

    def __init__(self, order_id: str) -> None:
        super().__init__(
            f"Order id '{order_id}' is already used in this session", {"order_id": order_id}
        )


class OrderNotFound(DomainError):
    code = "ORDER_NOT_FOUND"

    def __init__(self, order_id: str) -> None:
        super().__init__(f"No open order '{order_id}'", {"order_id": order_id})


class InvalidSequence(DomainError):
    code = "INVALID_SEQUENCE"

    def __init__(self, expected: int, received: int) -> None:
        super().__init__(
            f"tick_ack for sequence {received}, but the tick in flight is {expected}",
            {"expected": expected, "received": received},
        )


class SessionBusy(DomainError):
    code = "SESSION_BUSY"

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"Session '{session_id}' is driven by another connection",
            {"session_id": session_id},
        )


class OrderFailed(DomainError):
    """The engine failed on this one order (a fault of ours, logged): the order is refused
    and the simulation goes on."""

    code = "INTERNAL_ERROR"

    def __init__(self, order_id: str) -> None:
        super().__init__(
            f"The server failed to handle order '{order_id}'; it has been logged and the "
            "order is refused",
            {"order_id": order_id},
        )
