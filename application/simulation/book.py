"""A simulation's progress and record, apart from its broker and ledger: the ticks delivered,
the daily equity curve, the execution reports and refusals; as kept in a `SimulationState`,
and as taken back to a window's savepoint."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

from application.records import Refusal, Rejection, SimulationState, missed
from application.simulation.values import Missed
from application.simulation.window import Savepoint
from domain.account import BrokerState
from domain.reports import ExecutionReport
from domain.trades import LedgerState


@dataclass(slots=True)
class Book:
    """Mutable progress; kept apart so `state()` and `restored` mirror each other."""

    sequence: int = 0
    in_flight: int | None = None
    equity_curve: list[tuple[date, Decimal]] = field(default_factory=list)
    ticks_with_position: int = 0
    reports: list[ExecutionReport] = field(default_factory=list)
    finished: bool = False
    report_marks: array[int] = field(default_factory=lambda: array("q"))
    """How many reports existed once tick n+1 was delivered (index n)."""
    rejections: list[Rejection] = field(default_factory=list)

    @classmethod
    def restored(cls, state: SimulationState) -> Book:
        return cls(
            state.sequence,
            state.in_flight,
            list(state.equity_curve),
            state.ticks_with_position,
            list(state.reports),
            state.finished,
            array("q", state.report_marks),
            list(state.rejections),
        )

    def state(
        self, cursors: Mapping[str, int], broker: BrokerState, ledger: LedgerState, window: int
    ) -> SimulationState:
        """The state to keep, with the simulation's other parts as given."""
        return SimulationState(
            self.sequence,
            self.in_flight,
            tuple(cursors.items()),
            broker,
            ledger,
            tuple(self.equity_curve),
            self.ticks_with_position,
            tuple(self.reports),
            self.finished,
            tuple(self.report_marks),
            tuple(self.rejections),
            window,
        )

    def state_at(
        self, point: Savepoint, used_order_ids: tuple[str, ...], ledger: LedgerState, window: int
    ) -> SimulationState:
        """The state as of `point` (a window's savepoint): the bars stepped since are void.
        The order ids used stay used, and the refusals recorded stay recorded."""
        return SimulationState(
            point.sequence,
            None,
            tuple(point.cursors.items()),
            replace(point.broker, used_order_ids=used_order_ids),
            ledger,
            tuple(self.equity_curve[: point.curve]),
            point.ticks_with_position,
            tuple(self.reports[: point.reports]),
            False,
            tuple(self.report_marks[: point.marks]),
            tuple(self.rejections),
            window,
        )

    def rewind(self, point: Savepoint) -> None:
        """Back to `point`, nothing in flight (the curve was valued when it was taken)."""
        self.sequence = point.sequence
        self.in_flight = None
        del self.equity_curve[point.curve :]
        self.ticks_with_position = point.ticks_with_position
        del self.reports[point.reports :]
        del self.report_marks[point.marks :]

    def take_back(self, count: int, days: int, pending: list[tuple[int, date]], held: bool) -> None:
        """Undo the last `count` ticks, which produced no report, the last left in flight:
        their marks, their ticks with a position (`held`: all or none of them), and their
        `days` points of the curve, the latest, those still `pending` valuation first."""
        self.sequence -= count
        self.in_flight = self.sequence
        del self.report_marks[len(self.report_marks) - count :]
        if held:
            self.ticks_with_position -= count
        unvalued = min(days, len(pending))
        del pending[len(pending) - unvalued :]
        del self.equity_curve[len(self.equity_curve) - (days - unvalued) :]

    def reports_after(self, sequence_id: int) -> list[ExecutionReport]:
        return [r for r in self.reports if r.sequence_id > sequence_id]

    def record_refusals(self, refusals: Iterable[Refusal]) -> None:
        """Keep refusals of orders sent now, as of the last tick delivered."""
        sequence = self.sequence
        self.rejections.extend(
            Rejection(sequence, r.order_id, r.code, r.message, dict(r.details)) for r in refusals
        )

    def missed_since(self, sequence_id: int) -> Missed:
        return missed(self.reports, self.report_marks, self.rejections, sequence_id)

    def phase(self) -> str:
        """Where stepping stands, as an InvalidState names it."""
        if self.finished:
            return "completed"
        if self.in_flight is not None:
            return f"tick {self.in_flight} awaiting ack"
        return "between ticks"
