"""Historical bars as the engine reads them: timeframes, coverage, and a columnar series of
fixed-point integers (one `array` per field, never a Python object per bar)."""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from domain.errors import DataConflict, ValidationFailed
from domain.money import MONEY_CONTEXT

INT64_MAX = 2**63 - 1
MAX_SCALE = 12
"""Most decimal places a stored price or volume keeps (values are exact up to this)."""


class Timeframe(StrEnum):
    """The bar lengths a session can ask for (PROTOCOL.md §2.1)."""

    D1 = "1d"
    H1 = "1h"
    M5 = "5m"
    M1 = "1m"

    @property
    def seconds(self) -> int:
        return _SECONDS[self]

    @property
    def is_intraday(self) -> bool:
        return self is not Timeframe.D1

    @classmethod
    def parse(cls, value: str) -> Timeframe:
        try:
            return cls(value.strip().lower())
        except ValueError:
            raise ValidationFailed(
                "timeframe",
                f"Unknown timeframe '{value}'",
                allowed=[t.value for t in cls],
            ) from None


_SECONDS = {Timeframe.D1: 86_400, Timeframe.H1: 3_600, Timeframe.M5: 300, Timeframe.M1: 60}


class DataSource(StrEnum):
    """Where a stored series came from. Imported data always wins over synthetic."""

    IMPORTED = "imported"
    SYNTHETIC = "synthetic"


@dataclass(frozen=True, slots=True)
class Coverage:
    """What the store holds for one (symbol, timeframe): bar-close instants, UTC."""

    symbol: str
    timeframe: Timeframe
    first: datetime
    last: datetime
    bars: int
    source: DataSource


class Bar(NamedTuple):
    """One bar with exact prices; `time` is the bar's close instant (UTC). A named tuple:
    the engine hands one per symbol and bar to strategies, so it must be cheap to make."""

    time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


def epoch_seconds(instant: datetime) -> int:
    """An aware datetime as whole seconds since the Unix epoch."""
    return int(instant.timestamp())


