"""One session's simulation, stepped bar by bar with one tick in flight (PROTOCOL.md §4):
`advance` fills the live orders on the next bar and delivers it; `acknowledge` takes the
orders sent since, live from the bar after. Bars are held columnar; state snapshots."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from application.benchmark import buy_and_hold_curve, shortest_bar
from application.records import Refusal, Rejection, SimulationResults, SimulationState, missed
from application.simulation.values import (
    NOTHING,
    AccountUpdates,
    BatchResult,
    Missed,
    Step,
    Tick,
)
from domain.bars import Bar, BarSeries, from_epoch, union_times
from domain.broker import BarQuote, Broker, ExecutionReport
from domain.errors import DomainError, InvalidSequence, InvalidState
from domain.exchanges import ExchangeHours, trading_day_runs
from domain.metrics import compute_metrics
from domain.orders import OrderRequest
from domain.session import EngineSettings
from domain.trades import TradeLedger


@dataclass(slots=True)
class _Book:
    """Mutable progress; kept apart so `state()` and `restore` mirror each other."""

    sequence: int = 0
    in_flight: int | None = None
    equity_curve: list[tuple[date, Decimal]] = field(default_factory=list)
    ticks_with_position: int = 0
    reports: list[ExecutionReport] = field(default_factory=list)
    finished: bool = False
    report_marks: array[int] = field(default_factory=lambda: array("q"))
    """How many reports existed once tick n+1 was delivered (index n)."""
    rejections: list[Rejection] = field(default_factory=list)


class Simulation:
    """The bar-stepping core shared by every driver (in process and over the WebSocket).

    `series[symbol]` holds the warm-up bars followed by the tradable ones; `first_tradable`
    says where trading starts. `ticks` are the distinct closes of the tradable bars."""

    def __init__(
        self,
        session_id: str,
        series: Mapping[str, BarSeries],
        first_tradable: Mapping[str, int],
        lot_sizes: Mapping[str, Decimal],
        hours: ExchangeHours,
        initial_capital: Decimal,
        settings: EngineSettings,
        account_updates: AccountUpdates = AccountUpdates.ON_FILL,
    ) -> None:
        self.session_id = session_id
        self.series = dict(series)
        self.first_tradable = dict(first_tradable)
        self.symbols = tuple(self.series)
        self.initial_capital = initial_capital
        self.settings = settings
        self.account_updates = account_updates
        self.broker = Broker(initial_capital, lot_sizes, settings)
        self.ledger = TradeLedger()
        self._lot_sizes = dict(lot_sizes)
        self.ticks = array(
            "q",
            union_times(
                [s.slice(self.first_tradable[sym], len(s)) for sym, s in self.series.items()]
            ),
        )
        # Index of each day's last tick → that trading day: where the equity curve gets a
        # point. Kept per day, not per bar.
        self._day_closes = {
            end - 1: date.fromordinal(ordinal)
            for end, ordinal in trading_day_runs(self.ticks, hours)
        }
        # Per symbol, the indices of bars that end their trading day (None: every bar does,
        # as with daily bars), for `day` orders.
        self._symbol_day_ends: dict[str, frozenset[int] | None] = {
            sym: frozenset(end - 1 for end, _ in trading_day_runs(s.times, hours))
            if s.timeframe.is_intraday
            else None
            for sym, s in self.series.items()
        }
        chunk = max(16, min(256, _DECODED_BARS_HELD // max(len(self.series), 1)))
        self._decoded = {sym: _DecodedBars(s, chunk) for sym, s in self.series.items()}
        self._cursors = dict(self.first_tradable)
        self._book = _Book()

    # ------------------------------------------------------------------ progress

    @property
    def total_ticks(self) -> int:
        return len(self.ticks)

    @property
    def sequence(self) -> int:
        """The last tick delivered (0 before the first)."""
        return self._book.sequence

    @property
    def in_flight(self) -> int | None:
        """The tick awaiting its ack, if any."""
        return self._book.in_flight

    @property
    def finished(self) -> bool:
        return self._book.finished

    @property
    def reports(self) -> Sequence[ExecutionReport]:
        """Every execution report so far, in order."""
        return self._book.reports

    @property
    def sim_time(self) -> datetime | None:
        seq = self._book.sequence
        return from_epoch(self.ticks[seq - 1]) if seq else None

    @property
    def done_stepping(self) -> bool:
        """The last tick was delivered and acknowledged: only `finish` is left."""
        return self._book.sequence >= len(self.ticks) and self._book.in_flight is None

    # ------------------------------------------------------------------ stepping

    def advance(self) -> Step:
        """Fill the live orders on the next bar, mark to its close, and deliver it."""
        book = self._book
        if book.finished or book.in_flight is not None or book.sequence >= len(self.ticks):
            raise InvalidState(self.session_id, self._phase(), "advance", ["tick acknowledged"])
        sequence = book.sequence + 1
        t = self.ticks[sequence - 1]
        broker = self.broker
        cursors = self._cursors
        bars: dict[str, Bar] = {}
        rows: dict[str, int] = {}
        bar = None
        for symbol, series in self.series.items():
            i = cursors[symbol]
            if i < len(series.times) and series.times[i] == t:
                bars[symbol] = bar = self._decoded[symbol].at(i)
                rows[symbol] = i
                cursors[symbol] = i + 1
        # Every tick is some symbol's bar close (ticks are the union of them).
        sim_time = bar.time if bar is not None else datetime.fromtimestamp(t, UTC)
        reports: tuple[ExecutionReport, ...] = ()
        quotes = None
        if not broker.is_idle:  # most bars of most strategies: nothing to fill or mark
            active = broker.active_symbols
            quotes = {
                symbol: self._quote(symbol, bars[symbol], i)
                for symbol, i in rows.items()
                if symbol in active
            }
        if quotes:
            reports = tuple(broker.process_bar(sequence, sim_time, quotes))
            self._record(reports)
        else:
            broker.at(sequence, sim_time)
        if broker.has_positions:
            book.ticks_with_position += 1
        equity = broker.equity
        day = self._day_closes.get(sequence - 1)
        if day is not None:
            book.equity_curve.append((day, equity))
        book.sequence = sequence
        book.in_flight = sequence
        book.report_marks.append(len(book.reports))
        tick = Tick(sequence, t, sim_time, bars, equity, broker.cash, sequence == len(self.ticks))
        return Step(reports, tick)

    def pending_tick(self) -> Tick | None:
        """The tick in flight, built again (to send it once more after a pause or a
        reconnection): nothing has changed since it was delivered."""
        sequence = self._book.in_flight
        if sequence is None:
            return None
        t = self.ticks[sequence - 1]
        bars = {}
        for symbol, series in self.series.items():
            i = self._cursors[symbol] - 1
            if i >= self.first_tradable[symbol] and series.times[i] == t:
                bars[symbol] = self._decoded[symbol].at(i)
        broker = self.broker
        return Tick(
            sequence,
            t,
            from_epoch(t),
            bars,
            broker.equity,
            broker.cash,
            sequence == len(self.ticks),
        )

    @property
    def next_sequence_id(self) -> int:
        """The tick that awaits an ack (or comes next)."""
        return self._book.in_flight or self._book.sequence + 1

    def history(self) -> dict[str, list[Bar]]:
        """The warm-up bars of each symbol (before the first tradable bar)."""
        return {
            symbol: [self._decoded[symbol].at(i) for i in range(self.first_tradable[symbol])]
            for symbol in self.symbols
        }

    def acknowledge(
        self,
        sequence_id: int,
        orders: Sequence[OrderRequest] = (),
        cancels: Sequence[str] = (),
    ) -> BatchResult:
        """Close tick `sequence_id`; `orders` and `cancels` take effect from the next bar."""
        if self._book.in_flight is None or sequence_id != self._book.in_flight:
            expected = self._book.in_flight or self._book.sequence + 1
            raise InvalidSequence(expected, sequence_id)
        result = self.submit(orders, cancels) if orders or cancels else NOTHING
        self._book.in_flight = None
        return result

    def submit(self, orders: Sequence[OrderRequest], cancels: Sequence[str] = ()) -> BatchResult:
        """Take orders now: live from the bar after the last one delivered."""
        if self._book.finished:
            raise InvalidState(self.session_id, "completed", "submit orders", ["running"])
        accepted: list[str] = []
        rejected: dict[str, DomainError] = {}
        live_from = self._book.sequence + 1
        for request in orders:
            try:
                self.broker.submit(request, live_from)
            except DomainError as exc:
                rejected[request.order_id] = exc
            else:
                accepted.append(request.order_id)
        reports: list[ExecutionReport] = []
        for order_id in cancels:
            try:
                reports.append(self.broker.cancel(order_id))
            except DomainError as exc:
                rejected[order_id] = exc
        self._record(reports)
        return BatchResult(tuple(accepted), rejected, tuple(reports))

    def cancel(self, order_id: str) -> ExecutionReport:
        report = self.broker.cancel(order_id)
        self._record([report])
        return report

    def finish(self) -> list[ExecutionReport]:
        """End of data: open orders are cancelled (reported); positions stay marked."""
        if self._book.finished:
            return []
        if not self.done_stepping:
            raise InvalidState(self.session_id, self._phase(), "finish", ["last tick acked"])
        t = self.ticks[-1] if self.ticks else 0
        reports = self.broker.finish(self._book.sequence, from_epoch(t))
        self._record(reports)
        self._book.finished = True
        return reports

    def results(self) -> SimulationResults:
        book = self._book
        curve = book.equity_curve
        # Metrics come from exactly the published daily curve (§4.6), so anyone holding the
        # results can recompute them. With daily bars its first point is the initial
        # capital: no order can fill on the first bar.
        daily = [e for _, e in curve] or [self.initial_capital]
        # The ticks where the curve has its points: the benchmark is valued at the same ones.
        instants = [self.ticks[k] for k in sorted(self._day_closes) if k < book.sequence]
        metrics = compute_metrics(
            daily,
            self.ledger.trades,
            bars_total=book.sequence,
            bars_with_position=book.ticks_with_position,
            total_commission=self.broker.total_commission,
            total_slippage=self.broker.total_slippage,
            days=[day for day, _ in curve] or None,
            buy_and_hold=buy_and_hold_curve(self.series, self.first_tradable, instants),
            bar_length=shortest_bar(self.series),
        )
        return SimulationResults(
            metrics,
            tuple(curve),
            tuple(self.ledger.trades),
            sum(1 for r in book.reports if r.is_fill),
            len(self.ticks),
            self.sim_time,
        )

    # ------------------------------------------------------------------ views

    def bar_window(self, symbol: str, n: int, column: str = "close") -> list[Decimal]:
        """The last `n` values of a column up to and including the current bar (warm-up
        bars included); fewer when there are not that many yet."""
        series = self.series[symbol]
        end = self._cursors[symbol]
        values = getattr(series, _COLUMN[column])[max(0, end - n) : end]
        if column == "volume":
            return [series.volume(v) for v in values]
        return [series.price(v) for v in values]

    def reports_after(self, sequence_id: int) -> list[ExecutionReport]:
        return [r for r in self._book.reports if r.sequence_id > sequence_id]

    def record_rejections(self, refused: Mapping[str, DomainError]) -> None:
        """Keep the refusals of orders sent now (see `missed_since`)."""
        self.record_refusals(Refusal.of(order_id, e) for order_id, e in refused.items())

    def record_refusals(self, refusals: Iterable[Refusal]) -> None:
        sequence = self._book.sequence
        self._book.rejections.extend(
            Rejection(sequence, r.order_id, r.code, r.message, dict(r.details)) for r in refusals
        )

    def missed_since(self, sequence_id: int) -> Missed:
        """Everything recorded after tick `sequence_id` was delivered: its fills are
        later, but so are the cancels and refusals of the orders sent in reply to it."""
        book = self._book
        return missed(book.reports, book.report_marks, book.rejections, sequence_id)

    # ------------------------------------------------------------------ snapshot

    def state(self) -> SimulationState:
        book = self._book
        return SimulationState(
            book.sequence,
            book.in_flight,
            tuple(self._cursors.items()),
            self.broker.state(),
            self.ledger.state(),
            tuple(book.equity_curve),
            book.ticks_with_position,
            tuple(book.reports),
            book.finished,
            tuple(book.report_marks),
            tuple(book.rejections),
        )

    def restore(self, state: SimulationState) -> None:
        """Continue from `state` (taken from a simulation over the same bars and settings)."""
        self.broker = Broker.restore(state.broker, self._lot_sizes, self.settings)
        self.ledger = TradeLedger.restore(state.ledger)
        self._cursors = dict(state.cursors)
        self._book = _Book(
            state.sequence,
            state.in_flight,
            list(state.equity_curve),
            state.ticks_with_position,
            list(state.reports),
            state.finished,
            array("q", state.report_marks),
            list(state.rejections),
        )

    # ------------------------------------------------------------------ internals

    def _quote(self, symbol: str, bar: Bar, i: int) -> BarQuote:
        day_ends = self._symbol_day_ends[symbol]
        last_of_day = day_ends is None or i in day_ends
        return BarQuote(bar.open, bar.high, bar.low, bar.close, bar.volume, last_of_day)

    def bar(self, symbol: str, i: int) -> Bar:
        """Bar `i` of a symbol's series (warm-up bars first), exact."""
        return self._decoded[symbol].at(i)

    def _record(self, reports: Sequence[ExecutionReport]) -> None:
        if not reports:
            return
        self._book.reports.extend(reports)
        for r in reports:
            if r.is_fill and r.price is not None and r.sim_time is not None:
                self.ledger.record_fill(
                    r.symbol, r.side.value, r.fill_quantity, r.price, r.commission, r.sim_time
                )

    def _phase(self) -> str:
        if self._book.finished:
            return "completed"
        if self._book.in_flight is not None:
            return f"tick {self._book.in_flight} awaiting ack"
        return "between ticks"


