"""Where and when markets close: each exchange's time zone and daily close, and the UTC
instants that bound a span of trading days (pure; zone rules come from the stdlib's tz data)."""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from domain.symbols import AssetClass, Instrument


@dataclass(frozen=True, slots=True)
class ExchangeHours:
    """A market's home zone and the wall-clock time its daily bar closes.

    `close` of None means the day ends at midnight (the bar for day D closes at D+1 00:00)."""

    zone: str
    close: time | None

    @property
    def tz(self) -> ZoneInfo:
        return _zone(self.zone)


_NEW_YORK_CLOSE = ExchangeHours("America/New_York", time(16, 0))
_HOURS = {
    "NASDAQ": _NEW_YORK_CLOSE,
    "NYSE": _NEW_YORK_CLOSE,
    "NYSEARCA": _NEW_YORK_CLOSE,
    "AMEX": _NEW_YORK_CLOSE,
    # Forex's trading day rolls over at 17:00 New York time.
    "FOREX": ExchangeHours("America/New_York", time(17, 0)),
    "CRYPTO": ExchangeHours("UTC", None),
    "COMEX": ExchangeHours("America/New_York", time(13, 30)),
    "NYMEX": ExchangeHours("America/New_York", time(14, 30)),
    "CBOT": ExchangeHours("America/Chicago", time(13, 20)),
}
_BY_ASSET_CLASS = {
    AssetClass.STOCK: _NEW_YORK_CLOSE,
    AssetClass.FOREX: _HOURS["FOREX"],
    AssetClass.CRYPTO: _HOURS["CRYPTO"],
    AssetClass.COMMODITY: _HOURS["NYMEX"],
}


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def exchange_hours(exchange: str, asset_class: AssetClass) -> ExchangeHours:
    """The hours of a named exchange, or the usual ones of the asset class."""
    return _HOURS.get(exchange.upper(), _BY_ASSET_CLASS[asset_class])


def hours_of(instrument: Instrument) -> ExchangeHours:
    return exchange_hours(instrument.exchange, instrument.symbol.asset_class)


def daily_close(day: date, hours: ExchangeHours) -> datetime:
    """The UTC instant at which the daily bar of `day` closes."""
    if hours.close is None:
        return datetime.combine(day + timedelta(days=1), time.min, tzinfo=hours.tz).astimezone(UTC)
    return datetime.combine(day, hours.close, tzinfo=hours.tz).astimezone(UTC)


def trading_day_bounds(first: date, last: date, hours: ExchangeHours) -> tuple[int, int]:
    """Epoch seconds [lo, hi] holding every bar close that belongs to a trading day from
    `first` to `last` (inclusive) in the exchange's zone.

    A bar belongs to the day on which it closes, a close at midnight to the day it ends."""
    tz = hours.tz
    lo = datetime.combine(first, time.min, tzinfo=tz).timestamp()
    hi = datetime.combine(last + timedelta(days=1), time.min, tzinfo=tz).timestamp()
    return int(lo) + 1, int(hi)


def trading_day(close_epoch: int, hours: ExchangeHours) -> date:
    """The trading day a bar closing at `close_epoch` belongs to."""
    return datetime.fromtimestamp(close_epoch - 1, hours.tz).date()


def trading_day_ordinals(close_epochs: Sequence[int], hours: ExchangeHours) -> array[int]:
    """`trading_day(t).toordinal()` for many sorted bar closes, fast: the zone's UTC offset
    is looked up once per UTC day rather than once per bar (markets are shut when clocks
    change, so the offset at a day's noon holds for its bars)."""
    tz = hours.tz
    offsets: dict[int, int] = {}
    result = array("q")
    epoch_ordinal = _EPOCH_ORDINAL
    for t in close_epochs:
        utc_day = (t - 1) // 86_400
        offset = offsets.get(utc_day)
        if offset is None:
            noon = datetime.fromtimestamp(utc_day * 86_400 + 43_200, tz)
            delta = noon.utcoffset()
            offset = int(delta.total_seconds()) if delta is not None else 0
            offsets[utc_day] = offset
        result.append(epoch_ordinal + (t - 1 + offset) // 86_400)
    return result


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
