"""Building a session's simulation: its instruments looked up in the catalog, its bars (and
the warm-up bars before them) read from the bar store, over each exchange's trading days."""

from __future__ import annotations

from application.ports import BarStore, SymbolCatalog
from application.records import AccountUpdates
from application.simulation.core import Simulation
from domain.bars import merge_series
from domain.errors import DataUnavailable, InvalidSymbol
from domain.exchanges import hours_of, trading_day_bounds
from domain.session import SimulationSession
from domain.symbols import symbol_key

WARMUP_LOOKBACK_FACTOR = 4
"""Calendar time read per warm-up bar wanted, to step over weekends and holidays."""
MAX_WARMUP_BARS = 10_000


class SimulationBuilder:
    """Makes fresh simulations of sessions over the bars stored now."""

    def __init__(self, catalog: SymbolCatalog, store: BarStore) -> None:
        self._catalog = catalog
        self._store = store

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
            tick_sizes={i.symbol.ticker: i.tick_size for i in instruments},
        )
