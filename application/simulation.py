"""One session's simulation, stepped bar by bar with one tick in flight (PROTOCOL.md §4):
`advance` fills the live orders on the next bar and delivers it; `acknowledge` takes the
orders sent since, live from the bar after. Bars are held columnar; state snapshots."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, NamedTuple

from application.ports import (
    BarStore,
    Clock,
    SimulationCheckpoints,
    SimulationHoldLost,
    SymbolCatalog,
)
from application.principal import Principal
from application.sessions import SessionService
from domain.bars import Bar, BarSeries, from_epoch, merge_series, union_times
from domain.broker import AccountView, BarQuote, Broker, BrokerState, ExecutionReport
from domain.errors import (
    DataUnavailable,
    DomainError,
    InvalidSequence,
    InvalidState,
    InvalidSymbol,
    SessionBusy,
    SessionLimitExceeded,
    ValidationFailed,
)
from domain.exchanges import (
    ExchangeHours,
    hours_of,
    trading_day_bounds,
    trading_day_runs,
)
from domain.metrics import Metrics, compute_metrics
from domain.orders import OrderRequest
from domain.session import EngineSettings, SessionState, SimulationSession
from domain.symbols import symbol_key
from domain.trades import ClosedTrade, LedgerState, TradeLedger


class AccountUpdates(StrEnum):
    """When the server volunteers an account snapshot (§4.3 `start_simulation`)."""

    ON_FILL = "on_fill"
    EVERY_TICK = "every_tick"
    ON_DEMAND = "on_demand"


class Tick(NamedTuple):
    """Bar `sequence_id` of every symbol that has one at `time`, after it closed and after
    every order live on it was filled; `equity` and `cash` are marked to its closes.
    (A named tuple: one is made per bar, and they are cheap.)"""

    sequence_id: int
    time: int
    sim_time: datetime
    bars: Mapping[str, Bar]
    """symbol → its bar (exact prices)."""
    equity: Decimal
    cash: Decimal
    is_last: bool


class Step(NamedTuple):
    """What one `advance` produced: the reports of fills on the new bar, then its tick."""

    reports: tuple[ExecutionReport, ...]
    tick: Tick


@dataclass(frozen=True, slots=True)
class BatchResult:
    accepted: tuple[str, ...]
    rejected: Mapping[str, DomainError]
    reports: tuple[ExecutionReport, ...] = ()
    """Reports of cancels taken with the batch."""


@dataclass(frozen=True, slots=True)
class SimulationResults:
    metrics: Metrics
    equity_curve: tuple[tuple[date, Decimal], ...]
    trades: tuple[ClosedTrade, ...]
    executions: int
    total_ticks: int
    last_sim_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """An order refused outright, kept so a client that lost the batch_ack still learns."""

    sequence_id: int
    """The tick after which the client sent it."""
    order_id: str
    code: str
    message: str
    details: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Refusal:
    """An order refused outright, before its tick is known (kept in the journal)."""

    order_id: str
    code: str
    message: str
    details: Mapping[str, Any]

    @classmethod
    def of(cls, order_id: str, error: DomainError) -> Refusal:
        return cls(order_id, error.code, error.message, dict(error.details))


@dataclass(frozen=True, slots=True)
class Missed:
    """What a client that saw tick n last may not have received: every execution report
    and refusal recorded after tick n was delivered."""

    reports: tuple[ExecutionReport, ...]
    rejections: tuple[Rejection, ...]


def missed(
    reports: Sequence[ExecutionReport],
    marks: Sequence[int],
    rejections: Sequence[Rejection],
    sequence_id: int,
) -> Missed:
    """The reports and refusals recorded after tick `sequence_id` was delivered (all of
    them for 0; none for a tick not delivered yet)."""
    if sequence_id <= 0:
        start = 0
    elif sequence_id <= len(marks):
        start = marks[sequence_id - 1]
    else:
        start = len(reports)
    return Missed(
        tuple(reports[start:]),
        tuple(r for r in rejections if r.sequence_id >= max(sequence_id, 1)),
    )


@dataclass(frozen=True, slots=True)
class SimulationState:
    """Everything a running simulation holds apart from its bars (which the store keeps):
    enough to restore it and go on exactly as if it had never stopped."""

    sequence: int
    in_flight: int | None
    cursors: tuple[tuple[str, int], ...]
    broker: BrokerState
    ledger: LedgerState
    equity_curve: tuple[tuple[date, Decimal], ...]
    ticks_with_position: int
    reports: tuple[ExecutionReport, ...]
    finished: bool
    report_marks: tuple[int, ...] = ()
    rejections: tuple[Rejection, ...] = ()


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
        result = self.submit(orders, cancels) if orders or cancels else _NOTHING
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
        metrics = compute_metrics(
            daily,
            self.ledger.trades,
            bars_total=book.sequence,
            bars_with_position=book.ticks_with_position,
            total_commission=self.broker.total_commission,
            total_slippage=self.broker.total_slippage,
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


_NOTHING = BatchResult((), {})


def _apply(simulation: Simulation, entry: SimulationInput) -> tuple[BatchResult, Step | None]:
    """Do what a request asks of a simulation; the one path for live requests and for
    journal entries replayed after a restart, so both do exactly the same."""
    if entry.kind is InputKind.ACK:
        batch = simulation.acknowledge(entry.sequence_id, entry.orders, entry.cancels)
    elif entry.kind is InputKind.ORDERS:
        batch = simulation.submit(entry.orders)
    else:
        batch = BatchResult((), {}, (simulation.cancel(entry.cancels[0]),))
    if entry.refused or batch.rejected:
        refusals = {r.order_id: r for r in entry.refused}
        refusals.update((k, Refusal.of(k, e)) for k, e in batch.rejected.items())
        simulation.record_refusals(refusals.values())
    step = None
    if entry.kind is InputKind.ACK and not simulation.done_stepping:
        step = simulation.advance()
    return batch, step


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


WARMUP_LOOKBACK_FACTOR = 4
"""Calendar time read per warm-up bar wanted, to step over weekends and holidays."""
MAX_WARMUP_BARS = 10_000


@dataclass(frozen=True, slots=True)
class FinishedSimulation:
    """A completed simulation, as far as a client resuming after it still needs it."""

    state: SimulationState
    account: AccountView
    wall_time_ms: int

    def missed_since(self, sequence_id: int) -> Missed:
        state = self.state
        return missed(state.reports, state.report_marks, state.rejections, sequence_id)


class PauseReason(StrEnum):
    REQUESTED = "requested"
    DISCONNECTED = "disconnected"
    ACK_TIMEOUT = "ack_timeout"
    RESTART = "restart"
    """The server restarted while the simulation ran: it came back from its checkpoint."""


@dataclass(slots=True)
class RunningSimulation:
    """A session's simulation and who drives it: the connection that may ack its ticks
    (None while nobody does), and why it is paused, if it is."""

    simulation: Simulation
    principal: Principal
    driver: str | None = None
    paused: PauseReason | None = None
    started_at: float = 0.0
    touched_at: float = 0.0
    warmup_bars: int = 0
    account_updates: AccountUpdates = AccountUpdates.ON_FILL
    journaled: int = 0
    """Position of the last request journaled (durable storage only)."""
    checkpointed: int = 0
    """The tick the last checkpoint was taken at."""


class InputKind(StrEnum):
    ACK = "ack"
    ORDERS = "orders"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class SimulationInput:
    """One client request that changed a running simulation, as the journal keeps it. The
    engine is deterministic: applied again, in order, to the simulation restored from the
    checkpoint before it, each does exactly what it did the first time."""

    position: int
    kind: InputKind
    sequence_id: int = 0
    """For an ack, the tick acknowledged."""
    orders: tuple[OrderRequest, ...] = ()
    cancels: tuple[str, ...] = ()
    refused: tuple[Refusal, ...] = ()
    """Orders refused before reaching the engine (unparseable)."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A running simulation as durable storage keeps it: enough to build it again over the
    same bars and restore it; `position` journal entries are already applied in `state`."""

    session_id: str
    principal: Principal
    warmup_bars: int
    account_updates: AccountUpdates
    total_ticks: int
    position: int
    state: SimulationState


@dataclass(frozen=True, slots=True)
class StoredRun:
    checkpoint: Checkpoint
    journal: tuple[SimulationInput, ...]
    """Entries after `checkpoint.position`, in order."""


@dataclass(frozen=True, slots=True)
class CompletedRun:
    session_id: str
    principal: Principal
    results: SimulationResults
    finished: FinishedSimulation


@dataclass(slots=True)
class Recovery:
    """What `SimulationService.recover` found in durable storage at start-up."""

    paused: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    """Kept for sessions that are gone (deleted, expired) or no longer running."""
    failed: dict[str, str] = field(default_factory=dict)
    """session id → why it could not be restored (the session is moved to `error`)."""


TOUCH_INTERVAL_SECONDS = 1.0
"""A driven simulation refreshes its session's idle clock at most this often, not on
every one of thousands of acks a second."""


class SimulationService:
    """Owns the simulation of each running session: start (session → `running`), lookup,
    pause / resume, the one connection driving it, complete (→ `completed`, results kept),
    fail (→ `error` with a reason). Per-user limits on running simulations hold here.

    With `checkpoints` (durable storage), every request that changes a simulation (ack,
    order batch, cancel) is journaled before its reply leaves, a whole checkpoint is taken
    at start, every `checkpoint_every_ticks` ticks and on each pause, and results are kept
    at completion; `recover` brings it all back after a restart, even a `kill -9`, to
    exactly the state the clients last saw (see `adapters/storage/sqlite.py`).

    With shared checkpoints (several server processes on one store, Redis), a process holds
    only the simulations it drives: it claims one to start or resume it and lets go of it
    when it pauses, so that the next `resume_session` may reach any process, which builds
    it again from the store. A simulation whose process died while it ran is taken up the
    same way once that process's claim lapses, as after a restart (`paused`, `restart`).
    Nothing is recovered at start-up: each simulation is adopted when a client asks."""

    def __init__(
        self,
        sessions: SessionService,
        catalog: SymbolCatalog,
        store: BarStore,
        clock: Clock | None = None,
        checkpoints: SimulationCheckpoints | None = None,
        checkpoint_every_ticks: int = 500,
    ) -> None:
        self._sessions = sessions
        self._catalog = catalog
        self._store = store
        self._clock = clock
        self._checkpoints = checkpoints
        self._shared = checkpoints is not None and checkpoints.shared
        self._every = max(1, checkpoint_every_ticks)
        self._running: dict[str, RunningSimulation] = {}
        self._results: dict[str, SimulationResults] = {}
        self._finished: dict[str, FinishedSimulation] = {}

    async def start(
        self,
        principal: Principal,
        session_id: str,
        warmup_bars: int = 0,
        account_updates: AccountUpdates = AccountUpdates.ON_FILL,
        driver: str | None = None,
    ) -> Simulation:
        session = await self._sessions.get(principal, session_id)
        if session.state is not SessionState.READY:
            raise InvalidState(session_id, session.state.value, "start", ["ready"])
        if not 0 <= warmup_bars <= MAX_WARMUP_BARS:
            raise ValidationFailed(
                "warmup_bars", f"warmup_bars must be between 0 and {MAX_WARMUP_BARS}"
            )
        most = principal.limits.max_running_simulations
        running = await self._running_count(principal)
        if running >= most:
            raise SessionLimitExceeded(
                f"You already run {running} simulation{'s' if running != 1 else ''}, the most "
                "your plan allows; finish or delete one first",
                {"limit": "running_simulations", "max": most},
            )
        if self._shared and not await self._stored.claim(session_id):
            raise SessionBusy(session_id)  # being started by another process right now
        try:
            simulation = await self.build(session, warmup_bars, account_updates)
            await self._sessions.change_state(principal, session_id, SessionState.RUNNING)
        except BaseException:
            if self._shared:
                await self._stored.release(session_id)
            raise
        run = RunningSimulation(
            simulation,
            principal,
            driver,
            None,
            self._now(),
            warmup_bars=warmup_bars,
            account_updates=account_updates,
        )
        self._running[session_id] = run
        if self._checkpoints is not None:
            await self._checkpoint(session_id, run)
        return simulation

    async def _running_count(self, principal: Principal) -> int:
        """The user's started, unfinished simulations: those held here, or with shared
        storage, every running or paused session of theirs (held by any process)."""
        if self._shared:
            active = (SessionState.RUNNING, SessionState.PAUSED)
            return sum(1 for s in await self._sessions.list(principal) if s.state in active)
        user = principal.user_id
        return sum(1 for r in self._running.values() if r.principal.user_id == user)

    @property
    def _stored(self) -> SimulationCheckpoints:
        """The checkpoint store (only called where there is one)."""
        assert self._checkpoints is not None
        return self._checkpoints

    async def build(
        self,
        session: SimulationSession,
        warmup_bars: int = 0,
        account_updates: AccountUpdates = AccountUpdates.ON_FILL,
    ) -> Simulation:
        """A fresh simulation of `session` over the bars stored now (no state change)."""
        instruments = []
        for symbol in session.symbols:
            key = symbol_key(symbol.ticker)
            found = self._catalog.lookup(key) if key is not None else None
            if found is None:
                raise InvalidSymbol([symbol.ticker], self._catalog.markets())
            instruments.append(found)
        timeframe = session.timeframe
        first_day, last_day = session.date_range.first_day, session.date_range.last_day
        bounds = {
            i.symbol.ticker: trading_day_bounds(first_day, last_day, hours_of(i))
            for i in instruments
        }
        tickers = list(bounds)
        lo = min(b[0] for b in bounds.values())
        hi = max(b[1] for b in bounds.values())
        stored = await self._store.read(tickers, timeframe, lo, hi)
        series = {t: stored[t].between(*bounds[t]) for t in tickers}
        first_tradable = dict.fromkeys(tickers, 0)
        if warmup_bars:
            lookback = warmup_bars * timeframe.seconds * WARMUP_LOOKBACK_FACTOR + 14 * 86_400
            before = await self._store.read(tickers, timeframe, lo - lookback, lo - 1)
            for t in tickers:
                warm = before[t].between(lo - lookback, bounds[t][0] - 1)
                warm = warm.slice(max(0, len(warm) - warmup_bars), len(warm))
                first_tradable[t] = len(warm)
                series[t] = merge_series(warm, series[t])
        if not any(len(s) > first_tradable[t] for t, s in series.items()):
            raise DataUnavailable(", ".join(tickers), timeframe.value)
        return Simulation(
            session.id,
            series,
            first_tradable,
            {i.symbol.ticker: i.lot_size for i in instruments},
            hours_of(instruments[0]),
            session.initial_capital,
            session.engine,
            account_updates,
        )

    async def simulation(self, principal: Principal, session_id: str) -> Simulation:
        """The caller's running (or paused) simulation."""
        return (await self.run_of(principal, session_id)).simulation

    async def run_of(self, principal: Principal, session_id: str) -> RunningSimulation:
        run = self._running.get(session_id)
        now = self._now()
        if (
            run is not None
            and self._clock is not None
            and run.principal.user_id == principal.user_id
            and now - run.touched_at < TOUCH_INTERVAL_SECONDS
        ):
            return run  # its owner, seen a moment ago: the session is there and is theirs
        session = await self._sessions.get(principal, session_id)  # ownership, and a touch
        run = self._running.get(session_id)
        if run is None and self._shared:
            run = await self._adopt(principal, session, hold=False)
        if run is not None:
            run.touched_at = now
        if run is None:
            raise InvalidState(
                session_id, session.state.value, "drive the simulation of", ["running", "paused"]
            )
        return run

    async def _adopt(
        self, principal: Principal, session: SimulationSession, *, hold: bool
    ) -> RunningSimulation | None:
        """Shared storage: the simulation of `session`, which this process does not hold,
        built from the store (checkpoint + journal) once no live process holds it: paused,
        it was let go of; running, its process died (it comes back paused, `restart`, as
        after a restart). With `hold` it stays held here (a driver resumes it); otherwise
        it is a copy to read and the claim is let go of at once. SESSION_BUSY while
        another process drives it."""
        session_id = session.id
        if session.state not in (SessionState.RUNNING, SessionState.PAUSED):
            return None
        store = self._stored
        if not await store.claim(session_id):
            raise SessionBusy(session_id)
        run: RunningSimulation | None = None
        try:
            if session.state is SessionState.RUNNING:
                await self._recover(session_id)  # paused, or completed if it had finished
                run = self._running.get(session_id)
            else:
                stored = await store.load(session_id)
                if isinstance(stored, StoredRun):
                    simulation = await self._rebuild(session, stored)
                    run = self._restored_run(simulation, stored)
                    self._running[session_id] = run
        finally:
            if not hold or run is None:
                self._running.pop(session_id, None)
                await store.release(session_id)
        return run

    async def _let_go(self, session_id: str) -> None:
        """Shared storage: a paused simulation leaves this process; any process may take
        it up from the checkpoint just taken."""
        if self._shared and self._running.pop(session_id, None) is not None:
            await self._stored.release(session_id)

    def progress(self, session_id: str) -> tuple[int, int, datetime | None] | None:
        """(ticks delivered, total ticks, simulated time) of a started simulation."""
        run = self._running.get(session_id)
        if run is not None:
            simulation = run.simulation
            return simulation.sequence, simulation.total_ticks, simulation.sim_time
        results = self._results.get(session_id)
        if results is not None:
            return results.total_ticks, results.total_ticks, results.last_sim_time
        return None

    async def progress_of(
        self, session: SimulationSession
    ) -> tuple[int, int, datetime | None] | None:
        """`progress`, and with shared storage also of a simulation held by another process
        or by none (paused): as of its last checkpoint, exact once paused or completed."""
        found = self.progress(session.id)
        if found is not None or not self._shared:
            return found
        if session.state is SessionState.COMPLETED:
            await self._load_results(session.id)
            return self.progress(session.id)
        if session.state in (SessionState.RUNNING, SessionState.PAUSED):
            return await self._stored.progress(session.id)
        return None

    def run_of_any(self, session_id: str) -> RunningSimulation | None:
        """For the server's own doings (timeouts): the run, whoever owns it."""
        return self._running.get(session_id)

    async def drive(self, principal: Principal, session_id: str, driver: str) -> Simulation:
        """The simulation, for the connection `driver`, which becomes its driver if it has
        none; SESSION_BUSY while another connection drives it. It must be running."""
        return (await self._driven(principal, session_id, driver)).simulation

    async def acknowledge(
        self,
        principal: Principal,
        session_id: str,
        driver: str,
        sequence_id: int,
        orders: Sequence[OrderRequest] = (),
        cancels: Sequence[str] = (),
        refused: Mapping[str, DomainError] | None = None,
    ) -> tuple[Simulation, BatchResult, Step | None]:
        """`tick_ack`: close the tick (orders and cancels live from the next bar, `refused`
        kept as refusals) and deliver the next one, unless that was the last (then None:
        the caller finishes and completes)."""
        run = await self._driven(principal, session_id, driver)
        entry = SimulationInput(
            run.journaled + 1,
            InputKind.ACK,
            sequence_id,
            tuple(orders),
            tuple(cancels),
            tuple(Refusal.of(k, e) for k, e in refused.items()) if refused else (),
        )
        batch, step = _apply(run.simulation, entry)
        await self._journal(session_id, run, entry)
        return run.simulation, batch, step

    async def submit(
        self,
        principal: Principal,
        session_id: str,
        driver: str,
        orders: Sequence[OrderRequest],
        refused: Mapping[str, DomainError] | None = None,
    ) -> BatchResult:
        """`order_batch`: orders live from the bar after the last one delivered."""
        run = await self._driven(principal, session_id, driver)
        entry = SimulationInput(
            run.journaled + 1,
            InputKind.ORDERS,
            orders=tuple(orders),
            refused=tuple(Refusal.of(k, e) for k, e in refused.items()) if refused else (),
        )
        batch, _ = _apply(run.simulation, entry)
        await self._journal(session_id, run, entry)
        return batch

    async def cancel(
        self, principal: Principal, session_id: str, driver: str, order_id: str
    ) -> ExecutionReport:
        run = await self._driven(principal, session_id, driver)
        entry = SimulationInput(run.journaled + 1, InputKind.CANCEL, cancels=(order_id,))
        batch, _ = _apply(run.simulation, entry)
        await self._journal(session_id, run, entry)
        return batch.reports[0]

    async def _driven(
        self, principal: Principal, session_id: str, driver: str
    ) -> RunningSimulation:
        run = await self.run_of(principal, session_id)
        self._claim(run, session_id, driver)
        if run.paused is not None:
            raise InvalidState(session_id, "paused", "step the simulation of", ["running"])
        return run

    async def _journal(
        self, session_id: str, run: RunningSimulation, entry: SimulationInput
    ) -> None:
        store = self._checkpoints
        if store is None:
            return
        try:
            await store.append(session_id, entry)
        except SimulationHoldLost:
            raise self._lost(session_id) from None
        run.journaled = entry.position
        if run.simulation.sequence - run.checkpointed >= self._every:
            await self._checkpoint(session_id, run)

    def _lost(self, session_id: str) -> SessionBusy:
        """Another process took the simulation over (this one was taken for dead): the copy
        here is stale; the client resumes it where it is held now."""
        self._running.pop(session_id, None)
        return SessionBusy(session_id)

    async def _checkpoint(self, session_id: str, run: RunningSimulation) -> None:
        """A whole checkpoint of the state now; the journal up to here becomes redundant."""
        if self._checkpoints is None:
            return
        simulation = run.simulation
        run.checkpointed = simulation.sequence
        checkpoint = Checkpoint(
            session_id,
            run.principal,
            run.warmup_bars,
            run.account_updates,
            simulation.total_ticks,
            run.journaled,
            simulation.state(),
        )
        try:
            await self._checkpoints.save(checkpoint)
        except SimulationHoldLost:
            raise self._lost(session_id) from None

    async def pause(
        self, principal: Principal, session_id: str, reason: PauseReason, driver: str | None = None
    ) -> RunningSimulation:
        run = await self.run_of(principal, session_id)
        if driver is not None:
            self._claim(run, session_id, driver)
        if run.paused is None:
            await self._sessions.change_state(principal, session_id, SessionState.PAUSED)
            run.paused = reason
            if self._checkpoints is not None and run.checkpointed != run.simulation.sequence:
                await self._checkpoint(session_id, run)
        if self._running.get(session_id) is run:
            await self._let_go(session_id)
        return run

    async def resume(self, principal: Principal, session_id: str, driver: str) -> Simulation:
        """A paused simulation runs again, driven by `driver` (SESSION_BUSY if another
        connection still drives it)."""
        run = await self.run_of(principal, session_id)
        if self._shared and self._running.get(session_id) is not run:
            # A copy read from the store: hold it, built afresh (another process may have
            # driven it between that read and this claim).
            session = await self._sessions.get(principal, session_id)
            taken = await self._adopt(principal, session, hold=True)
            if taken is None:
                raise InvalidState(session_id, session.state.value, "resume", ["paused"])
            run = taken
        self._claim(run, session_id, driver)
        if run.paused is None:
            raise InvalidState(session_id, "running", "resume", ["paused"])
        await self._sessions.change_state(principal, session_id, SessionState.RUNNING)
        run.paused = None
        return run.simulation

    async def disconnect(self, driver: str) -> list[str]:
        """The connection `driver` is gone: each simulation it drove pauses
        (`disconnected`) and waits, whole, for a `resume_session` from any connection of
        its user. Returns their session ids."""
        paused = []
        for session_id, run in list(self._running.items()):
            if run.driver != driver:
                continue
            run.driver = None
            if run.paused is None:
                try:
                    await self.pause(run.principal, session_id, PauseReason.DISCONNECTED)
                except DomainError:  # deleted or expired meanwhile: nothing to keep
                    self._running.pop(session_id, None)
                    continue
            paused.append(session_id)
        return paused

    async def complete(self, principal: Principal, session_id: str) -> SimulationResults:
        """Finish a simulation whose last tick was acknowledged; its results are kept, with
        what a client that lost the last replies still needs (its reports, the account)."""
        run = await self.run_of(principal, session_id)
        simulation = run.simulation
        simulation.finish()
        results = simulation.results()
        finished = FinishedSimulation(
            simulation.state(), simulation.broker.account(), self.wall_time_ms(session_id)
        )
        if self._checkpoints is not None:  # before the state change, so a crash between
            # the two still finds the results (recovery then completes the session)
            try:
                await self._checkpoints.complete(
                    CompletedRun(session_id, run.principal, results, finished)
                )
            except SimulationHoldLost:
                raise self._lost(session_id) from None
        await self._sessions.change_state(principal, session_id, SessionState.COMPLETED)
        self._results[session_id] = results
        self._finished[session_id] = finished
        self._running.pop(session_id, None)
        return results

    def finished(self, session_id: str) -> FinishedSimulation | None:
        return self._finished.get(session_id)

    async def finished_of(self, principal: Principal, session_id: str) -> FinishedSimulation | None:
        """What is kept of a completed simulation (with shared storage, completed by any
        process); None while it has not completed."""
        found = self._finished.get(session_id)
        if found is not None or not self._shared or session_id in self._running:
            return found
        session = await self._sessions.get(principal, session_id)
        if session.state is SessionState.RUNNING:
            # Held by no live process, its process died; maybe after the last ack was
            # journaled: taking it up completes it then (SESSION_BUSY while one drives it).
            await self._adopt(principal, session, hold=False)
            if session_id in self._finished:
                return self._finished[session_id]
        if session.state is SessionState.COMPLETED:
            await self._load_results(session_id)
        return self._finished.get(session_id)

    async def _load_results(self, session_id: str) -> None:
        stored = await self._stored.load(session_id)
        if isinstance(stored, CompletedRun):
            self._results[session_id] = stored.results
            self._finished[session_id] = stored.finished

    def wall_time_ms(self, session_id: str) -> int:
        run = self._running.get(session_id)
        return int((self._now() - run.started_at) * 1000) if run is not None else 0

    async def fail(self, principal: Principal, session_id: str, reason: str) -> None:
        self._running.pop(session_id, None)
        if self._checkpoints is not None:
            await self._checkpoints.delete(session_id)
        await self._sessions.fail(principal, session_id, reason)

    async def results(self, principal: Principal, session_id: str) -> SimulationResults:
        session = await self._sessions.get(principal, session_id)
        found = self._results.get(session_id)
        if found is None and self._shared and session.state is SessionState.COMPLETED:
            await self._load_results(session_id)  # completed by another process
            found = self._results.get(session_id)
        if found is None:
            raise InvalidState(session_id, session.state.value, "get results of", ["completed"])
        return found

    async def forget(self, session_id: str) -> None:
        """Drop whatever is held for a deleted or expired session (a running simulation
        stops: nothing of it is kept)."""
        self._running.pop(session_id, None)
        self._results.pop(session_id, None)
        self._finished.pop(session_id, None)
        if self._checkpoints is not None:
            await self._checkpoints.delete(session_id)

    async def recover(self) -> Recovery:
        """At start-up, before any client: bring back every simulation durable storage
        holds. A running one comes back `paused` (`reason: restart`) exactly as its client
        last saw it (checkpoint + journal); completed ones keep their results."""
        found = Recovery()
        if self._checkpoints is None or self._shared:
            return found  # shared: other processes run these; each is adopted when asked
        for session_id in await self._checkpoints.list():
            try:
                outcome = await self._recover(session_id)
            except Exception as exc:  # one broken record must not keep the server down
                found.failed[session_id] = f"{type(exc).__name__}: {exc}"
                await self._checkpoints.delete(session_id)
                self._running.pop(session_id, None)
                continue
            getattr(found, outcome).append(session_id)
        return found

    async def _recover(self, session_id: str) -> str:
        assert self._checkpoints is not None
        stored = await self._checkpoints.load(session_id)
        if stored is None:
            return "dropped"
        principal = (
            stored.principal if isinstance(stored, CompletedRun) else stored.checkpoint.principal
        )
        try:
            session = await self._sessions.get(principal, session_id)
        except DomainError:  # deleted or expired while the server was down
            await self._checkpoints.delete(session_id)
            return "dropped"
        if isinstance(stored, CompletedRun):
            if session.state is not SessionState.COMPLETED:
                await self._sessions.change_state(principal, session_id, SessionState.COMPLETED)
            self._results[session_id] = stored.results
            self._finished[session_id] = stored.finished
            return "completed"
        if session.state not in (SessionState.RUNNING, SessionState.PAUSED):
            await self._checkpoints.delete(session_id)
            return "dropped"
        simulation = await self._rebuild(session, stored)
        run = self._restored_run(simulation, stored)
        self._running[session_id] = run
        if simulation.done_stepping:  # the last ack was journaled, the completion was not
            await self.complete(principal, session_id)
            return "completed"
        if session.state is SessionState.RUNNING:
            await self._sessions.change_state(principal, session_id, SessionState.PAUSED)
        await self._checkpoint(session_id, run)  # the journal folds into it
        return "paused"

    async def _rebuild(self, session: SimulationSession, stored: StoredRun) -> Simulation:
        """The simulation exactly as its client last saw it: the checkpoint, restored over
        the same bars, then the journal after it, applied again (the engine is
        deterministic). When that fails the session moves to `error`, with the reason."""
        checkpoint = stored.checkpoint
        try:
            simulation = await self.build(
                session, checkpoint.warmup_bars, checkpoint.account_updates
            )
            if simulation.total_ticks != checkpoint.total_ticks:
                raise DataUnavailable(
                    ", ".join(simulation.symbols), f"{session.timeframe.value} (bars changed)"
                )
            simulation.restore(checkpoint.state)
            # Between requests a running simulation always has a tick in flight, but the
            # checkpoint taken at start precedes the first tick, which went out next.
            if simulation.in_flight is None and not simulation.done_stepping:
                simulation.advance()
            for entry in stored.journal:
                _apply(simulation, entry)
        except Exception as exc:
            await self._sessions.fail(
                checkpoint.principal,
                session.id,
                f"the simulation could not be restored after a server restart ({exc})",
            )
            raise
        return simulation

    def _restored_run(self, simulation: Simulation, stored: StoredRun) -> RunningSimulation:
        checkpoint = stored.checkpoint
        now = self._now()
        return RunningSimulation(
            simulation,
            checkpoint.principal,
            None,
            PauseReason.RESTART,
            now,
            now,
            checkpoint.warmup_bars,
            checkpoint.account_updates,
            stored.journal[-1].position if stored.journal else checkpoint.position,
        )

    def running_count(self) -> int:
        return len(self._running)

    def _claim(self, run: RunningSimulation, session_id: str, driver: str) -> None:
        if run.driver is None:
            run.driver = driver
        elif run.driver != driver:
            raise SessionBusy(session_id)

    def _now(self) -> float:
        return self._clock.monotonic() if self._clock is not None else 0.0
