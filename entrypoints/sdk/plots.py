"""What the HTML report draws besides the metrics: the bars the strategy saw (`PriceTrack`),
the series it drew over them (`ctx.plot`), the orders refused, and what the run asked for
(`RunInfo`); and `Reportable`, the shape of results the report, the CSV files and pandas
read (a `BacktestResults` has it). A leaf of the SDK: it imports none of its other modules."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from domain.bars import Bar, BarSeries
from entrypoints.protocol.messages import ExecutionReportData, MetricsData, TradeData


@dataclass(frozen=True, slots=True)
class PlotSeries:
    """One named line over `symbol`'s price: a value per bar close (epoch seconds); NaN
    where the strategy plotted nothing."""

    symbol: str
    times: array[int] = field(default_factory=lambda: array("q"))
    values: array[float] = field(default_factory=lambda: array("d"))

    def add(self, time: int, value: float) -> None:
        if self.times and self.times[-1] == time:  # plotted twice on one bar: the last wins
            self.values[-1] = value
        else:
            self.times.append(time)
            self.values.append(value)


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What a run asked for: shown at the top of the report."""

    strategy: str
    symbols: tuple[str, ...]
    start: str
    end: str
    timeframe: str
    capital: Decimal
    engine_settings: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    warmup_bars: int = 0
    where: str = "in process, on the local bar store"


def _floats() -> array[float]:
    return array("d")


@dataclass(frozen=True, slots=True)
class PriceTrack:
    """The bars of one symbol as the strategy saw them (compact: for charts, not for money)."""

    times: array[int] = field(default_factory=lambda: array("q"))
    closes: array[float] = field(default_factory=_floats)
    opens: array[float] = field(default_factory=_floats)
    highs: array[float] = field(default_factory=_floats)
    lows: array[float] = field(default_factory=_floats)
    volumes: array[float] = field(default_factory=_floats)

    def add(self, time: int, bar: Bar) -> None:
        self.times.append(time)
        self.opens.append(float(bar.open))
        self.highs.append(float(bar.high))
        self.lows.append(float(bar.low))
        self.closes.append(float(bar.close))
        self.volumes.append(float(bar.volume))

    def add_prices(self, bars: Sequence[Bar]) -> None:
        """The prices of bars in order (their times added already): as `add` would, a
        column at a time."""
        if bars:
            _, opens, highs, lows, closes, volumes = zip(*bars, strict=True)
            self.opens.extend(map(float, opens))
            self.highs.extend(map(float, highs))
            self.lows.extend(map(float, lows))
            self.closes.extend(map(float, closes))
            self.volumes.extend(map(float, volumes))


PRICES_HELD = 16_384
"""Bars (all symbols) a `PriceRecorder` holds unconverted at most: about 10 MB."""


class PriceRecorder(Mapping[str, PriceTrack]):
    """symbol → the `PriceTrack` of the bars a run showed its strategy. Their times are
    kept as they come; their prices are held as the bars themselves and turned into floats
    when a track is first read (most runs are never drawn), or a batch at a time once
    `PRICES_HELD` bars wait (a pass per column, not six calls a bar)."""

    __slots__ = ("_held", "_times", "_tracks", "_waiting")

    def __init__(self, symbols: Iterable[str]) -> None:
        self._tracks = {symbol: PriceTrack() for symbol in symbols}
        self._times = {symbol: track.times for symbol, track in self._tracks.items()}
        self._held: dict[str, list[Bar]] = {symbol: [] for symbol in self._tracks}
        """Bars whose times are in their track, not yet their prices."""
        self._waiting = 0

    def add(self, time: int, bars: Mapping[str, Bar]) -> None:
        """The bars of one tick, closing at `time` (epoch seconds)."""
        for symbol, bar in bars.items():
            self._times[symbol].append(time)
            self._held[symbol].append(bar)
        self._waiting += len(bars)
        if self._waiting >= PRICES_HELD:
            for symbol in self._tracks:
                self._convert(symbol)

    def times(self, symbol: str) -> array[int]:
        """The close times of `symbol`'s bars (without converting their prices)."""
        return self._times[symbol]

    def __getitem__(self, symbol: str) -> PriceTrack:
        track = self._tracks[symbol]
        if self._held[symbol]:
            self._convert(symbol)
        return track

    def __iter__(self) -> Iterator[str]:
        return iter(self._tracks)

    def __len__(self) -> int:
        return len(self._tracks)

    def __repr__(self) -> str:
        return f"PriceRecorder({', '.join(self._tracks)})"

    def _convert(self, symbol: str) -> None:
        held = self._held[symbol]
        if held:
            self._tracks[symbol].add_prices(held)
            self._waiting -= len(held)
            held.clear()


