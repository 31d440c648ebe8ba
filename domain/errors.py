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
                "allowed_from": list(allowed),
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
