"""Trading calendars: NYSE full-day holidays from their rules, fast trading-day counts (pure)."""

from __future__ import annotations

import datetime
import enum
from functools import lru_cache

_MONDAY = 0
_THURSDAY = 3
_FRIDAY = 4
_SATURDAY = 5
_SUNDAY = 6
_ONE_DAY = datetime.timedelta(days=1)


class TradingCalendar(enum.Enum):
    """Which days an instrument trades on."""

    EQUITY_US = "equity_us"  # Monday to Friday, minus NYSE full-day holidays (stocks)
    FIVE_DAY = "five_day"  # Monday to Friday, every week (forex, futures)
    SEVEN_DAY = "seven_day"  # every calendar day (crypto)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> datetime.date:
    """The n-th (1-based) given weekday of a month, e.g. the 3rd Monday of January."""
    first = datetime.date(year, month, 1)
    offset = (weekday - first.weekday()) % 7
    return first + datetime.timedelta(days=offset + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> datetime.date:
    """The last given weekday of a month, e.g. the last Monday of May."""
    if month == 12:
        last = datetime.date(year, 12, 31)
    else:
        last = datetime.date(year, month + 1, 1) - _ONE_DAY
    return last - datetime.timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: datetime.date) -> datetime.date:
    """Saturday holidays are kept on the Friday before, Sunday ones on the Monday after."""
    if day.weekday() == _SATURDAY:
        return day - _ONE_DAY
    if day.weekday() == _SUNDAY:
        return day + _ONE_DAY
    return day


def easter_sunday(year: int) -> datetime.date:
    """Western (Gregorian) Easter Sunday, by the anonymous Gregorian algorithm."""
    golden = year % 19
    century, year_of_century = divmod(year, 100)
    leap_centuries, century_rest = divmod(century, 4)
    correction = (century + 8) // 25
    moon = (century - correction + 1) // 3
    epact = (19 * golden + century - leap_centuries - moon + 15) % 30
    quarter, quarter_rest = divmod(year_of_century, 4)
    weekday_shift = (32 + 2 * century_rest + 2 * quarter - epact - quarter_rest) % 7
    late = (golden + 11 * epact + 22 * weekday_shift) // 451
    month, day = divmod(epact + weekday_shift - 7 * late + 114, 31)
    return datetime.date(year, month, day + 1)


@lru_cache(maxsize=256)
def nyse_holidays(year: int) -> frozenset[datetime.date]:
    """The NYSE full-day market holidays of `year`, computed from the current rules.

    Every date returned is a weekday. One-off closures (national days of mourning,
    9/11, Hurricane Sandy, ...) and holidays retired before 1998 (Election Day,
    Lincoln's Birthday, the pre-1971 fixed-date holidays) are not modelled.
    """
    holidays: set[datetime.date] = set()

    new_year = datetime.date(year, 1, 1)
    # NYSE rule: a Saturday New Year's Day is not moved to Friday (that Friday closes
    # the year), so it gives no holiday at all; a Sunday one moves to Monday.
    if new_year.weekday() != _SATURDAY:
        holidays.add(_observed(new_year))
    if year >= 1998:
        holidays.add(_nth_weekday(year, 1, _MONDAY, 3))  # Martin Luther King Jr. Day
    holidays.add(_nth_weekday(year, 2, _MONDAY, 3))  # Washington's Birthday
    holidays.add(easter_sunday(year) - datetime.timedelta(days=2))  # Good Friday
    holidays.add(_last_weekday(year, 5, _MONDAY))  # Memorial Day
    if year >= 2022:
        holidays.add(_observed(datetime.date(year, 6, 19)))  # Juneteenth
    holidays.add(_observed(datetime.date(year, 7, 4)))  # Independence Day
    holidays.add(_nth_weekday(year, 9, _MONDAY, 1))  # Labor Day
    holidays.add(_nth_weekday(year, 11, _THURSDAY, 4))  # Thanksgiving Day
    holidays.add(_observed(datetime.date(year, 12, 25)))  # Christmas Day
    return frozenset(holidays)


def is_trading_day(day: datetime.date, calendar: TradingCalendar) -> bool:
    """Whether `day` is a trading day under `calendar`."""
    if calendar is TradingCalendar.SEVEN_DAY:
        return True
    if day.weekday() > _FRIDAY:
        return False
    return calendar is TradingCalendar.FIVE_DAY or day not in nyse_holidays(day.year)


def _weekdays_between(start: datetime.date, end: datetime.date) -> int:
    """Monday-to-Friday days in [start, end], in constant time (end >= start)."""
    full_weeks, rest = divmod((end - start).days + 1, 7)
    first = start.weekday()
    # The `rest` leftover days run from `first` onwards; count those that are weekdays.
    extra = sum(1 for i in range(rest) if (first + i) % 7 <= _FRIDAY)
    return 5 * full_weeks + extra


def count_trading_days(start: datetime.date, end: datetime.date, calendar: TradingCalendar) -> int:
    """Trading days in the inclusive range [start, end]; 0 when end is before start.

    Cost grows with the number of years spanned, not the number of days.
    """
    if end < start:
        return 0
    if calendar is TradingCalendar.SEVEN_DAY:
        return (end - start).days + 1
    weekdays = _weekdays_between(start, end)
    if calendar is TradingCalendar.FIVE_DAY:
        return weekdays
    # Holidays are always weekdays, so each one inside the range removes exactly one day.
    if start.year == end.year:
        closed = sum(1 for day in nyse_holidays(start.year) if start <= day <= end)
    else:
        closed = sum(1 for day in nyse_holidays(start.year) if day >= start)
        closed += sum(len(nyse_holidays(year)) for year in range(start.year + 1, end.year))
        closed += sum(1 for day in nyse_holidays(end.year) if day <= end)
    return weekdays - closed
