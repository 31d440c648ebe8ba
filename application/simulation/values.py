"""The values the simulation package shares: what a step delivers (`Tick`, `Step`), what a
batch of orders got (`BatchResult`), and, re-exported from `application.records` (which the
ports own), the ones durable storage keeps."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from application.records import AccountUpdates as AccountUpdates
from application.records import Missed as Missed
from application.records import Refusal as Refusal
from application.records import Rejection as Rejection
from application.records import SimulationResults as SimulationResults
from application.records import SimulationState as SimulationState
from application.records import missed as missed
from domain.bars import Bar, from_epoch
from domain.broker import ExecutionReport
from domain.errors import DomainError


class BarsAt(Mapping[str, Bar]):
    """symbol → its bar at given indices, each decoded when read (a window's bars are most
    often encoded already, and never decoded then)."""

    __slots__ = ("_at", "_bar")

    def __init__(self, at: dict[str, int], bar: Callable[[str, int], Bar]) -> None:
        self._at = at
        self._bar = bar

    @property
    def at(self) -> Mapping[str, int]:
        """symbol → the index of its bar in its series (warm-up bars first)."""
        return self._at

    def __getitem__(self, symbol: str) -> Bar:
        return self._bar(symbol, self._at[symbol])

    def __iter__(self) -> Iterator[str]:
        return iter(self._at)

    def __len__(self) -> int:
        return len(self._at)

    def __repr__(self) -> str:
        return repr(dict(self.items()))


class Tick:
    """Bar `sequence_id` of every symbol that has one at `time`, after it closed and after
    every order live on it was filled; `equity` and `cash` are marked to its closes.
    (Slotted, its `sim_time` made when read: one is made per bar stepped, and most bars
    of a window are voided unread.)"""

    __slots__ = ("bars", "cash", "equity", "is_last", "sequence_id", "time")

    def __init__(
        self,
        sequence_id: int,
        time: int,
        bars: Mapping[str, Bar],
        equity: Decimal,
        cash: Decimal,
        is_last: bool,
    ) -> None:
        self.sequence_id = sequence_id
        self.time = time
        """Epoch seconds (UTC)."""
        self.bars = bars
        """symbol → its bar (exact prices)."""
        self.equity = equity
        self.cash = cash
        self.is_last = is_last

    @property
    def sim_time(self) -> datetime:
        return from_epoch(self.time)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tick):
            return NotImplemented
        return (self.sequence_id, self.time, self.equity, self.cash, self.is_last) == (
            other.sequence_id,
            other.time,
            other.equity,
            other.cash,
            other.is_last,
        ) and self.bars == other.bars

    __hash__ = None  # type: ignore[assignment]  # (compared by value, like its bars)

    def __repr__(self) -> str:
        return (
            f"Tick({self.sequence_id}, {self.sim_time.isoformat()}, {dict(self.bars.items())}, "
            f"equity={self.equity}, cash={self.cash}, is_last={self.is_last})"
        )


class Step(NamedTuple):
    """What one `advance` produced: the reports of fills on the new bar, then its tick."""

    reports: tuple[ExecutionReport, ...]
    tick: Tick


@dataclass(slots=True)  # never changed once built; not frozen: one per order batch
class BatchResult:
    accepted: tuple[str, ...]
    rejected: Mapping[str, DomainError]
    reports: tuple[ExecutionReport, ...] = ()
    """Reports of cancels taken with the batch."""


NOTHING = BatchResult((), {})
