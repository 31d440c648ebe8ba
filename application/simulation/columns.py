"""What the stepping core reads off its columnar bars, decoded only when read: whole bars a
chunk at a time, single columns as windows, and each series' trading-day calendar, computed
once per distinct series in a process (sweeps build the same simulation hundreds of times)."""

from __future__ import annotations

from array import array
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from hashlib import blake2b

from domain.bars import Bar, BarSeries
from domain.exchanges import ExchangeHours, trading_day_runs
from domain.money import exact as in_money_context

DECODED_BARS_HELD = 4_096
"""Decoded bars kept at once across a simulation's symbols (bounds the decimal cache)."""

COLUMNS = {
    "open": "opens",
    "high": "highs",
    "low": "lows",
    "close": "closes",
    "volume": "volumes",
}


class DecodedBars:
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

    @in_money_context  # exact whatever the caller's context (a strategy may round its own)
    def _decode(self, first: int) -> None:
        s = self.series
        stop = min(len(s.times), first + self.chunk)
        p, v, exact = unit(s.price_scale), unit(s.volume_scale), Decimal
        self.bars = list(
            map(
                Bar,
                [datetime.fromtimestamp(t, UTC) for t in s.times[first:stop]],
                [exact(x) * p for x in s.opens[first:stop]],
                [exact(x) * p for x in s.highs[first:stop]],
                [exact(x) * p for x in s.lows[first:stop]],
                [exact(x) * p for x in s.closes[first:stop]],
                [exact(x) * v for x in s.volumes[first:stop]],
            )
        )
        self.start = first


def unit(scale: int) -> Decimal:
    """10^-scale: an integer times it is that fixed-point value, exactly (as `scaleb`, at a
    third of its cost)."""
    return Decimal(1).scaleb(-scale)


class DecodedColumn:
    """One column of a series as exact decimals, for windows that end at a cursor: decoded
    ahead a chunk at a time, so a window is a list slice, not a conversion per value."""

    __slots__ = ("chunk", "raw", "start", "stop", "unit", "values")

    def __init__(self, raw: array[int], scale: int, chunk: int = 1_024) -> None:
        self.raw = raw
        self.unit = unit(scale)
        self.chunk = chunk
        self.start = 0
        self.stop = 0
        self.values: list[Decimal] = []

    def window(self, end: int, n: int) -> list[Decimal]:
        """The values of rows [end - n, end) (from row 0 when there are fewer)."""
        first = end - n if end > n else 0
        if first < self.start or end > self.stop:
            self._decode(first, max(end, first + n + self.chunk))
        return self.values[first - self.start : end - self.start]

    def at(self, i: int) -> Decimal:
        """The value of row `i`."""
        if not self.start <= i < self.stop:
            self._decode(i, i + self.chunk)
        return self.values[i - self.start]

    @in_money_context  # exact whatever the caller's context (a strategy may round its own)
    def _decode(self, first: int, stop: int) -> None:
        stop = min(stop, len(self.raw))
        p, exact = self.unit, Decimal
        self.values = [exact(x) * p for x in self.raw[first:stop]]
        self.start, self.stop = first, stop


def column(series: BarSeries, name: str) -> DecodedColumn:
    """A decoded view of column `name` (open, high, low, close, volume) of `series`."""
    scale = series.volume_scale if name == "volume" else series.price_scale
    raw: array[int] = getattr(series, COLUMNS[name])
    return DecodedColumn(raw, scale)


class _Calendar:
    """A series' trading days: the runs of its closes, and (built when first asked for) each
    day's last close."""

    __slots__ = ("closes", "runs")

    def __init__(self, runs: list[tuple[int, int]]) -> None:
        self.runs = runs
        self.closes: dict[int, date] | None = None


_CALENDARS: OrderedDict[tuple[ExchangeHours, int, bytes], _Calendar] = OrderedDict()
_CALENDARS_HELD = 64


def _calendar(times: array[int], hours: ExchangeHours) -> _Calendar:
    """The calendar of sorted closes, computed once per distinct series and zone in a process
    (recognised by a digest of the closes: a changed series is a new one)."""
    key = (hours, len(times), blake2b(memoryview(times).cast("B"), digest_size=16).digest())
    found = _CALENDARS.get(key)
    if found is None:
        found = _CALENDARS[key] = _Calendar(trading_day_runs(times, hours))
        if len(_CALENDARS) > _CALENDARS_HELD:
            _CALENDARS.popitem(last=False)
    else:
        _CALENDARS.move_to_end(key)
    return found


def day_runs(times: array[int], hours: ExchangeHours) -> list[tuple[int, int]]:
    """`trading_day_runs` of sorted closes, computed once per distinct series and zone."""
    return _calendar(times, hours).runs


def day_closes(times: array[int], hours: ExchangeHours) -> Mapping[int, date]:
    """Index of each trading day's last close → that day, in ascending order (shared: read
    it, never change it)."""
    calendar = _calendar(times, hours)
    if calendar.closes is None:
        calendar.closes = {end - 1: date.fromordinal(day) for end, day in calendar.runs}
    return calendar.closes
