"""The per-row rules for single values of a bar file: decimal text to fixed-point ints,
dates, times of day, epochs, Yahoo's adjustment, and a bar's order against the one before.
The block path (`columns`) must agree with these."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal

from adapters.bars.csv_import.header import Layout
from domain.bars import MAX_SCALE
from domain.dates import format_instant

ADJUSTED_PLACES = 6
"""Yahoo prices scaled by Adj Close / Close are rounded (half-even) to this many places."""

EPOCH_MS_FROM = 10**11  # 10^11 s is the year 5138: anything this large counts milliseconds
EPOCH_DAY = date(1970, 1, 1).toordinal()
POW10 = [10**i for i in range(2 * MAX_SCALE + 1)]


class BadField(Exception):
    """Why one value of a row is refused; the reason becomes the line's `Problem`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_NUMBER = re.compile(r"(-?)([0-9]*)(?:\.([0-9]*))?")
_DATE = re.compile(r"([0-9]{4})-?([0-9]{2})-?([0-9]{2})")
_TIME_OF_DAY = re.compile(
    r"([0-9]{2}):?([0-9]{2})(?::?([0-9]{2})(?:\.([0-9]+))?)?"
    r"([Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?"
)
EPOCH = re.compile(r"-?[0-9]+")


def parse_decimal(text: str, name: str) -> tuple[int, int]:
    """Decimal text as (value * 10^places, places); never through a float."""
    value = text.strip()
    if not value:
        raise BadField(f"{name} is empty")
    match = _NUMBER.fullmatch(value)
    if match is None or not (match[2] or match[3]):
        raise BadField(f"{name} is not a number: {value!r}")
    sign, whole, fraction = match[1], match[2], match[3] or ""
    if len(fraction) > MAX_SCALE:
        raise BadField(f"{name} has more than {MAX_SCALE} decimal places: {value!r}")
    try:
        number = int(whole + fraction)
    except ValueError:  # over Python's 4300-digit limit for int()
        raise BadField(f"{name} is too large: {value!r}") from None
    return (-number if sign else number), len(fraction)


def parse_day(text: str) -> date:
    match = _DATE.fullmatch(text)
    if match is None:
        raise BadField(f"time {text!r} is not a date")
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise BadField(f"time {text!r} is not a date") from None


def parse_time_of_day(text: str) -> tuple[int, int | None]:
    """'HH:MM[:SS]' or 'HHMMSS', maybe with an offset, as (seconds, offset seconds | None)."""
    match = _TIME_OF_DAY.fullmatch(text)
    if match is None:
        raise BadField(f"time of day {text!r} is not HH:MM[:SS]")
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise BadField(f"time of day {text!r} is not HH:MM[:SS]")
    if match[4] and match[4].strip("0"):
        raise BadField(f"time has a fraction of a second: {text!r}")
    offset: int | None = None
    if match[5]:
        zone = match[5]
        if zone in "Zz":
            offset = 0
        else:
            digits = zone[1:].replace(":", "")
            offset = int(digits[:2]) * 3600 + int(digits[2:4] or 0) * 60
            offset = -offset if zone[0] == "-" else offset
    return hour * 3600 + minute * 60 + second, offset


def split_timestamp(text: str) -> tuple[str, str | None]:
    """A one-column timestamp as (date part, time-of-day part or None)."""
    if len(text) > 10 and text[10] in "Tt ":
        return text[:10], text[11:].strip()
    if len(text) > 8 and text[8] in "Tt" and text[:8].isdigit():
        return text[:8], text[9:].strip()
    return text, None


def naive_day_epoch(text: str) -> int:
    return (parse_day(text).toordinal() - EPOCH_DAY) * 86_400


_ADJUST = Context(prec=60)  # ample for exact products of two 19-digit decimals


def all_null(text: str, layout: Layout) -> bool:
    """Every field but the time is `null` (Yahoo's row for a day without trading)."""
    fields = text.split(",")
    if len(fields) != layout.width:
        return False
    times = {layout.time, layout.time_of_day}
    return all(f.strip() == "null" for i, f in enumerate(fields) if i not in times)


def order_problem(close: int, previous: int | None) -> str | None:
    if previous is None or close > previous:
        return None
    shown = format_instant(datetime.fromtimestamp(close, UTC))
    if close == previous:
        return f"duplicate time: the bar before also closes at {shown}"
    return f"time goes backwards: this bar closes at {shown}, before the bar above it"


def epoch_seconds(value: int, *, whole: bool = True) -> int:
    """Epoch seconds, or milliseconds told apart by magnitude, as seconds."""
    if abs(value) < EPOCH_MS_FROM:
        return value
    seconds, millis = divmod(value, 1000)
    if millis and whole:
        raise BadField(f"epoch milliseconds {value} have a fraction of a second")
    return seconds


def adjusted_prices(
    prices: tuple[tuple[int, int], ...], adj_close: tuple[int, int]
) -> tuple[tuple[int, int], ...]:
    """OHLC times Adj Close / Close, rounded half-even to ADJUSTED_PLACES (monotone, so a
    valid bar stays valid)."""
    context = _ADJUST
    close = Decimal(prices[3][0]).scaleb(-prices[3][1])
    if not close:
        raise BadField("close is 0, so Adj Close / Close is undefined")
    adj = Decimal(adj_close[0]).scaleb(-adj_close[1])
    quantum = Decimal(1).scaleb(-ADJUSTED_PLACES)
    adjusted = []
    for value, places in prices:
        scaled = context.divide(context.multiply(Decimal(value).scaleb(-places), adj), close)
        rounded = scaled.quantize(quantum, rounding=ROUND_HALF_EVEN, context=context)
        adjusted.append((int(rounded.scaleb(ADJUSTED_PLACES)), ADJUSTED_PLACES))
    return tuple(adjusted)