_DECODED_BARS_HELD = 4_096
"""Decoded bars kept at once across a simulation's symbols (bounds the decimal cache)."""


class _DecodedBars:
    """The exact bars of one series, decoded a chunk at a time: converting columns of ints
    to decimals in bulk costs far less than bar by bar, and only a chunk is held."""

    __slots__ = ("bars", "chunk", "series", "start")

    def __init__(self, series: BarSeries, chunk: int) -> None:
        self.series = series
        self.chunk = chunk
        self.start = 0
        self.bars: list[Bar] = []

    def at(self, i: int) -> Bar:
        k = i - self.start
        if 0 <= k < len(self.bars):
            return self.bars[k]
        self._decode(i)
        return self.bars[0]

    def _decode(self, first: int) -> None:
        s = self.series
        stop = min(len(s.times), first + self.chunk)
        p, v, exact = -s.price_scale, -s.volume_scale, Decimal
        self.bars = list(
            map(
                Bar,
                [datetime.fromtimestamp(t, UTC) for t in s.times[first:stop]],
                [exact(x).scaleb(p) for x in s.opens[first:stop]],
                [exact(x).scaleb(p) for x in s.highs[first:stop]],
                [exact(x).scaleb(p) for x in s.lows[first:stop]],
                [exact(x).scaleb(p) for x in s.closes[first:stop]],
                [exact(x).scaleb(v) for x in s.volumes[first:stop]],
            )
        )
        self.start = first


_COLUMN = {
    "open": "opens",
    "high": "highs",
    "low": "lows",
    "close": "closes",
    "volume": "volumes",
}
