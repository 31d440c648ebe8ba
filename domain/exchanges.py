"""Where and when markets close: each exchange's time zone and daily close, and the UTC
instants that bound a span of trading days (pure; zone rules come from the stdlib's tz data)."""

from __future__ import annotations

from array import array
from bisect import bisect_right
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


def trading_day_runs(close_epochs: Sequence[int], hours: ExchangeHours) -> list[tuple[int, int]]:
    """For sorted bar closes: (end index, day ordinal) for each run of bars that share a
    trading day, in order, days strictly increasing. A few zone lookups per day, not per bar.

    Where clocks go back over midnight (America/St_Johns on 2010-11-07 went from 00:01 back
    to 23:01), the bars of the repeated hour stay in the day already begun: days never go
    back. Every run holds at least one bar, whatever the zone's rules."""
    tz = hours.tz
    runs: list[tuple[int, int]] = []
    i, n = 0, len(close_epochs)
    while i < n:
        start = close_epochs[i] - 1
        local = datetime.fromtimestamp(start, tz)
        ordinal = local.toordinal()
        if runs and ordinal <= runs[-1][1]:
            ordinal = runs[-1][1]
        boundary = _day_end(start, local, ordinal, tz)
        end = bisect_right(close_epochs, boundary, i)  # > i: boundary > close_epochs[i] - 1
        if runs and runs[-1][1] == ordinal:
            runs[-1] = (end, ordinal)
        else:
            runs.append((end, ordinal))
        i = end
    return runs


def _day_end(start: int, local: datetime, ordinal: int, tz: ZoneInfo) -> int:
    """The first epoch second after `start` (seen as `local`) whose local date is past the
    day `ordinal`: the wall-clock distance to midnight, corrected by the offset change on
    the way; a search when midnight itself is skipped or repeated."""
    seconds_of_day = local.hour * 3600 + local.minute * 60 + local.second
    guess = start + (ordinal + 1 - local.toordinal()) * 86_400 - seconds_of_day
    offset = local.utcoffset()
    later = datetime.fromtimestamp(guess, tz).utcoffset()
    shift = int((later - offset).total_seconds()) if later is not None and offset else 0
    for candidate in (guess - shift, guess):
        if candidate > start and _is_day_end(candidate, ordinal, tz):
            return candidate
    lo, hi = start, start + 3 * 86_400  # the local date is past the day at hi, not at lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).toordinal() > ordinal:
            hi = mid
        else:
            lo = mid
    return hi


def _is_day_end(candidate: int, ordinal: int, tz: ZoneInfo) -> bool:
    return (
        datetime.fromtimestamp(candidate, tz).toordinal() > ordinal
        and datetime.fromtimestamp(candidate - 1, tz).toordinal() <= ordinal
    )


def trading_day_ordinals(close_epochs: Sequence[int], hours: ExchangeHours) -> array[int]:
    """`trading_day(t).toordinal()` for each of many sorted bar closes."""
    result = array("q")
    start = 0
    for end, ordinal in trading_day_runs(close_epochs, hours):
        result.extend(array("q", [ordinal]) * (end - start))
        start = end
    return result


def last_of_day_flags(close_epochs: Sequence[int], hours: ExchangeHours) -> array[int]:
    """1 where a bar is the last of its trading day, else 0."""
    flags = array("b", [0]) * len(close_epochs)
    for end, _ in trading_day_runs(close_epochs, hours):
        flags[end - 1] = 1
    return flags
