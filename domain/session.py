"""The simulation session entity and its life cycle."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any, NoReturn

from domain.bars import Timeframe
from domain.dates import DateRange
from domain.errors import InvalidState, ValidationFailed
from domain.money import CLIENT_PLACES, places_of, shown
from domain.symbols import Symbol


class SessionState(StrEnum):
    INITIALIZING = "initializing"
    READY = "ready"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    ERROR = "error"

    @property
    def is_terminal(self) -> bool:
        return not TRANSITIONS[self]


_S = SessionState
TRANSITIONS: Mapping[SessionState, frozenset[SessionState]] = MappingProxyType(
    {
        _S.INITIALIZING: frozenset({_S.READY, _S.ERROR}),
        _S.READY: frozenset({_S.RUNNING, _S.ERROR}),
        _S.RUNNING: frozenset({_S.PAUSED, _S.COMPLETED, _S.ERROR}),
        _S.PAUSED: frozenset({_S.RUNNING, _S.COMPLETED, _S.ERROR}),
        _S.COMPLETED: frozenset(),
        _S.ERROR: frozenset(),
    }
)
"""The one table of legal moves; every state change goes through it."""


def can_transition(current: SessionState, target: SessionState) -> bool:
    return target in TRANSITIONS[current]


MAX_BPS = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """How the engine fills orders (PROTOCOL.md §4.1): commission per share, as a fraction of
    traded value and a minimum per fill; slippage in basis points; the largest fraction of a
    bar's volume one order may take (None: no cap); whether short selling is allowed."""

    commission_per_share: Decimal = Decimal(0)
    slippage_bps: Decimal = Decimal(0)
    commission_pct: Decimal = Decimal(0)
    commission_min: Decimal = Decimal(0)
    max_volume_pct: Decimal | None = None
    allow_short: bool = False

    def __post_init__(self) -> None:
        for name, value, upper in (
            ("commission_per_share", self.commission_per_share, Decimal(100)),
            ("slippage_bps", self.slippage_bps, MAX_BPS),
            ("commission_pct", self.commission_pct, Decimal(1)),
            ("commission_min", self.commission_min, Decimal(10_000)),
        ):
            if not value.is_finite() or value < 0 or value > upper:
                raise ValidationFailed(
                    name, f"{name} must be between 0 and {upper}", value=shown(value)
                )
            _check_places(name, value)
        cap = self.max_volume_pct
        if cap is not None and (not cap.is_finite() or cap <= 0 or cap > 1):
            raise ValidationFailed(
                "max_volume_pct",
                "max_volume_pct must be above 0 and at most 1 (a fraction of the bar's volume)",
                value=shown(cap),
            )
        if cap is not None:
            _check_places("max_volume_pct", cap)


def _check_places(name: str, value: Decimal) -> None:
    """At most CLIENT_PLACES decimal places, as every number of an order (domain.money)."""
    if places_of(value) > CLIENT_PLACES:
        raise ValidationFailed(
            name,
            f"{name} has at most {CLIENT_PLACES} decimal places",
            value=shown(value),
            max_places=CLIENT_PLACES,
        )


@dataclass(frozen=True, slots=True)
class SessionParams:
    """What a user asks for when creating a session, already parsed but not yet validated."""

    symbols: tuple[str, ...]
    date_range: DateRange
    initial_capital: Decimal
    metadata: Mapping[str, Any] = field(default_factory=dict)
    engine: EngineSettings = field(default_factory=EngineSettings)
    timeframe: Timeframe = Timeframe.D1


@dataclass(slots=True, eq=False)
class SimulationSession:
    """One user's simulation: what it trades, over which period, with what money, and where
    it is in its life cycle. Identity is `id`."""

    id: str
    owner: str
    symbols: tuple[Symbol, ...]
    date_range: DateRange
    initial_capital: Decimal
    created_at: datetime
    idle_timeout: timedelta
    metadata: Mapping[str, Any] = field(default_factory=dict)
    engine: EngineSettings = field(default_factory=EngineSettings)
    timeframe: Timeframe = Timeframe.D1
    estimated_trading_days: int = 0
    total_bars: int = 0
    warnings: tuple[str, ...] = ()
    currency: str = "USD"
    """What the instruments are quoted in (and the capital counted in), or `mixed`."""
    state: SessionState = SessionState.INITIALIZING
    updated_at: datetime = field(init=False)
    expires_at: datetime = field(init=False)
    error_reason: str | None = None

    def __post_init__(self) -> None:
        self.updated_at = self.created_at
        self.expires_at = self.created_at + self.idle_timeout

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SimulationSession) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def is_active(self) -> bool:
        """Counts against the owner's active-session limit."""
        return not self.state.is_terminal

    def mark_ready(self) -> None:
        self._move(SessionState.READY, "mark ready")

    def start(self) -> None:
        if self.state is not SessionState.READY:
            self._refuse("start", (SessionState.READY,))
        self._move(SessionState.RUNNING, "start")

    def pause(self) -> None:
        self._move(SessionState.PAUSED, "pause")

    def resume(self) -> None:
        if self.state is not SessionState.PAUSED:
            self._refuse("resume", (SessionState.PAUSED,))
        self._move(SessionState.RUNNING, "resume")

    def complete(self) -> None:
        self._move(SessionState.COMPLETED, "complete")

    def fail(self, reason: str) -> None:
        self._move(SessionState.ERROR, "fail")
        self.error_reason = reason

    def touch(self, now: datetime) -> None:
        """Record activity: the idle clock starts again from `now`."""
        self.updated_at = max(self.updated_at, now)
        self.expires_at = self.updated_at + self.idle_timeout

    def is_expired(self, now: datetime, timeout: timedelta | None = None) -> bool:
        """Idle past the session's own timeout, or past `timeout` when one is given."""
        if timeout is None:
            return now >= self.expires_at
        return now >= self.updated_at + timeout

    def transition_to(self, target: SessionState) -> None:
        """Move to `target` by whichever action leads there (for callers holding a state)."""
        actions = {
            SessionState.READY: self.mark_ready,
            SessionState.RUNNING: self.resume if self.state is SessionState.PAUSED else self.start,
            SessionState.PAUSED: self.pause,
            SessionState.COMPLETED: self.complete,
        }
        if target is SessionState.ERROR:
            self.fail("failed on request")
        elif target is SessionState.INITIALIZING:
            self._refuse("reinitialise", ())
        else:
            actions[target]()

    def _move(self, target: SessionState, action: str) -> None:
        if not can_transition(self.state, target):
            self._refuse(action, tuple(s for s, nxt in TRANSITIONS.items() if target in nxt))
        self.state = target

    def _refuse(self, action: str, allowed: tuple[SessionState, ...]) -> NoReturn:
        raise InvalidState(self.id, self.state.value, action, [s.value for s in allowed])
