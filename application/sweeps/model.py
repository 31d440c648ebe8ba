"""The values a sweep passes around: trials, their outcomes, and its typed errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar

ParamValue = int | Decimal | str
Params = Mapping[str, ParamValue]
MetricValue = float | Decimal | int | None
EquityCurve = tuple[tuple[date, Decimal], ...]


class InvalidSweep(ValueError):
    """The sweep cannot start as asked (unknown parameter, empty grid, unknown metric…):
    nothing has run. Client-side only (no server sees a sweep), so not a `DomainError`,
    whose codes are the wire's; it carries a code and details all the same."""

    code: ClassVar[str] = "INVALID_SWEEP"

    def __init__(self, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})


class TrialStatus(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Window:
    """The inclusive days a trial runs over (ISO dates), when not the sweep's whole range."""

    start: str
    end: str


@dataclass(frozen=True, slots=True)
class Trial:
    """One set of parameters to run; `number` orders trials stably (grid order)."""

    number: int
    params: Params
    window: Window | None = None


@dataclass(frozen=True, slots=True)
class TrialOutcome:
    """What one trial produced: the run's metrics (by name, as the engine reports them) and
    daily equity, or the error that ended it ("file:line: Type: message")."""

    number: int
    params: Params
    status: TrialStatus
    metrics: Mapping[str, MetricValue] = field(default_factory=dict)
    equity: EquityCurve = ()
    error: str | None = None
    attempts: int = 1

    @property
    def completed(self) -> bool:
        return self.status is TrialStatus.COMPLETED

    def metric(self, name: str) -> MetricValue:
        return self.metrics.get(name)

    def with_attempts(self, attempts: int) -> TrialOutcome:
        return TrialOutcome(
            self.number,
            self.params,
            self.status,
            self.metrics,
            self.equity,
            self.error,
            attempts,
        )


def failed(trial: Trial, error: str, attempts: int = 1) -> TrialOutcome:
    return TrialOutcome(
        trial.number, trial.params, TrialStatus.FAILED, error=error, attempts=attempts
    )


def plain(value: Any) -> Any:
    """A parameter value as a JSON-friendly scalar (decimals stay exact, as text)."""
    return str(value) if isinstance(value, Decimal) else value