def price_track(series: BarSeries, first: int = 0, stop: int | None = None) -> PriceTrack:
    """Bars `first` to `stop` of `series` as a `PriceTrack` (floats: for drawing only)."""
    stop = len(series) if stop is None else stop
    scale, volume_scale = 10**series.price_scale, 10**series.volume_scale

    def floats(values: array[int], divisor: int) -> array[float]:
        return array("d", [v / divisor for v in values[first:stop]])

    return PriceTrack(
        series.times[first:stop],
        floats(series.closes, scale),
        floats(series.opens, scale),
        floats(series.highs, scale),
        floats(series.lows, scale),
        floats(series.volumes, volume_scale),
    )


class PriceTracks(Mapping[str, PriceTrack]):
    """symbol → its `PriceTrack`, built from the series when first read: a run in process
    still holds its bars, and most runs (a sweep's) are never drawn."""

    __slots__ = ("_built", "_spans")

    def __init__(self, spans: Mapping[str, tuple[BarSeries, int, int]]) -> None:
        self._spans = dict(spans)
        """symbol → (series, first bar shown, bars shown up to)."""
        self._built: dict[str, PriceTrack] = {}

    def __getitem__(self, symbol: str) -> PriceTrack:
        track = self._built.get(symbol)
        if track is None:
            series, first, stop = self._spans[symbol]
            track = self._built[symbol] = price_track(series, first, stop)
        return track

    def __iter__(self) -> Iterator[str]:
        return iter(self._spans)

    def __len__(self) -> int:
        return len(self._spans)

    def __repr__(self) -> str:
        return f"PriceTracks({', '.join(self._spans)})"

    def times(self, symbol: str) -> array[int]:
        """The close times of the bars shown (without building the track)."""
        series, first, stop = self._spans[symbol]
        return series.times[first:stop]


@dataclass(frozen=True, slots=True)
class Rejection:
    """An order the engine refused outright (`on_reject`)."""

    order_id: str
    code: str
    message: str


class Line(Protocol):
    """A named line over one symbol's price: a `PlotSeries` (`ctx.plot`), or an indicator's
    values (`results.indicators`)."""

    @property
    def symbol(self) -> str: ...
    @property
    def times(self) -> array[int]: ...
    @property
    def values(self) -> array[float]: ...


class Reportable(Protocol):
    """Results as the report, the CSV files and `to_pandas` read them."""

    @property
    def session_id(self) -> str: ...
    @property
    def metrics(self) -> MetricsData: ...
    @property
    def trades(self) -> Sequence[TradeData]: ...
    @property
    def equity_curve(self) -> Sequence[tuple[date, Decimal]]: ...
    @property
    def executions(self) -> Sequence[ExecutionReportData]: ...
    @property
    def total_ticks(self) -> int: ...
    @property
    def wall_time_ms(self) -> int: ...
    @property
    def prices(self) -> Mapping[str, PriceTrack]: ...
    @property
    def plots(self) -> Mapping[str, PlotSeries]: ...
    @property
    def indicators(self) -> Mapping[str, Line]: ...
    @property
    def rejections(self) -> Sequence[Rejection]: ...
    @property
    def warnings(self) -> Sequence[str]: ...
    @property
    def currency(self) -> str: ...
    @property
    def run(self) -> RunInfo | None: ...
    @property
    def synthetic_symbols(self) -> list[str]: ...
