"""Test doubles shared by every test layer: a settable clock, predictable ids, a small catalog,
and builders for a `SessionService` over the real in-memory adapters."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from adapters.ratelimit import InMemoryRateLimiter
from adapters.storage.memory import InMemorySessionRepository
from application.market_data import MarketDataValidator
from application.ports import (
    NO_METRICS,
    BarStore,
    Clock,
    IdGenerator,
    RateLimiter,
    ServiceMetrics,
    SessionRepository,
    SymbolCatalog,
)
from application.principal import Principal
from application.sessions import SessionService
from domain.bars import (
    Bar,
    BarSeries,
    Coverage,
    DataSource,
    Timeframe,
    coverage_of,
    merge_series,
    plan_write,
)
from domain.calendar import is_trading_day
from domain.dates import DateRange
from domain.exchanges import daily_close, hours_of
from domain.limits import PLAN_DEFAULTS, Limits, Plan, SessionPolicy
from domain.session import EngineSettings, SessionParams, SimulationSession
from domain.symbols import AssetClass, Instrument, Symbol

EPOCH = datetime(2024, 1, 15, 9, 30, tzinfo=UTC)
"""Where a `FakeClock` starts unless told otherwise."""


class FakeClock:
    """A clock that only moves when told to; `advance` moves wall and monotonic time together."""

    def __init__(self, start: datetime = EPOCH, monotonic_start: float = 1_000.0) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start.astimezone(UTC)
        self._monotonic = monotonic_start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float = 0.0, **delta: float) -> None:
        """Move both clocks forward: `advance(5)`, `advance(minutes=61)`."""
        step = timedelta(seconds=seconds, **delta)
        if step < timedelta(0):
            raise ValueError("time does not go back")
        with self._lock:
            self._now += step
            self._monotonic += step.total_seconds()

    def set(self, now: datetime) -> None:
        """Jump the wall clock to `now` (never backwards); the monotonic clock follows."""
        self.advance((now - self._now).total_seconds())


class FakeIds:
    """Deterministic identifiers: `sess_0001`, `sess_0002`, … Safe to use from many threads."""

    def __init__(self) -> None:
        self._sessions = itertools.count(1)
        self._tokens = itertools.count(1)
        self._keys = itertools.count(1)
        self._lock = threading.Lock()

    def session_id(self) -> str:
        with self._lock:
            return f"sess_{next(self._sessions):04d}"

    def token_id(self) -> str:
        with self._lock:
            return f"tok_{next(self._tokens):04d}"

    def api_key(self) -> tuple[str, str]:
        with self._lock:
            n = next(self._keys)
        return f"key_{n:04d}", f"sk_test_{n:04d}"


def instrument(
    ticker: str,
    asset_class: AssetClass = AssetClass.STOCK,
    exchange: str = "NASDAQ",
    name: str | None = None,
    *,
    currency: str = "USD",
    lot_size: Decimal = Decimal(1),
    listed: date | None = None,
) -> Instrument:
    """One catalog entry; `ticker` must already be in canonical form."""
    return Instrument(
        Symbol(ticker, asset_class),
        name or ticker,
        exchange,
        currency,
        lot_size,
        Decimal("0.01"),
        listed,
    )


DEFAULT_INSTRUMENTS: tuple[Instrument, ...] = (
    instrument("AAPL", exchange="NASDAQ"),
    instrument("MSFT", exchange="NASDAQ"),
    instrument("JPM", exchange="NYSE"),
    instrument("BRK.B", exchange="NYSE"),
    instrument("KVUE", exchange="NYSE"),
    instrument("OLD", exchange="NYSE"),
    instrument("EUR/USD", AssetClass.FOREX, "FOREX", lot_size=Decimal(1000)),
    instrument("GBP/USD", AssetClass.FOREX, "FOREX", lot_size=Decimal(1000)),
    instrument("BTC-USD", AssetClass.CRYPTO, "CRYPTO", lot_size=Decimal("0.00001")),
    instrument("ETH-USD", AssetClass.CRYPTO, "CRYPTO", lot_size=Decimal("0.0001")),
    instrument("GC", AssetClass.COMMODITY, "COMEX"),
    instrument("NODATA", exchange="NYSE"),
)
"""A small universe with every asset class, a share-class ticker, a recent listing (KVUE),
a delisted symbol (OLD, no data after mid-2020) and one without any bars (NODATA)."""

DEFAULT_DATA_SPANS: Mapping[str, tuple[date, date]] = {
    "AAPL": (date(1990, 1, 2), date(2025, 12, 31)),
    "MSFT": (date(1990, 1, 2), date(2025, 12, 31)),
    "JPM": (date(2000, 1, 3), date(2025, 12, 31)),
    "BRK.B": (date(2000, 1, 3), date(2025, 12, 31)),
    "KVUE": (date(2023, 5, 4), date(2025, 12, 31)),
    "OLD": (date(1990, 1, 2), date(2020, 6, 30)),
    "EUR/USD": (date(2000, 1, 3), date(2025, 12, 31)),
    "GBP/USD": (date(2000, 1, 3), date(2025, 12, 31)),
    "BTC-USD": (date(2014, 9, 17), date(2025, 12, 31)),
    "ETH-USD": (date(2017, 11, 9), date(2025, 12, 31)),
    "GC": (date(2000, 1, 3), date(2025, 12, 31)),
}
"""The daily bars `InMemoryBarStore.with_defaults()` holds for each default instrument."""


def daily_series(item: Instrument, first: date, last: date, price: str = "100.00") -> BarSeries:
    """Flat daily bars (open=high=low=close=`price`) on the instrument's trading days."""
    hours = hours_of(item)
    calendar = item.symbol.asset_class.calendar
    bars: list[Bar] = []
    day = first
    value = Decimal(price)
    while day <= last:
        if is_trading_day(day, calendar):
            bars.append(Bar(daily_close(day, hours), value, value, value, value, Decimal(1000)))
        day += timedelta(days=1)
    return BarSeries.from_bars(item.symbol.ticker, Timeframe.D1, bars)


