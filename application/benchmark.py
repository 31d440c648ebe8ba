"""The buy-and-hold benchmark of a simulation (§7.12 `buy_and_hold_return_pct`, `alpha_pct`,
`beta`): the session's symbols, equal-weighted, valued at each point of the daily equity."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from datetime import timedelta

from domain.bars import BarSeries
from domain.metrics import equal_weight_benchmark


def buy_and_hold_curve(
    series: Mapping[str, BarSeries],
    first_tradable: Mapping[str, int],
    ticks: Sequence[int],
    points: Sequence[int],
) -> list[int] | None:
    """The benchmark at each of `points` (indices of `ticks`, ascending: where the daily
    equity has a point), from each symbol's latest tradable close at or before it (warm-up
    bars excluded), as integers proportional to its value (exact; what its returns need).
    `ticks` are the distinct times of the symbols' tradable bars. `None` without points or
    symbols."""
    if not points or not series:
        return None
    closes: dict[str, list[int | None]] = {}
    for symbol, bars in series.items():
        first = first_tradable[symbol]
        times, raw = bars.times, bars.closes
        if len(times) - first == len(ticks):  # a bar on every tick: tick k is bar first + k
            closes[symbol] = [raw[first + k] for k in points]
            continue
        column: list[int | None] = []
        i = first - 1  # the latest bar at or before the tick, advanced as the ticks are
        for k in points:
            i = bisect_right(times, ticks[k], i + 1) - 1
            column.append(raw[i] if i >= first else None)
        closes[symbol] = column
    return equal_weight_benchmark(closes)


def shortest_bar(series: Mapping[str, BarSeries]) -> timedelta:
    """The shortest bar length among the session's series (a day without any)."""
    return timedelta(seconds=min((s.timeframe.seconds for s in series.values()), default=86_400))
