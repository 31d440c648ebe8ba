"""One session's simulation, stepped bar by bar with one tick in flight (PROTOCOL.md §4):
`advance` fills the live orders on the next bar and delivers it; `acknowledge` takes the
orders sent since, live from the bar after. Bars are held columnar; state snapshots."""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal

from application.records import Refusal, SimulationResults, SimulationState
from application.simulation.bars import SimulationBars, cursors_back_to
from application.simulation.book import Book
from application.simulation.columns import DecodedColumn, day_closes
from application.simulation.results import simulation_results
from application.simulation.values import (
    NOTHING,
    AccountUpdates,
    BarsAt,
    BatchResult,
    Missed,
    Step,
    Tick,
)
from application.simulation.window import Savepoint, Window
from domain.bars import Bar, BarSeries, from_epoch, union_times
from domain.broker import Broker, ExecutionReport
from domain.errors import DomainError, InvalidSequence, InvalidState
from domain.exchanges import ExchangeHours
from domain.money import MONEY_CONTEXT, exact
from domain.orders import OrderRequest
from domain.session import EngineSettings
from domain.trades import TradeLedger


class Simulation:
    """The bar-stepping core shared by every driver (in process and over the WebSocket).

    `series[symbol]` holds the warm-up bars followed by the tradable ones; `first_tradable`
    says where trading starts. `ticks` are the distinct closes of the tradable bars.

    A step does only what can change something: the broker works a bar only while it has
    open orders; positions are marked, and the broker's clock set, when something reads
    them (`broker`, `equity`, a day's close for the equity curve, a snapshot); bars and
    columns are decoded when read. `step` is the one stepping function: `advance` (the
    WebSocket path) is `step` plus the `Tick` it delivers; the in-process loop calls `step`
    and reads what its strategy asks for."""

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
        tick_sizes: Mapping[str, Decimal] | None = None,
    ) -> None:
        self.session_id = session_id
        self.series = dict(series)
        self.first_tradable = dict(first_tradable)
        self.symbols = tuple(self.series)
        self.initial_capital = initial_capital
        self.settings = settings
        self.account_updates = account_updates
        self._lot_sizes = dict(lot_sizes)
        self._tick_sizes = None if tick_sizes is None else dict(tick_sizes)
        self._broker = Broker(
            initial_capital, lot_sizes, settings, self._tick_sizes, session_id=session_id
        )
        self._synced = 0
        """The tick the broker's clock is up to date with."""
        self._marked = 0
        """The tick the positions are marked to."""
        self.ledger = TradeLedger()
        self.ticks = array(
            "q",
            union_times(
                [s.slice(self.first_tradable[sym], len(s)) for sym, s in self.series.items()]
            ),
        )
        # Index of each day's last tick → that trading day: where the equity curve gets a
        # point. Kept per day, not per bar.
        self._day_closes = day_closes(self.ticks, hours)
        self._bars = SimulationBars(self.series, hours)
        self._units = self._bars.units  # (read by `_mark` and the curve's valuation)
        self._cursors = dict(self.first_tradable)
        self._book = Book()
        self._present: tuple[str, ...] = self.symbols if len(self.symbols) == 1 else ()
        """The symbols with a bar on the last tick delivered."""
        self._only = self.symbols[0] if len(self.symbols) == 1 else None
        self._total = len(self.ticks)
        self._times = tuple((symbol, s.times) for symbol, s in self.series.items())
        self.window_size = 1
        """Bars per window the client asks for (1: one tick at a time)."""
        self._window: Window | None = None
        self._held_now: list[tuple[str, Decimal, array[int], array[int]]] | None = None
        """What `_held` says, until the positions may have changed (None: to be made)."""
        self._unvalued: list[tuple[int, date]] = []
        """Points of the equity curve not valued yet, (tick index, day), while positions are
        held: the account has not changed since they were made (see `_value_curve`)."""

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

    @property
    def broker(self) -> Broker:
        """The broker, its positions marked to the last closes delivered."""
        self._sync()
        return self._broker

    @property
    def equity(self) -> Decimal:
        """Cash plus positions marked to the last closes delivered."""
        self._mark()
        return self._broker.equity

    @property
    def cash(self) -> Decimal:
        return self._broker.cash

    @property
    def present(self) -> tuple[str, ...]:
        """The symbols with a bar on the last tick delivered."""
        return self._present

    @property
    def cursors(self) -> Mapping[str, int]:
        """symbol → bars delivered (warm-up included), live: read, never written."""
        return self._cursors

    def cursor(self, symbol: str) -> int:
        """How many bars of `symbol` were delivered (warm-up bars included)."""
        return self._cursors[symbol]

    def advance(self) -> Step:
        """Fill the live orders on the next bar, mark to its close, and deliver it."""
        reports = self.step()
        return Step(reports, self._tick(self._book.sequence))

    def step(self, passing: bool = False) -> tuple[ExecutionReport, ...]:
        """Fill the live orders on the next bar and deliver it (to be acknowledged); the
        reports of its fills. What the tick shows is read from the simulation. `passing`:
        acknowledge the tick in flight first, with nothing sent (a driver's usual bar: the
        ack and the step in one call)."""
        book = self._book
        if passing:
            if self._window is None and book.in_flight is not None:
                book.in_flight = None
            else:
                self.acknowledge(book.in_flight or book.sequence + 1)
        sequence = book.sequence + 1
        if book.in_flight is not None or sequence > self._total or book.finished:
            raise InvalidState(self.session_id, book.phase(), "advance", ["tick acknowledged"])
        broker = self._broker
        reports: tuple[ExecutionReport, ...] = ()
        only = self._only
        if broker.has_open_orders:
            reports = self._work(sequence)
        elif only is not None:  # one symbol: every tick is its next bar
            self._cursors[only] += 1
        else:
            self._advance_cursors(sequence)
        book.sequence = book.in_flight = sequence
        book.report_marks.append(len(book.reports))
        day = self._day_closes.get(sequence - 1)
        if broker.has_positions:
            book.ticks_with_position += 1
            if day is not None:
                self._unvalued.append((sequence - 1, day))
        elif day is not None:  # (no position: nothing is left unvalued, see `_value_curve`)
            book.equity_curve.append((day, broker.cash))
        return reports

    def _value_curve(self) -> None:
        """Value the curve's pending points: cash plus each position at its symbol's last
        close as of the point, as the broker's equity adds them. Called before anything can
        change the account (a fill) and before the curve is read, so the cash and positions
        of now are those of every pending point. Daily points are most bars of a daily run:
        valuing them in one pass is far cheaper than marking the broker on each."""
        if self._unvalued:
            self._value_pending()

    @exact
    def _value_pending(self) -> None:
        pending = self._unvalued
        held = self._held()
        cash, curve = self._broker.cash, self._book.equity_curve
        if len(held) == 1 and self._only is not None:  # one symbol: tick k is its bar first + k
            ((_, weight, _, closes),) = held
            first = self.first_tradable[self._only]
            curve.extend([(day, cash + weight * closes[first + k]) for k, day in pending])
        else:
            ticks = self.ticks
            for k, day in pending:
                equity = cash
                t = ticks[k]
                for _, weight, times, closes in held:
                    equity = equity + weight * closes[bisect_right(times, t) - 1]
                curve.append((day, equity))
        pending.clear()

    def _held(self) -> list[tuple[str, Decimal, array[int], array[int]]]:
        """(symbol, weight, bar times, raw closes) of each position, in the broker's order.
        The weight is quantity * unit, so weight * raw close is quantity * close exactly, the
        same decimal, exponent included. Kept until the positions may change: a bar worked
        (`_work`: fills happen there only), a rewind or a restore."""
        held = self._held_now
        if held is None:
            broker, units, series = self._broker, self._units, self.series
            multiply = MONEY_CONTEXT.multiply
            held = self._held_now = [
                (
                    s,
                    multiply(broker.position_quantity(s), units[s]),
                    series[s].times,
                    series[s].closes,
                )
                for s in broker.held_symbols
            ]
        return held

    @property
    def equity_curve(self) -> list[tuple[date, Decimal]]:
        """(day, equity) at each trading day's last tick delivered so far."""
        self._value_curve()
        return self._book.equity_curve

    def _advance_cursors(self, sequence: int) -> None:
        t = self.ticks[sequence - 1]
        cursors = self._cursors
        present: list[str] = []
        for symbol, times in self._times:
            i = cursors[symbol]
            if i < len(times) and times[i] == t:
                cursors[symbol] = i + 1
                present.append(symbol)
        self._present = self.symbols if len(present) == len(self.symbols) else tuple(present)

    @exact  # once for the quote, the fills and the ledger, which all need it
    def _work(self, sequence: int) -> tuple[ExecutionReport, ...]:
        """Bar `sequence` with open orders: fill them under the fill rules (§4.5)."""
        self._value_curve()  # before a fill changes the account
        self._held_now = None  # fills change the positions (dropped first, should it fail)
        only = self._only
        cursors = self._cursors
        broker = self._broker
        if only is not None:  # its open orders are all of this symbol
            # (No marking first: the fill rules read the marks of other symbols only, for
            # a short sale's margin; this symbol's is set from the bar by `process_bar`.)
            cursors[only] += 1
            quotes = {only: self._bars.quote(only, cursors[only] - 1)}
        else:
            self._mark()  # as of the bars before this one, as the fill rules see them
            self._advance_cursors(sequence)
            ordered = broker.order_symbols
            quotes = {
                symbol: self._bars.quote(symbol, cursors[symbol] - 1)
                for symbol in self._present
                if symbol in ordered
            }
            if not quotes:
                return ()
        sim_time = from_epoch(self.ticks[sequence - 1])
        reports = tuple(broker.process_bar(sequence, sim_time, quotes))
        self._record(reports)
        return reports

    def _tick(self, sequence: int) -> Tick:
        t = self.ticks[sequence - 1]
        cursors = self._cursors
        bars = BarsAt({s: cursors[s] - 1 for s in self._present}, self._bars.bar)
        broker = self._broker
        equity = self._equity_now() if broker.has_positions else broker.cash
        return Tick(sequence, t, bars, equity, broker.cash, sequence == self._total)

    def _equity_now(self) -> Decimal:
        """The broker's equity at the last closes delivered (cash plus each position in
        turn, the same decimal, each operation in the money context), without marking the
        positions: a window's bars carry it, and most are voided."""
        equity = self._broker.cash
        cursors = self._cursors
        add, multiply = MONEY_CONTEXT.add, MONEY_CONTEXT.multiply
        for symbol, weight, _, closes in self._held():
            equity = add(equity, multiply(weight, closes[cursors[symbol] - 1]))
        return equity

    def _sync(self) -> None:
        """Bring the broker's clock and marks up to the last tick delivered."""
        sequence = self._book.sequence
        if self._synced != sequence:
            self._synced = sequence
            if sequence:
                self._broker.at(sequence, from_epoch(self.ticks[sequence - 1]))
        self._mark()

    def _mark(self) -> None:
        """Mark the positions to the last closes delivered."""
        sequence = self._book.sequence
        if self._marked == sequence:
            return
        self._marked = sequence
        broker = self._broker
        if broker.has_positions:
            # Each close decoded alone, as its column would (a chunk is not worth decoding
            # for one value: marks are read a few times a day at most, far apart).
            series, units, cursors = self.series, self._units, self._cursors
            multiply, exact = MONEY_CONTEXT.multiply, Decimal
            broker.mark(
                {
                    s: multiply(exact(series[s].closes[cursors[s] - 1]), units[s])
                    for s in broker.held_symbols
                }
            )

    def last(self, symbol: str, name: str = "close") -> Decimal:
        """The value of a column on the symbol's last bar delivered."""
        return self._bars.column(symbol, name).at(self._cursors[symbol] - 1)

    def column(self, symbol: str, name: str) -> DecodedColumn:
        """Column `name` of a symbol's bars (warm-up first), decoded when read."""
        return self._bars.column(symbol, name)

    def pending_tick(self) -> Tick | None:
        """The tick in flight, built again (to send it once more after a pause or a
        reconnection): nothing has changed since it was delivered."""
        sequence = self._book.in_flight
        if sequence is None:
            return None
        return self._tick(sequence)

    @property
    def next_sequence_id(self) -> int:
        """The tick that awaits an ack (or comes next); with a window in flight, its first."""
        if self._window is not None:
            return self._window.first
        return self._book.in_flight or self._book.sequence + 1

    # ------------------------------------------------------------------ windows

    @property
    def in_window(self) -> bool:
        """Bars are in flight as a window (stepped ahead of the last acknowledged one)."""
        return self._window is not None

    @property
    def acknowledged(self) -> int:
        """The last bar the client acknowledged, or will have once the tick in flight is:
        where the simulation stands for good (checkpoints and the journal)."""
        if self._window is not None:
            return self._window.point.sequence
        return self._book.sequence

    def open_window(self, size: int, admit: Callable[[Step], bool] | None = None) -> list[Step]:
        """Deliver up to `size` bars at once (PROTOCOL §7.14). From between ticks, step
        ahead speculatively, each bar exactly as `advance` does (fills of resting orders,
        expiries, marks), until `size` bars, the end of data, or until `admit`, shown each
        step as it is made, answers that no more may follow. An ack may then name any bar
        of the window: the bars after it are void, and the simulation steps again from the
        savepoint taken here (the engine is deterministic, so the bars up to the ack come
        out the same). `size` 1 is `advance`: one tick, nothing saved."""
        if size <= 1:
            return [self.advance()]
        book = self._book
        if book.finished or book.in_flight is not None or book.sequence >= len(self.ticks):
            raise InvalidState(self.session_id, book.phase(), "advance", ["tick acknowledged"])
        point = self._savepoint()
        last = min(len(self.ticks), book.sequence + size)
        steps: list[Step] = []
        worked = 0
        while True:
            if self._broker.has_open_orders:
                worked = book.sequence + 1
            step = self.advance()
            steps.append(step)
            more = admit(step) if admit is not None else True
            if not more or book.sequence >= last:
                break
            book.in_flight = None
        self._window = Window(point.sequence + 1, book.sequence, point, worked)
        return steps

    def check_ack(self, sequence_id: int) -> None:
        """INVALID_SEQUENCE unless `sequence_id` is the tick in flight or a bar of the window
        in flight (what `acknowledge` takes)."""
        window = self._window
        if window is not None:
            if not window.first <= sequence_id <= window.last:
                raise InvalidSequence(window.last, sequence_id)
        elif self._book.in_flight is None or sequence_id != self._book.in_flight:
            raise InvalidSequence(self._book.in_flight or self._book.sequence + 1, sequence_id)

    def reach(self, sequence_id: int) -> None:
        """Make bar `sequence_id` one an ack may name, when nothing but a window (or nothing)
        is in flight: the window is opened again from the last bar acknowledged, long
        enough. (Replaying the journal: a window the client was sent may have been opened,
        on a resume, longer than the last ack asked for; nothing of it was kept.)"""
        if self._book.in_flight is not None and self._window is None:
            return  # one tick in flight: only it may be acknowledged
        window = self._window
        if window is not None and window.first <= sequence_id <= window.last:
            return
        self.void_window()
        if sequence_id > self._book.sequence:
            self.open_window(sequence_id - self._book.sequence)

    def trim_window(self, last: int) -> None:
        """The window ends at bar `last` (a frame held no more): the simulation goes back
        to that bar, as if the window had been opened that long."""
        window = self._window
        if window is None or not window.first <= last <= window.last:
            raise InvalidSequence(self.next_sequence_id, last)
        if last != self._book.sequence:
            self._step_to(window.point, last)
        window.last = last

    def void_window(self) -> None:
        """Drop the window in flight: back to the last acknowledged bar, nothing in flight
        (a pause; the window is opened again when the simulation resumes)."""
        window = self._window
        if window is not None:
            self._rewind(window.point)
            self._window = None

    def _savepoint(self) -> Savepoint:
        self._value_curve()
        book = self._book
        return Savepoint(
            book.sequence,
            dict(self._cursors),
            self._present,
            self.broker.savepoint(),  # (the property brings the clock and marks up to date)
            self.ledger.savepoint(),
            len(book.equity_curve),
            book.ticks_with_position,
            len(book.reports),
            len(book.report_marks),
        )

    def _rewind(self, point: Savepoint) -> None:
        self._broker.rewind(point.broker)
        self._synced = self._marked = point.sequence
        self.ledger.rewind(point.ledger)
        self._cursors.clear()  # in place: views of the simulation hold this mapping
        self._cursors.update(point.cursors)
        self._present = point.present
        self._book.rewind(point)
        self._unvalued.clear()  # all stepped after the point (which valued the curve)
        self._held_now = None

    def _step_to(self, point: Savepoint, sequence_id: int) -> None:
        """Back to bar `sequence_id` of the window in flight (left in flight): back to
        `point`, then stepped again; or, when no bar after it worked the broker, those bars
        taken back (`_take_back`), which comes to the same."""
        window = self._window
        if window is not None and window.worked <= sequence_id <= self._book.sequence:
            self._take_back(sequence_id)
            return
        self._rewind(point)
        book = self._book
        while book.sequence < sequence_id:
            book.in_flight = None
            self.step()

    def _take_back(self, sequence_id: int) -> None:
        """Undo the bars stepped after `sequence_id`, none of which worked the broker: they
        moved the cursors, the book's progress and the equity curve, nothing else."""
        book = self._book
        dropped = book.sequence - sequence_id
        closes = self._day_closes
        days = sum(1 for k in range(sequence_id, book.sequence) if k in closes)
        book.take_back(dropped, days, self._unvalued, self._broker.has_positions)
        if self._only is not None:
            self._cursors[self._only] -= dropped
            return
        t = self.ticks[sequence_id - 1]
        present = cursors_back_to(t, self._cursors, self._times, self.first_tradable)
        self._present = self.symbols if len(present) == len(self.symbols) else tuple(present)

    def history(self) -> dict[str, list[Bar]]:
        """The warm-up bars of each symbol (before the first tradable bar)."""
        first = self.first_tradable
        return {symbol: self._bars.bars(symbol, first[symbol]) for symbol in self.symbols}

    def acknowledge(
        self,
        sequence_id: int,
        orders: Sequence[OrderRequest] = (),
        cancels: Sequence[str] = (),
    ) -> BatchResult:
        """Close tick `sequence_id`; `orders` and `cancels` take effect from the next bar.
        With a window in flight, any of its bars: the ones after it are void."""
        self.check_ack(sequence_id)
        window = self._window
        if window is not None:
            if sequence_id != self._book.sequence:
                self._step_to(window.point, sequence_id)
            self._window = None
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
        broker = self._broker  # taking orders reads neither marks nor the clock
        for request in orders:
            try:
                broker.submit(request, live_from)
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
        if reports:
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
            raise InvalidState(self.session_id, self._book.phase(), "finish", ["last tick acked"])
        self._value_curve()
        t = self.ticks[-1] if self.ticks else 0
        reports = self.broker.finish(self._book.sequence, from_epoch(t))
        self._record(reports)
        self._book.finished = True
        return reports

    def results(self) -> SimulationResults:
        curve = self.equity_curve
        book, broker = self._book, self.broker
        return simulation_results(
            curve,
            self.ledger.trades,
            book.reports,
            initial_capital=self.initial_capital,
            delivered=book.sequence,
            ticks_with_position=book.ticks_with_position,
            total_commission=broker.total_commission,
            total_slippage=broker.total_slippage,
            series=self.series,
            first_tradable=self.first_tradable,
            ticks=self.ticks,
            day_closes=self._day_closes,
        )

    # ------------------------------------------------------------------ views

    def bar_window(self, symbol: str, n: int, column_name: str = "close") -> list[Decimal]:
        """The last `n` values of a column up to and including the current bar (warm-up
        bars included); fewer when there are not that many yet."""
        if n <= 0:
            return []
        return self._bars.column(symbol, column_name).window(self._cursors[symbol], n)

    def reports_after(self, sequence_id: int) -> list[ExecutionReport]:
        return self._book.reports_after(sequence_id)

    def record_rejections(self, refused: Mapping[str, DomainError]) -> None:
        """Keep the refusals of orders sent now (see `missed_since`)."""
        self.record_refusals(Refusal.of(order_id, e) for order_id, e in refused.items())

    def record_refusals(self, refusals: Iterable[Refusal]) -> None:
        self._book.record_refusals(refusals)

    def missed_since(self, sequence_id: int) -> Missed:
        """Everything recorded after tick `sequence_id` was delivered: its fills are
        later, but so are the cancels and refusals of the orders sent in reply to it."""
        return self._book.missed_since(sequence_id)

    # ------------------------------------------------------------------ snapshot

    def state(self) -> SimulationState:
        """The state to keep: with a window in flight, as of its savepoint (the last bar
        acknowledged): the bars stepped ahead are not the client's yet."""
        self._value_curve()
        window = self._window
        if window is not None:
            return self._book.state_at(
                window.point,
                self._broker.used_order_ids(),
                self.ledger.state_at(window.point.ledger),
                self.window_size,
            )
        return self._book.state(
            self._cursors, self.broker.state(), self.ledger.state(), self.window_size
        )

    def restore(self, state: SimulationState) -> None:
        """Continue from `state` (taken from a simulation over the same bars and settings)."""
        self._broker = Broker.restore(
            state.broker,
            self._lot_sizes,
            self.settings,
            self._tick_sizes,
            session_id=self.session_id,
        )
        self._synced = self._marked = state.sequence
        self.ledger = TradeLedger.restore(state.ledger)
        self._cursors.clear()  # in place: views of the simulation hold this mapping
        self._cursors.update(state.cursors)
        self.window_size = state.window
        self._window = None
        self._unvalued.clear()
        self._held_now = None
        self._book = Book.restored(state)
        sequence = state.sequence
        t = self.ticks[sequence - 1] if sequence else None
        self._present = tuple(
            s
            for s in self.symbols
            if self._only is not None
            or (
                t is not None
                and self._cursors[s] > self.first_tradable[s]
                and self.series[s].times[self._cursors[s] - 1] == t
            )
        )

    # ------------------------------------------------------------------ internals

    def bar(self, symbol: str, i: int) -> Bar:
        """Bar `i` of a symbol's series (warm-up bars first), exact."""
        return self._bars.bar(symbol, i)

    def bar_at(self, symbol: str, sequence: int) -> Bar:
        """The symbol's bar on tick `sequence` (delivered already; KeyError if it has none)."""
        if sequence == self._book.sequence:
            return self._bars.bar(symbol, self._cursors[symbol] - 1)
        return self._bars.bar(symbol, self._bars.index_at(symbol, self.ticks[sequence - 1]))

    def _record(self, reports: Sequence[ExecutionReport]) -> None:
        if not reports:
            return
        self._book.reports.extend(reports)
        for r in reports:
            if r.is_fill and r.price is not None and r.sim_time is not None:
                self.ledger.record_fill(
                    r.symbol, r.side, r.fill_quantity, r.price, r.commission, r.sim_time
                )