@functools.cache
def _default_series() -> tuple[BarSeries, ...]:
    by_ticker = {i.symbol.ticker: i for i in DEFAULT_INSTRUMENTS}
    return tuple(
        daily_series(by_ticker[t], first, last) for t, (first, last) in DEFAULT_DATA_SPANS.items()
    )


class InMemoryBarStore:
    """A `BarStore` in a dict, with the write rules of the real one (`plan_write`)."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, Timeframe], tuple[BarSeries, DataSource]] = {}
        self._coverage: tuple[Coverage, ...] = ()
        self.reads = 0

    @classmethod
    def with_defaults(cls, source: DataSource = DataSource.IMPORTED) -> InMemoryBarStore:
        store = cls()
        for series in _default_series():
            store.put(series, source)
        return store

    def put(self, series: BarSeries, source: DataSource = DataSource.IMPORTED) -> None:
        """Store without the write rules (test set-up)."""
        self._series[(series.symbol, series.timeframe)] = (series, source)
        self._refresh()

    def _refresh(self) -> None:
        self._coverage = tuple(coverage_of(s, src) for s, src in self._series.values() if s)

    async def coverage(self) -> Sequence[Coverage]:
        return self._coverage

    async def read(
        self, symbols: Sequence[str], timeframe: Timeframe, first: int, last: int
    ) -> dict[str, BarSeries]:
        self.reads += 1
        result: dict[str, BarSeries] = {}
        for symbol in symbols:
            stored = self._series.get((symbol, timeframe))
            result[symbol] = (
                stored[0].between(first, last) if stored else BarSeries.empty(symbol, timeframe)
            )
        return result

    async def write(self, series: BarSeries, source: DataSource, *, replace: bool) -> Coverage:
        key = (series.symbol, series.timeframe)
        stored = self._series.get(key)
        stored_coverage = coverage_of(*stored) if stored else None
        base = BarSeries.empty(series.symbol, series.timeframe)
        if stored is not None and not plan_write(stored_coverage, series, source, replace=replace):
            base = stored[0]
        else:
            plan_write(stored_coverage, series, source, replace=replace)
        merged = merge_series(base, series)
        self._series[key] = (merged, source)
        self._refresh()
        return coverage_of(merged, source)

    async def remove(self, symbol: str, timeframe: Timeframe | None = None) -> int:
        keys = [k for k in self._series if k[0] == symbol and timeframe in (None, k[1])]
        removed = sum(len(self._series.pop(k)[0]) for k in keys)
        self._refresh()
        return removed


class InMemoryCatalog:
    """A `SymbolCatalog` over a list of instruments; `add` appends to it."""

    def __init__(self, instruments: Iterable[Instrument] = DEFAULT_INSTRUMENTS) -> None:
        self._instruments: tuple[Instrument, ...] = ()
        self._by_key: dict[str, Instrument] = {}
        for item in instruments:
            self.add(item)

    def lookup(self, key: str) -> Instrument | None:
        return self._by_key.get(key)

    def instruments(self) -> Sequence[Instrument]:
        return self._instruments

    def markets(self) -> Sequence[str]:
        return tuple(sorted({i.exchange for i in self._instruments}))

    def add(self, item: Instrument) -> None:
        if item.key in self._by_key:
            raise ValueError(f"{item.symbol} collides with {self._by_key[item.key].symbol}")
        self._instruments = (*self._instruments, item)
        self._by_key[item.key] = item


def limits_for(plan: Plan = Plan.PROFESSIONAL, **overrides: int) -> Limits:
    """A plan's default limits with some replaced: `limits_for(Plan.FREE, sessions_per_hour=99)`."""
    return dataclasses.replace(PLAN_DEFAULTS[plan], **overrides)