def from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def decimal_places(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def to_fixed(value: Decimal, scale: int) -> int:
    """`value` * 10^scale as an int; exact, or ValueError when it has more places.
    (In the money context, not the caller's, which may round.)"""
    try:
        scaled = value.scaleb(scale, MONEY_CONTEXT)
    except ArithmeticError:
        raise ValueError(f"{value} does not fit {scale} decimal places") from None
    integral = int(scaled)
    if scaled != integral:
        raise ValueError(f"{value} has more than {scale} decimal places")
    return integral


def from_fixed(value: int, scale: int) -> Decimal:
    """value * 10^-scale, exactly (in the money context: the caller's may round)."""
    return Decimal(value).scaleb(-scale, MONEY_CONTEXT)


def fixed_text(value: int, scale: int) -> str:
    """`str(from_fixed(value, scale))` without making the Decimal: the digits with a point
    `scale` places from the right (what a decoded bar's prices print as, trailing zeros
    kept). The rare values Decimal prints in scientific notation (more than six zeros after
    the point, or a negative scale) go through Decimal itself."""
    if scale == 0:
        return str(value)
    digits = str(abs(value))
    if scale < 0 or len(digits) - 1 - scale < -6:
        return str(from_fixed(value, scale))
    sign = "-" if value < 0 else ""
    if len(digits) > scale:
        return f"{sign}{digits[:-scale]}.{digits[-scale:]}"
    return f"{sign}0.{digits.rjust(scale, '0')}"


def bar_problem(open_: int, high: int, low: int, close: int, volume: int) -> str | None:
    """Why a bar (fixed-point, one scale for its prices) is impossible, or None."""
    if high < max(open_, close):
        return "high is below max(open, close)"
    if low > min(open_, close):
        return "low is above min(open, close)"
    if volume < 0:
        return "volume is negative"
    return None


class BarSeries:
    """The bars of one symbol at one timeframe, in strictly increasing time order.

    Six int64 columns: close instants in epoch seconds, prices * 10^price_scale and
    volume * 10^volume_scale: 48 bytes a bar, exact, and cheap to slice."""

    __slots__ = (
        "closes",
        "highs",
        "lows",
        "opens",
        "price_scale",
        "symbol",
        "timeframe",
        "times",
        "volume_scale",
        "volumes",
    )

    def __init__(
        self,
        symbol: str,
        timeframe: Timeframe,
        price_scale: int,
        volume_scale: int,
        times: array[int],
        opens: array[int],
        highs: array[int],
        lows: array[int],
        closes: array[int],
        volumes: array[int],
    ) -> None:
        n = len(times)
        if not all(len(c) == n for c in (opens, highs, lows, closes, volumes)):
            raise ValueError("every column of a BarSeries has one value per bar")
        self.symbol = symbol
        self.timeframe = timeframe
        self.price_scale = price_scale
        self.volume_scale = volume_scale
        self.times = times
        self.opens = opens
        self.highs = highs
        self.lows = lows
        self.closes = closes
        self.volumes = volumes

    @classmethod
    def empty(
        cls, symbol: str, timeframe: Timeframe, price_scale: int = 0, volume_scale: int = 0
    ) -> BarSeries:
        return cls(symbol, timeframe, price_scale, volume_scale, *(array("q") for _ in range(6)))

    @classmethod
    def from_bars(cls, symbol: str, timeframe: Timeframe, bars: Iterable[Bar]) -> BarSeries:
        """Columns from exact bars, at the fewest decimal places that keep every value."""
        rows = list(bars)
        price_scale = max(
            (decimal_places(p) for b in rows for p in (b.open, b.high, b.low, b.close)),
            default=0,
        )
        volume_scale = max((decimal_places(b.volume) for b in rows), default=0)
        if price_scale > MAX_SCALE or volume_scale > MAX_SCALE:
            raise ValueError(f"prices and volumes keep at most {MAX_SCALE} decimal places")
        series = cls.empty(symbol, timeframe, price_scale, volume_scale)
        for b in rows:
            series.times.append(epoch_seconds(b.time))
            series.opens.append(to_fixed(b.open, price_scale))
            series.highs.append(to_fixed(b.high, price_scale))
            series.lows.append(to_fixed(b.low, price_scale))
            series.closes.append(to_fixed(b.close, price_scale))
            series.volumes.append(to_fixed(b.volume, volume_scale))
        return series

    def __len__(self) -> int:
        return len(self.times)

    def __repr__(self) -> str:
        span = f"{from_epoch(self.times[0])}..{from_epoch(self.times[-1])}" if self else "empty"
        return f"BarSeries({self.symbol} {self.timeframe.value}, {len(self)} bars, {span})"

    @property
    def columns(self) -> tuple[array[int], ...]:
        return (self.times, self.opens, self.highs, self.lows, self.closes, self.volumes)

    @property
    def nbytes(self) -> int:
        """Bytes held by the bar columns."""
        return sum(c.itemsize * len(c) for c in self.columns)

    def price(self, value: int) -> Decimal:
        return from_fixed(value, self.price_scale)

    def volume(self, value: int) -> Decimal:
        return from_fixed(value, self.volume_scale)

    def bar(self, i: int) -> Bar:
        p = self.price_scale
        return Bar(
            from_epoch(self.times[i]),
            from_fixed(self.opens[i], p),
            from_fixed(self.highs[i], p),
            from_fixed(self.lows[i], p),
            from_fixed(self.closes[i], p),
            from_fixed(self.volumes[i], self.volume_scale),
        )

    def bars(self) -> list[Bar]:
        return [self.bar(i) for i in range(len(self))]

    def slice(self, start: int, stop: int) -> BarSeries:
        """Bars [start, stop). The whole series is returned as is (columns are never
        mutated once a series is shared), so a full-range read holds one copy, not two."""
        if start <= 0 and stop >= len(self.times):
            return self
        return BarSeries(
            self.symbol,
            self.timeframe,
            self.price_scale,
            self.volume_scale,
            *(c[start:stop] for c in self.columns),
        )

    def between(self, first: int, last: int) -> BarSeries:
        """The bars whose close instant (epoch seconds) lies in [first, last]."""
        return self.slice(bisect_left(self.times, first), bisect_right(self.times, last))

    def rescaled(self, price_scale: int, volume_scale: int) -> BarSeries:
        """The same bars at more decimal places (exact: scales only ever grow)."""
        if price_scale < self.price_scale or volume_scale < self.volume_scale:
            raise ValueError("a series is only rescaled to more decimal places")
        pf, vf = 10 ** (price_scale - self.price_scale), 10 ** (volume_scale - self.volume_scale)
        if pf == 1 and vf == 1:
            return self
        prices = [array("q", (v * pf for v in c)) for c in self.columns[1:5]]
        volumes = array("q", (v * vf for v in self.volumes))
        opens, highs, lows, closes = prices
        return BarSeries(
            self.symbol,
            self.timeframe,
            price_scale,
            volume_scale,
            self.times,
            opens,
            highs,
            lows,
            closes,
            volumes,
        )

    def problems(self) -> list[tuple[int, str]]:
        """(index, reason) for every bar that breaks PROTOCOL.md §5, in order."""
        found: list[tuple[int, str]] = []
        previous: int | None = None
        for i in range(len(self)):
            reason = bar_problem(
                self.opens[i], self.highs[i], self.lows[i], self.closes[i], self.volumes[i]
            )
            t = self.times[i]
            if reason is None and previous is not None and t <= previous:
                reason = "time is not after the previous bar's"
            if reason is not None:
                found.append((i, reason))
            previous = t
        return found


def merge_series(base: BarSeries, incoming: BarSeries) -> BarSeries:
    """`base` with every bar inside [first, last] of `incoming` replaced by `incoming`'s."""
    if not incoming:
        return base
    if not base:
        return incoming
    price_scale = max(base.price_scale, incoming.price_scale)
    volume_scale = max(base.volume_scale, incoming.volume_scale)
    old = base.rescaled(price_scale, volume_scale)
    new = incoming.rescaled(price_scale, volume_scale)
    lo = bisect_left(old.times, new.times[0])
    hi = bisect_right(old.times, new.times[-1])
    times, opens, highs, lows, closes, volumes = (
        o[:lo] + n + o[hi:] for o, n in zip(old.columns, new.columns, strict=True)
    )
    return BarSeries(
        base.symbol,
        base.timeframe,
        price_scale,
        volume_scale,
        times,
        opens,
        highs,
        lows,
        closes,
        volumes,
    )


def coverage_of(series: BarSeries, source: DataSource) -> Coverage:
    """The coverage of a non-empty series."""
    return Coverage(
        series.symbol,
        series.timeframe,
        from_epoch(series.times[0]),
        from_epoch(series.times[-1]),
        len(series),
        source,
    )


def plan_write(
    stored: Coverage | None, incoming: BarSeries, source: DataSource, *, replace: bool
) -> bool:
    """Whether a store may write `incoming` over `stored`, by PROTOCOL.md §5: imported data
    wins over synthetic, and overlapping bars are only replaced when asked. Returns True
    when the stored series must be dropped first (imported over synthetic); raises
    `DataConflict` when the write is refused."""
    if not incoming:
        raise DataConflict(f"No bars to store for {incoming.symbol}", {"symbol": incoming.symbol})
    if stored is None:
        return False
    where = {"symbol": stored.symbol, "timeframe": stored.timeframe.value}
    if stored.source is DataSource.SYNTHETIC and source is DataSource.IMPORTED:
        return True
    if stored.source is DataSource.IMPORTED and source is DataSource.SYNTHETIC:
        raise DataConflict(
            f"{stored.symbol} {stored.timeframe.value} holds imported bars; synthetic bars "
            "never replace them",
            where,
        )
    overlaps = incoming.times[0] <= epoch_seconds(stored.last) and (
        incoming.times[-1] >= epoch_seconds(stored.first)
    )
    if overlaps and not replace:
        raise DataConflict(
            f"{stored.symbol} {stored.timeframe.value} already has bars from {stored.first} "
            f"to {stored.last}, which the new bars overlap; replace them explicitly to "
            "overwrite",
            {
                **where,
                "stored_first": stored.first.isoformat(),
                "stored_last": stored.last.isoformat(),
            },
        )
    return False


def union_times(series: Sequence[BarSeries]) -> list[int]:
    """Every distinct close instant of several series, in order: one tick each."""
    if len(series) == 1:
        return list(series[0].times)
    merged: set[int] = set()
    for s in series:
        merged.update(s.times)
    return sorted(merged)
