"""What a window of bars in flight keeps (PROTOCOL §7.14): where the simulation stood at the
last bar acknowledged, to go back to when an ack voids the bars after it."""

from __future__ import annotations

from dataclasses import dataclass

from domain.broker import BrokerState
from domain.trades import OpenLot


@dataclass(slots=True, frozen=True)
class Savepoint:
    """The simulation between ticks, before a window was stepped: what going back to it
    needs (lists that only grow are kept as their lengths)."""

    sequence: int
    cursors: dict[str, int]
    present: tuple[str, ...]
    broker: BrokerState
    """Synced: its clock and marks are those of bar `sequence`."""
    ledger: tuple[dict[str, list[OpenLot]], int]
    curve: int
    ticks_with_position: int
    reports: int
    marks: int


@dataclass(slots=True)
class Window:
    """Bars `first`..`last` delivered at once, stepped ahead of the last acknowledged bar
    (`point`); an ack may name any of them, the bars after it are void."""

    first: int
    last: int
    point: Savepoint
    worked: int = 0
    """The last bar of the window on which the broker was worked (it had open orders), 0 if
    none: the bars after it moved nothing but the cursors and the book."""