def principal(
    plan: Plan = Plan.PROFESSIONAL,
    user_id: str = "user_1",
    limits: Limits | None = None,
    key_id: str = "",
) -> Principal:
    """An authenticated caller; the plan's default limits unless `limits` is given."""
    return Principal(user_id, plan, limits if limits is not None else PLAN_DEFAULTS[plan], key_id)


def session_params(
    symbols: Sequence[str] = ("AAPL",),
    start: str = "2023-01-03",
    end: str = "2023-12-29",
    initial_capital: Decimal | str = "100000.00",
    metadata: Mapping[str, Any] | None = None,
    engine: EngineSettings | None = None,
    timeframe: Timeframe = Timeframe.D1,
) -> SessionParams:
    """Parameters of a request that every default catalog and plan accepts."""
    return SessionParams(
        symbols=tuple(symbols),
        date_range=DateRange.parse(start, end),
        initial_capital=Decimal(initial_capital),
        metadata=dict(metadata) if metadata is not None else {},
        engine=engine if engine is not None else EngineSettings(),
        timeframe=timeframe,
    )


def make_validator(
    catalog: SymbolCatalog | None = None,
    clock: Clock | None = None,
    cache_size: int = 4096,
    cache_ttl_seconds: float = 300.0,
    store: BarStore | None = None,
    metrics: ServiceMetrics = NO_METRICS,
) -> MarketDataValidator:
    return MarketDataValidator(
        catalog if catalog is not None else InMemoryCatalog(),
        store if store is not None else InMemoryBarStore.with_defaults(),
        clock if clock is not None else FakeClock(),
        cache_size=cache_size,
        cache_ttl_seconds=cache_ttl_seconds,
        metrics=metrics,
    )


def make_service(
    *,
    clock: Clock | None = None,
    ids: IdGenerator | None = None,
    catalog: SymbolCatalog | None = None,
    repository: SessionRepository | None = None,
    rate_limiter: RateLimiter | None = None,
    policy: SessionPolicy | None = None,
    validator: MarketDataValidator | None = None,
    metrics: ServiceMetrics = NO_METRICS,
) -> SessionService:
    """A `SessionService` over the real in-memory repository and rate limiter, with fakes for
    time, ids and the catalog. Pass in whatever the test wants to inspect or drive."""
    clock = clock if clock is not None else FakeClock()
    return SessionService(
        repository=repository if repository is not None else InMemorySessionRepository(),
        validator=validator
        if validator is not None
        else make_validator(catalog, clock, metrics=metrics),
        clock=clock,
        ids=ids if ids is not None else FakeIds(),
        rate_limiter=rate_limiter if rate_limiter is not None else InMemoryRateLimiter(),
        policy=policy if policy is not None else SessionPolicy(),
        metrics=metrics,
    )


# ---------------------------------------------------------------- failure injection
# Added for tests/unit/test_dispatcher.py; append new fakes below this section.


class FailingSessionRepository(InMemorySessionRepository):
    """The in-memory repository, except that while `failure` is set every operation raises
    it: drives a use case into errors it cannot produce by itself (a store that crashes, or
    a rejection that no wire message can reach yet, such as INVALID_STATE)."""

    def __init__(self, failure: Exception | None = None) -> None:
        super().__init__()
        self.failure = failure

    def _fail_if_set(self) -> None:
        if self.failure is not None:
            raise self.failure

    async def add_if_under_limit(
        self, session: SimulationSession, max_active: int, now: datetime
    ) -> bool:
        self._fail_if_set()
        return await super().add_if_under_limit(session, max_active, now)

    async def get(self, session_id: str) -> SimulationSession | None:
        self._fail_if_set()
        return await super().get(session_id)

    async def list_by_owner(self, owner: str) -> Sequence[SimulationSession]:
        self._fail_if_set()
        return await super().list_by_owner(owner)

    async def remove(self, session_id: str) -> SimulationSession | None:
        self._fail_if_set()
        return await super().remove(session_id)


