"""Series a strategy draws over the price (`ctx.plot`), and what a run asked for (`RunInfo`):
what the HTML report shows besides the results themselves."""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


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
