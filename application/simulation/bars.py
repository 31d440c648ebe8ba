"""The bars of a simulation's symbols as its stepping core reads them, by index (warm-up bars
first): exact quotes for the fill rules, whole bars and columns decoded when read, and which
bars end a symbol's trading day."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from decimal import Decimal

from application.simulation.columns import (
    DECODED_BARS_HELD,
    DecodedBars,
    DecodedColumn,
    column,
    day_runs,
    unit,
)
from domain.bars import Bar, BarSeries
from domain.exchanges import ExchangeHours
from domain.fills import BarQuote


class SimulationBars:
    """Each symbol's series, read by bar index; nothing is decoded before it is read.
    `units[symbol]` is 10^-price_scale: a raw price times it is the exact price."""

    __slots__ = ("_closes", "_columns", "_day_ends", "_decoded", "_volume_units", "series", "units")

    def __init__(self, series: Mapping[str, BarSeries], hours: ExchangeHours) -> None:
        self.series = series
        # Per symbol, the indices of bars that end their trading day (None: every bar does,
        # as with daily bars), for `day` orders.
        self._day_ends: dict[str, frozenset[int] | None] = {
            sym: frozenset(end - 1 for end, _ in day_runs(s.times, hours))
            if s.timeframe.is_intraday
            else None
            for sym, s in series.items()
        }
        chunk = max(16, min(256, DECODED_BARS_HELD // max(len(series), 1)))
        self._decoded = {sym: DecodedBars(s, chunk) for sym, s in series.items()}
        self._columns: dict[tuple[str, str], DecodedColumn] = {}
        self.units = {sym: unit(s.price_scale) for sym, s in series.items()}
        self._volume_units = {sym: unit(s.volume_scale) for sym, s in series.items()}
        self._closes = {sym: column(s, "close") for sym, s in series.items()}

    def quote(self, symbol: str, i: int) -> BarQuote:  # (in the money context: the caller's)
        """Bar `i` of a symbol as the fill rules read it (decoded alone: orders are open on
        few bars of most runs)."""
        s = self.series[symbol]
        p, exact = self.units[symbol], Decimal
        day_ends = self._day_ends[symbol]
        return BarQuote(
            exact(s.opens[i]) * p,
            exact(s.highs[i]) * p,
            exact(s.lows[i]) * p,
            exact(s.closes[i]) * p,
            exact(s.volumes[i]) * self._volume_units[symbol],
            day_ends is None or i in day_ends,
        )

    def bar(self, symbol: str, i: int) -> Bar:
        """Bar `i` of a symbol's series, exact."""
        return self._decoded[symbol].at(i)

    def bars(self, symbol: str, stop: int) -> list[Bar]:
        """Bars [0, stop) of a symbol's series, exact."""
        decoded = self._decoded[symbol]
        return [decoded.at(i) for i in range(stop)]

    def index_at(self, symbol: str, t: int) -> int:
        """The index of the symbol's bar that closes at `t` (KeyError if it has none)."""
        times = self.series[symbol].times
        i = bisect_left(times, t)
        if i == len(times) or times[i] != t:
            raise KeyError(symbol)
        return i

    def column(self, symbol: str, name: str) -> DecodedColumn:
        """Column `name` of a symbol's bars, decoded when read (one per column, kept)."""
        key = (symbol, name)
        decoded = self._columns.get(key)
        if decoded is None:
            decoded = self._columns[key] = (
                self._closes[symbol] if name == "close" else column(self.series[symbol], name)
            )
        return decoded


def cursors_back_to(
    t: int,
    cursors: dict[str, int],
    times: Sequence[tuple[str, Sequence[int]]],
    first: Mapping[str, int],
) -> list[str]:
    """Move each symbol's cursor (bars delivered) back to the tick at `t`, no further than
    its first tradable bar; the symbols with a bar at `t`."""
    present: list[str] = []
    for symbol, symbol_times in times:
        i = cursors[symbol]
        while i > first[symbol] and symbol_times[i - 1] > t:
            i -= 1
        cursors[symbol] = i
        if i > first[symbol] and symbol_times[i - 1] == t:
            present.append(symbol)
    return present
