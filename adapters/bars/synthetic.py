"""Synthetic daily bars: a seeded random walk per symbol on its exchange's trading days, so a
fresh server can run whole simulations with no data imported (always marked synthetic)."""

from __future__ import annotations

import hashlib
import math
import random
from datetime import date, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from domain.bars import BarSeries, Timeframe, decimal_places, epoch_seconds
from domain.calendar import is_trading_day
from domain.exchanges import daily_close, hours_of
from domain.symbols import AssetClass, Instrument

# (annual volatility, annual drift, typical daily volume) per asset class.
_PROFILE = {
    AssetClass.STOCK: (0.28, 0.07, 5_000_000),
    AssetClass.FOREX: (0.08, 0.0, 200_000),
    AssetClass.CRYPTO: (0.70, 0.15, 30_000),
    AssetClass.COMMODITY: (0.25, 0.02, 150_000),
}
_REVERSION_PER_DAY = 1 / 500
_TRADING_DAYS_PER_YEAR = {
    AssetClass.STOCK: 252,
    AssetClass.FOREX: 260,
    AssetClass.CRYPTO: 365,
    AssetClass.COMMODITY: 252,
}


def _seed(ticker: str) -> int:
    """Stable across processes and machines (unlike `hash`)."""
    return int.from_bytes(hashlib.sha256(ticker.encode()).digest()[:8], "big")


def _start_price(rng: random.Random, instrument: Instrument) -> float:
    asset_class = instrument.symbol.asset_class
    if asset_class is AssetClass.FOREX:
        return rng.uniform(80, 150) if instrument.currency == "JPY" else rng.uniform(0.6, 1.6)
    if asset_class is AssetClass.CRYPTO:
        return rng.uniform(100, 1000)
    return rng.uniform(20, 200)


class RandomWalkBarGenerator:
    """`BarGenerator`: geometric Brownian motion with intraday range and volume noise,
    prices on the instrument's tick grid."""

    def generate(self, instrument: Instrument, first: date, last: date) -> BarSeries:
        ticker = instrument.symbol.ticker
        asset_class = instrument.symbol.asset_class
        rng = random.Random(_seed(ticker))
        volatility, drift, volume = _PROFILE[asset_class]
        per_year = _TRADING_DAYS_PER_YEAR[asset_class]
        sigma = volatility / math.sqrt(per_year)
        mu = drift / per_year - sigma * sigma / 2
        tick = instrument.tick_size
        scale = decimal_places(tick)
        step = int(tick.scaleb(scale))
        hours = hours_of(instrument)
        calendar = asset_class.calendar

        def on_grid(price: float, rounding: str) -> int:
            ticks = (Decimal(repr(price)) / tick).to_integral_value(rounding)
            return max(int(ticks), 1) * step

        series = BarSeries.empty(ticker, Timeframe.D1, scale, 0)
        close = _start_price(rng, instrument)
        # A gentle pull towards the drifting trend keeps decades-long walks at plausible
        # prices instead of wandering to a tick or to the moon.
        trend = math.log(close)
        day = first
        while day <= last:
            if is_trading_day(day, calendar):
                trend += drift / per_year
                pull = _REVERSION_PER_DAY * (trend - math.log(close))
                open_ = close * math.exp(rng.gauss(0, sigma * 0.2))
                close = open_ * math.exp(mu + pull + rng.gauss(0, sigma))
                spread = abs(rng.gauss(0, sigma * 0.5))
                o = on_grid(open_, ROUND_FLOOR)
                c = on_grid(close, ROUND_FLOOR)
                h = max(on_grid(max(open_, close) * (1 + spread), ROUND_CEILING), o, c)
                lo = min(on_grid(min(open_, close) * (1 - spread), ROUND_FLOOR), o, c)
                series.times.append(epoch_seconds(daily_close(day, hours)))
                series.opens.append(o)
                series.highs.append(h)
                series.lows.append(lo)
                series.closes.append(c)
                series.volumes.append(int(volume * rng.lognormvariate(0, 0.4)))
            day += timedelta(days=1)
        return series