# ---------------------------------------------------------------- bar builders
# Added for the bar-store tests (unit, property, concurrency).

BARS_START = datetime(2024, 1, 2, 21, 0, tzinfo=UTC)
"""Where `bars_of` starts unless told otherwise (a Tuesday's 16:00 New York close)."""


def bars_of(
    symbol: str,
    *closes: str,
    start: datetime = BARS_START,
    timeframe: Timeframe = Timeframe.D1,
    volume: str = "100",
) -> BarSeries:
    """One bar per price, a timeframe apart from `start`: open = high = low = close."""
    step = timedelta(seconds=timeframe.seconds)
    return BarSeries.from_bars(
        symbol,
        timeframe,
        [
            Bar(start + i * step, Decimal(c), Decimal(c), Decimal(c), Decimal(c), Decimal(volume))
            for i, c in enumerate(closes)
        ],
    )


METRIC_NAMES: tuple[str, ...] = (
    "total_return_pct",
    "annual_return_pct",
    "annual_volatility_pct",
    "sharpe_ratio",
    "sortino_ratio",
    "max_drawdown_pct",
    "calmar_ratio",
    "final_equity",
    "total_trades",
    "winning_trades",
    "win_rate_pct",
    "profit_factor",
    "avg_trade_pct",
    "best_trade_pct",
    "worst_trade_pct",
    "exposure_pct",
    "total_commission",
    "total_slippage",
    "equity_peak",
    "buy_and_hold_return_pct",
    "cagr_pct",
    "avg_drawdown_pct",
    "max_drawdown_duration_days",
    "avg_drawdown_duration_days",
    "max_trade_duration_days",
    "avg_trade_duration_days",
    "expectancy_pct",
    "sqn",
    "kelly_criterion",
    "alpha_pct",
    "beta",
)
"""The §4.6 metrics, in the protocol's order: every results shape must carry exactly these."""


# ---------------------------------------------------------------- operating metrics
# Added for tests/unit/test_service_metrics.py.


class RecordingMetrics:
    """`ServiceMetrics` that keeps every report, in order, as (event, argument)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def count(self, event: str, argument: object = None) -> int:
        return sum(1 for e, a in self.events if e == event and (argument is None or a == argument))

    def session_created(self) -> None:
        self.events.append(("session_created", None))

    def session_refused(self, code: str) -> None:
        self.events.append(("session_refused", code))

    def validation_timed(self, seconds: float) -> None:
        self.events.append(("validation_timed", seconds))

    def validation_cache(self, hit: bool) -> None:
        self.events.append(("validation_cache", hit))

    def simulation_started(self) -> None:
        self.events.append(("simulation_started", None))

    def simulation_completed(self) -> None:
        self.events.append(("simulation_completed", None))

    def simulation_failed(self) -> None:
        self.events.append(("simulation_failed", None))

    def ticks_processed(self, count: int) -> None:
        self.events.append(("ticks_processed", count))

    def expiry_swept(self, removed: int) -> None:
        self.events.append(("expiry_swept", removed))

    def connection_opened(self) -> None:
        self.events.append(("connection_opened", None))

    def connection_closed(self, code: int) -> None:
        self.events.append(("connection_closed", code))


class InlineExecutor:
    """`TrialExecutor` running each trial in this process, in order, through a function;
    `interrupt_after` raises KeyboardInterrupt (as Ctrl-C would) once that many are done."""

    def __init__(self, run: Any, *, interrupt_after: int | None = None) -> None:
        self._run = run
        self.interrupt_after = interrupt_after
        self.ran: list[Any] = []
        self.closed = False

    @property
    def workers(self) -> int:
        return 1

    def run(self, trials: Sequence[Any]) -> Any:
        for trial in trials:
            if self.interrupt_after is not None and len(self.ran) >= self.interrupt_after:
                raise KeyboardInterrupt
            self.ran.append(trial)
            yield self._run(trial)

    def close(self) -> None:
        self.closed = True
