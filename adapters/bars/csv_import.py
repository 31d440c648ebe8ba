"""Reading users' bar files (generic, Yahoo and Stooq CSV) into one exact `BarSeries`:
decimal text goes straight to fixed-point ints, whole blocks of rows at a time."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal
from enum import StrEnum
from itertools import repeat
from operator import add, floordiv, ge, le, lt, mod, mul
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.bars import INT64_MAX, MAX_SCALE, BarSeries, Timeframe, bar_problem
from domain.dates import format_instant
from domain.errors import InvalidBars, ValidationFailed
from domain.exchanges import ExchangeHours, daily_close

MAX_LISTED_PROBLEMS = 20
ADJUSTED_PLACES = 6
"""Yahoo prices scaled by Adj Close / Close are rounded (half-even) to this many places."""

BLOCK_BYTES = 1 << 20
_EPOCH_MS_FROM = 10**11  # 10^11 s is the year 5138: anything this large counts milliseconds
_EPOCH_DAY = date(1970, 1, 1).toordinal()
_POW10 = [10**i for i in range(2 * MAX_SCALE + 1)]


class ImportFormat(StrEnum):
    """The file layouts `read_bar_files` knows; `auto` tells them apart by the header."""

    AUTO = "auto"
    GENERIC = "generic"
    YAHOO = "yahoo"
    STOOQ = "stooq"


@dataclass(frozen=True, slots=True)
class Problem:
    """Why one line of one file cannot be imported (line 1 is the header)."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ReadBars:
    """What `read_bars` read: the series, and how many Yahoo `null` rows it skipped."""

    series: BarSeries
    skipped_null_rows: int = 0


def read_bar_files(
    paths: Sequence[Path | str],
    symbol: str,
    timeframe: Timeframe,
    *,
    fmt: ImportFormat | str = ImportFormat.AUTO,
    tz: str | None = None,
    hours: ExchangeHours,
    adjusted: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> BarSeries:
    """`read_bars(...).series`."""
    return read_bars(
        paths,
        symbol,
        timeframe,
        fmt=fmt,
        tz=tz,
        hours=hours,
        adjusted=adjusted,
        on_progress=on_progress,
    ).series


def read_bars(
    paths: Sequence[Path | str],
    symbol: str,
    timeframe: Timeframe,
    *,
    fmt: ImportFormat | str = ImportFormat.AUTO,
    tz: str | None = None,
    hours: ExchangeHours,
    adjusted: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> ReadBars:
    """The bars of `paths`, read in the order given as one series, or InvalidBars listing
    every bad line (`details.problems`: the first 20 as {file, line, reason}; `details.count`).

    In a Yahoo file, a row whose every value is `null` (a day without trading, as Yahoo
    writes it) is skipped and counted; any other bad line refuses the import.

    Daily bars close at the exchange's close of the date written. Intraday timestamps are bar
    START times (as Yahoo and Stooq write them); the stored close is start + timeframe. Naive
    intraday times are wall-clock times in `tz` (default: the exchange's zone). Prices and
    volumes are kept exactly as written, at the most decimal places any row uses; with
    `adjusted`, Yahoo OHLC are scaled by Adj Close / Close and rounded to 6 places.
    `on_progress` is called with the number of bytes read, as they are read."""
    try:
        layout_format = ImportFormat(fmt)
    except ValueError:
        raise ValidationFailed(
            "format", f"Unknown format '{fmt}'", allowed=[f.value for f in ImportFormat]
        ) from None
    zone = _zone_or_fail(tz or hours.zone)
    reader = _Reader(timeframe, zone, hours, adjusted)
    for index, path in enumerate(paths):
        reader.read_file(Path(path), str(path), index, layout_format, on_progress)
    return ReadBars(reader.series(symbol), reader.skipped)


def problems_error(problems: Sequence[Problem]) -> InvalidBars:
    """The InvalidBars that refuses an import for `problems` (in file and line order)."""
    count = len(problems)
    noun = "line" if count == 1 else "lines"
    return InvalidBars(
        f"{count} bad {noun}; nothing was imported",
        {
            "problems": [
                {"file": p.file, "line": p.line, "reason": p.reason}
                for p in problems[:MAX_LISTED_PROBLEMS]
            ],
            "count": count,
        },
    )


def _zone_or_fail(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed("tz", f"Unknown time zone '{name}'") from None


# --- the header ----------------------------------------------------------------------------

_ALIASES = {
    "vol": "volume",
    "adj close": "adj close",
    "adj_close": "adj close",
    "adjclose": "adj close",
    "adjusted close": "adj close",
}
_SINGLE_TIME_COLUMNS = ("timestamp", "datetime", "date", "time")


class _BadHeader(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where each field is in the rows of one file."""

    width: int
    time: int
    time_of_day: int | None  # a separate time column (Stooq's <DATE>,<TIME>; Date,Time)
    prices: tuple[int, int, int, int]
    volume: int | None
    adj_close: int | None
    skips_null_rows: bool = False  # Yahoo's: a day without trading is a row of `null`s


def _column_name(raw: str) -> str:
    name = " ".join(raw.strip().strip("<>").lower().split())
    return _ALIASES.get(name, name)


def _layout(header: list[str], fmt: ImportFormat, adjusted: bool) -> _Layout:
    _refuse_a_header_that_is_not_one(header)
    raw = [h.strip() for h in header]
    names = [_column_name(h) for h in raw]
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)
    detected = (
        ImportFormat.STOOQ
        if "<ticker>" in (h.lower() for h in raw) or "<date>" in (h.lower() for h in raw)
        else ImportFormat.YAHOO
        if "adj close" in index
        else ImportFormat.GENERIC
    )
    if fmt is ImportFormat.YAHOO and detected is not ImportFormat.YAHOO:
        raise _BadHeader("not a Yahoo file: the header has no 'Adj Close' column")
    if fmt is ImportFormat.STOOQ and "date" not in index:
        raise _BadHeader("not a Stooq file: the header has no 'Date' column")
    missing = [c for c in ("open", "high", "low", "close") if c not in index]
    if missing:
        raise _BadHeader(f"the header has no {', '.join(repr(c) for c in missing)} column")
    if "date" in index and "time" in index:
        time_col, time_of_day = index["date"], index["time"]
    else:
        found = next((index[c] for c in _SINGLE_TIME_COLUMNS if c in index), None)
        if found is None:
            raise _BadHeader("the header has no timestamp, datetime, date or time column")
        time_col, time_of_day = found, None
    if adjusted and "adj close" not in index:
        raise _BadHeader("--adjusted needs an 'Adj Close' column (Yahoo's layout)")
    return _Layout(
        width=len(header),
        time=time_col,
        time_of_day=time_of_day,
        prices=(index["open"], index["high"], index["low"], index["close"]),
        volume=index.get("volume"),
        adj_close=index["adj close"] if adjusted else None,
        skips_null_rows=detected is ImportFormat.YAHOO,
    )


_LOOKS_LIKE_DATA = re.compile(r"[0-9+-]")


def _refuse_a_header_that_is_not_one(header: list[str]) -> None:
    """A file cut by another separator, or without a header line, said as such."""
    if len(header) == 1:
        for separator, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
            if separator in header[0]:
                raise _BadHeader(
                    f"the fields are separated by {name}, not commas; save the file as "
                    "comma-separated (CSV with ',' between fields)"
                )
    if header and _LOOKS_LIKE_DATA.match(header[0].strip()):
        raise _BadHeader(
            f"the first line is data ({header[0].strip()!r}...), not a header; add a header "
            "line first, e.g. date,open,high,low,close,volume"
        )


# --- single values (the exact, per-row rules; the fast path must agree with them) ----------


class _Bad(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_NUMBER = re.compile(r"(-?)([0-9]*)(?:\.([0-9]*))?")
_DATE = re.compile(r"([0-9]{4})-?([0-9]{2})-?([0-9]{2})")
_TIME_OF_DAY = re.compile(
    r"([0-9]{2}):?([0-9]{2})(?::?([0-9]{2})(?:\.([0-9]+))?)?"
    r"([Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?"
)
_EPOCH = re.compile(r"-?[0-9]+")


def _decimal(text: str, name: str) -> tuple[int, int]:
    """Decimal text as (value * 10^places, places); never through a float."""
    value = text.strip()
    if not value:
        raise _Bad(f"{name} is empty")
    match = _NUMBER.fullmatch(value)
    if match is None or not (match[2] or match[3]):
        raise _Bad(f"{name} is not a number: {value!r}")
    sign, whole, fraction = match[1], match[2], match[3] or ""
    if len(fraction) > MAX_SCALE:
        raise _Bad(f"{name} has more than {MAX_SCALE} decimal places: {value!r}")
    try:
        number = int(whole + fraction)
    except ValueError:  # over Python's 4300-digit limit for int()
        raise _Bad(f"{name} is too large: {value!r}") from None
    return (-number if sign else number), len(fraction)


def _day(text: str) -> date:
    match = _DATE.fullmatch(text)
    if match is None:
        raise _Bad(f"time {text!r} is not a date")
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise _Bad(f"time {text!r} is not a date") from None


def _time_of_day(text: str) -> tuple[int, int | None]:
    """'HH:MM[:SS]' or 'HHMMSS', maybe with an offset, as (seconds, offset seconds | None)."""
    match = _TIME_OF_DAY.fullmatch(text)
    if match is None:
        raise _Bad(f"time of day {text!r} is not HH:MM[:SS]")
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise _Bad(f"time of day {text!r} is not HH:MM[:SS]")
    if match[4] and match[4].strip("0"):
        raise _Bad(f"time has a fraction of a second: {text!r}")
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


def _split_timestamp(text: str) -> tuple[str, str | None]:
    """A one-column timestamp as (date part, time-of-day part or None)."""
    if len(text) > 10 and text[10] in "Tt ":
        return text[:10], text[11:].strip()
    if len(text) > 8 and text[8] in "Tt" and text[:8].isdigit():
        return text[:8], text[9:].strip()
    return text, None


def _naive_day_epoch(text: str) -> int:
    return (_day(text).toordinal() - _EPOCH_DAY) * 86_400


_ADJUST = Context(prec=60)  # ample for exact products of two 19-digit decimals


# --- reading -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Block:
    """Bars of consecutive lines of one file; prices and volumes at block-wide scales."""

    file: str
    file_index: int
    lines: Sequence[int]
    times: list[int]
    prices: list[list[int]]  # open, high, low, close
    price_places: int
    volumes: list[int]
    volume_places: int


@dataclass(slots=True)
class _Reader:
    timeframe: Timeframe
    zone: ZoneInfo
    hours: ExchangeHours
    adjusted: bool
    fast: bool = True  # tests turn the block path off to compare it with the per-row rules
    problems: list[tuple[int, Problem]] = field(default_factory=list)
    blocks: list[_Block] = field(default_factory=list)
    skipped: int = 0
    last_close: int | None = None
    _daily: dict[str, int] = field(default_factory=dict)
    _zone_day: dict[str, int | None] = field(default_factory=dict)
    _utc_day: dict[str, int | None] = field(default_factory=dict)
    _clock: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    _clock_seconds: dict[str, int] = field(default_factory=dict)

    # ---- files

    def read_file(
        self,
        path: Path,
        name: str,
        file_index: int,
        fmt: ImportFormat,
        on_progress: Callable[[int], None] | None,
    ) -> None:
        try:
            handle = path.open("rb")
        except OSError as exc:
            self._problem(file_index, Problem(name, 0, f"cannot read the file: {exc.strerror}"))
            return
        with handle:
            first = handle.readline()
            if on_progress is not None:
                on_progress(len(first))
            header_text = _decode(first).removeprefix("\ufeff").rstrip("\r\n")
            if not header_text.strip():
                self._problem(file_index, Problem(name, 1, "the file has no header line"))
                return
            try:
                layout = _layout(next(csv.reader([header_text])), fmt, self.adjusted)
            except _BadHeader as exc:
                self._problem(file_index, Problem(name, 1, exc.reason))
                return
            line = 2
            bars_before = sum(len(b.times) for b in self.blocks)
            problems_before = len(self.problems)
            while True:
                raw = handle.read(BLOCK_BYTES)
                if not raw:
                    break
                if not raw.endswith(b"\n"):
                    raw += handle.readline()  # whole lines only: a block never splits a row
                if on_progress is not None:
                    on_progress(len(raw))
                text = _decode(raw)
                if "\r" in text:
                    text = text.replace("\r\n", "\n").replace("\r", "\n")
                count = text.count("\n") + (not text.endswith("\n"))
                self._block(text, line, count, layout, name, file_index)
                line += count
            read_nothing = sum(len(b.times) for b in self.blocks) == bars_before
            if read_nothing and len(self.problems) == problems_before:
                self._problem(file_index, Problem(name, 1, "the file holds no bars"))

    def _problem(self, file_index: int, problem: Problem) -> None:
        self.problems.append((file_index, problem))

    def _block(
        self, text: str, first_line: int, count: int, layout: _Layout, name: str, index: int
    ) -> None:
        body = text.rstrip("\n")
        if not body.strip():
            return
        block = None
        if self.fast and not self.adjusted and '"' not in body:
            try:
                block = self._fast_block(body, first_line, layout, name, index)
            except (_Bad, ValueError, KeyError):
                block = None
        if block is None:
            lines = text.split("\n")[:count]
            block = self._slow_block(lines, first_line, layout, name, index)
        if block.times:
            self.blocks.append(block)

    # ---- the block path: column-at-a-time, C-speed; None means "read these rows one by one"

    def _fast_block(
        self, body: str, first_line: int, layout: _Layout, name: str, index: int
    ) -> _Block | None:
        columns = _split_columns(body, layout.width)
        if columns is None:
            return None
        n = len(columns[layout.time])
        times = self._fast_times(columns, layout)
        if times is None:
            return None
        previous = self.last_close
        if (previous is not None and times[0] <= previous) or not all(map(lt, times, times[1:])):
            return None
        parsed = [_fast_decimals(columns[col]) for col in layout.prices]
        if None in parsed:
            return None
        prices = cast(list[tuple[list[int], int]], parsed)
        price_places = max(places for _, places in prices)
        opens, highs, lows, closes = (
            values if places == price_places else _scaled(values, _POW10[price_places - places])
            for values, places in prices
        )
        if not (
            all(map(ge, highs, opens))
            and all(map(ge, highs, closes))
            and all(map(le, lows, opens))
            and all(map(le, lows, closes))
        ):
            return None
        if layout.volume is None:
            volumes, volume_places = [0] * n, 0
        else:
            volume = _fast_decimals(columns[layout.volume])
            if volume is None:
                return None
            volumes, volume_places = volume
        self.last_close = times[-1]
        return _Block(
            name,
            index,
            range(first_line, first_line + n),
            times,
            [opens, highs, lows, closes],
            price_places,
            volumes,
            volume_places,
        )

    def _fast_times(self, columns: list[list[str]], layout: _Layout) -> list[int] | None:
        stamps = columns[layout.time]
        if not self.timeframe.is_intraday:
            daily = self._daily
            for text in set(stamps).difference(daily):
                daily[text] = self._daily_close(text)
            return list(map(daily.__getitem__, stamps))
        step = self.timeframe.seconds
        if layout.time_of_day is not None:
            days, clocks = stamps, columns[layout.time_of_day]
        elif _all_epochs(stamps):
            starts: list[int] = json.loads(f"[{','.join(stamps)}]")
            if max(starts) >= _EPOCH_MS_FROM:
                if min(starts) < _EPOCH_MS_FROM or any(map(mod, starts, repeat(1000))):
                    return None
                starts = list(map(floordiv, starts, repeat(1000)))
            return list(map(add, starts, repeat(step)))
        else:
            split = _split_stamps(stamps)
            if split is None:
                return None
            days, clocks = split
        distinct = set(clocks)
        for text in distinct.difference(self._clock):
            self._clock[text] = _time_of_day(text)
        offsets = {self._clock[c][1] for c in distinct}
        if None in offsets and len(offsets) > 1:
            return None
        bases: dict[str, int | None]
        if offsets == {None}:
            bases = self._zone_day
            for text in set(days).difference(bases):
                bases[text] = self._zone_day_base(text)
        else:
            bases = self._utc_day
            for text in set(days).difference(bases):
                bases[text] = _naive_day_epoch(text)
        seconds = self._clock_seconds
        for text in distinct.difference(seconds):
            clock, offset = self._clock[text]
            seconds[text] = clock - (offset or 0) + step
        starts_of_days = list(map(bases.__getitem__, days))
        if None in starts_of_days:  # the clocks change that day: read its rows one by one
            return None
        return list(map(add, cast(list[int], starts_of_days), map(seconds.__getitem__, clocks)))

    # ---- the row path: the rules themselves, with a reason for every bad line

    def _slow_block(
        self, lines: list[str], first_line: int, layout: _Layout, name: str, index: int
    ) -> _Block:
        kept_lines: list[int] = []
        times: list[int] = []
        rows: list[tuple[tuple[int, int], ...]] = []
        volumes: list[tuple[int, int]] = []
        for offset, text in enumerate(lines):
            if not text.strip():
                continue
            line = first_line + offset
            if layout.skips_null_rows and _all_null(text, layout):
                self.skipped += 1
                continue
            try:
                # One record per line; the csv module only for the lines that quote.
                fields = next(csv.reader([text])) if '"' in text else text.split(",")
                close, prices, volume = self._row(fields, layout)
            except _Bad as exc:
                self._problem(index, Problem(name, line, exc.reason))
                continue
            reason = _order_problem(close, self.last_close)
            if reason is None:
                places = max(p for _, p in prices)
                o, h, lo, c = (v * _POW10[places - p] for v, p in prices)
                reason = bar_problem(o, h, lo, c, volume[0])
            if self.last_close is None or close > self.last_close:
                self.last_close = close
            if reason is not None:
                self._problem(index, Problem(name, line, reason))
                continue
            kept_lines.append(line)
            times.append(close)
            rows.append(prices)
            volumes.append(volume)
        price_places = max((p for row in rows for _, p in row), default=0)
        volume_places = max((p for _, p in volumes), default=0)
        columns = [
            [v * _POW10[price_places - p] for v, p in (row[i] for row in rows)] for i in range(4)
        ]
        return _Block(
            name,
            index,
            kept_lines,
            times,
            columns,
            price_places,
            [v * _POW10[volume_places - p] for v, p in volumes],
            volume_places,
        )

    def _row(
        self, fields: list[str], layout: _Layout
    ) -> tuple[int, tuple[tuple[int, int], ...], tuple[int, int]]:
        if len(fields) != layout.width:
            raise _Bad(f"{len(fields)} fields; the header has {layout.width}")
        close = self._close_time(fields, layout)
        names = ("open", "high", "low", "close")
        prices = tuple(_decimal(fields[i], n) for i, n in zip(layout.prices, names, strict=True))
        if layout.adj_close is not None:
            prices = _adjusted(prices, _decimal(fields[layout.adj_close], "adj close"))
        volume = (0, 0) if layout.volume is None else _decimal(fields[layout.volume], "volume")
        return close, prices, volume

    def _close_time(self, fields: list[str], layout: _Layout) -> int:
        stamp = fields[layout.time].strip()
        if not stamp:
            raise _Bad("time is empty")
        if not self.timeframe.is_intraday:
            close = self._daily.get(stamp)
            if close is None:
                close = self._daily[stamp] = self._daily_close(stamp)
            return close
        if layout.time_of_day is not None:
            day, clock = stamp, fields[layout.time_of_day].strip()
        elif _EPOCH.fullmatch(stamp) and len(stamp) != 8:
            return _epoch_seconds(int(stamp)) + self.timeframe.seconds
        else:
            day, clock_or_none = _split_timestamp(stamp)
            if clock_or_none is None:
                raise _Bad(f"time {stamp!r} has no time of day; {self.timeframe} bars need one")
            clock = clock_or_none
        seconds, offset = self._clock.get(clock) or self._clock.setdefault(
            clock, _time_of_day(clock)
        )
        step = self.timeframe.seconds
        if offset is not None:
            utc_base = self._utc_day.get(day)
            if utc_base is None:
                utc_base = self._utc_day[day] = _naive_day_epoch(day)
            return utc_base + seconds - offset + step
        if day not in self._zone_day:
            self._zone_day[day] = self._zone_day_base(day)
        base = self._zone_day[day]
        if base is not None:
            return base + seconds + step
        return self._wall_to_utc(_day(day), seconds, f"{day} {clock}") + step

    def _daily_close(self, stamp: str) -> int:
        """The close instant of the daily bar of the date written (epochs: their UTC date)."""
        if _EPOCH.fullmatch(stamp) and len(stamp) != 8:
            day = date.fromordinal(_EPOCH_DAY + _epoch_seconds(int(stamp), whole=False) // 86_400)
        else:
            day_text, clock = _split_timestamp(stamp)
            if clock is not None:
                _time_of_day(clock)
            day = _day(day_text)
        return int(daily_close(day, self.hours).timestamp())

    def _zone_day_base(self, text: str) -> int | None:
        """Epoch seconds of local midnight of the day, or None when the clocks change that
        day (then each time of it is converted on its own)."""
        day = _day(text)
        midnight = datetime(day.year, day.month, day.day, tzinfo=self.zone)
        following = midnight + timedelta(days=1)
        offset = midnight.utcoffset()
        if offset is None or offset != following.utcoffset():
            return None
        return (day.toordinal() - _EPOCH_DAY) * 86_400 - int(offset.total_seconds())

    def _wall_to_utc(self, day: date, seconds: int, shown: str) -> int:
        """A wall-clock time on a day the clocks change. A time the clocks skip is refused;
        one they repeat is its first occurrence unless the previous bar already reached it."""
        wall = datetime(day.year, day.month, day.day) + timedelta(seconds=seconds)
        candidates = sorted(
            {
                int(wall.replace(tzinfo=self.zone, fold=fold).timestamp())
                for fold in (0, 1)
                if datetime.fromtimestamp(
                    wall.replace(tzinfo=self.zone, fold=fold).timestamp(), self.zone
                ).replace(tzinfo=None)
                == wall
            }
        )
        if not candidates:
            raise _Bad(f"time {shown} does not exist in {self.zone.key} (the clocks skip it)")
        step = self.timeframe.seconds
        # The repeated hour: its second pass once the bars have already reached the first.
        if (
            len(candidates) == 2
            and self.last_close is not None
            and candidates[0] + step <= self.last_close
        ):
            return candidates[1]
        return candidates[0]

    # ---- the series

    def series(self, symbol: str) -> BarSeries:
        price_places = max((b.price_places for b in self.blocks), default=0)
        volume_places = max((b.volume_places for b in self.blocks), default=0)
        series = BarSeries.empty(symbol, self.timeframe, price_places, volume_places)
        for block in self.blocks:
            price_factor = _POW10[price_places - block.price_places]
            volume_factor = _POW10[volume_places - block.volume_places]
            if self.problems:  # refused anyway: only look for more lines that do not fit
                self._check_fits(block, price_factor, volume_factor)
                continue
            try:
                series.times.fromlist(block.times)
                for column, values in zip(series.columns[1:5], block.prices, strict=True):
                    column.fromlist(values if price_factor == 1 else _scaled(values, price_factor))
                series.volumes.fromlist(
                    block.volumes if volume_factor == 1 else _scaled(block.volumes, volume_factor)
                )
            except OverflowError:  # int64 columns refuse what does not fit; say which lines
                self._check_fits(block, price_factor, volume_factor)
        if self.problems:
            ordered = sorted(self.problems, key=lambda item: (item[0], item[1].line))
            unique: dict[tuple[int, int], Problem] = {}
            for file_index, problem in ordered:
                unique.setdefault((file_index, problem.line), problem)
            raise problems_error(list(unique.values()))
        return series

    def _check_fits(self, block: _Block, price_factor: int, volume_factor: int) -> None:
        """Values too large for int64 at the series' scale (set by other rows' places)."""
        for values, factor, what in (
            *((v, price_factor, "price") for v in block.prices),
            (block.volumes, volume_factor, "volume"),
        ):
            limit = INT64_MAX // factor
            for i, value in enumerate(values):
                if abs(value) > limit:
                    self._problem(
                        block.file_index,
                        Problem(
                            block.file,
                            block.lines[i],
                            f"{what} does not fit in 64 bits at the series' decimal places",
                        ),
                    )


def _all_null(text: str, layout: _Layout) -> bool:
    """Every field but the time is `null` (Yahoo's row for a day without trading)."""
    fields = text.split(",")
    if len(fields) != layout.width:
        return False
    times = {layout.time, layout.time_of_day}
    return all(f.strip() == "null" for i, f in enumerate(fields) if i not in times)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _order_problem(close: int, previous: int | None) -> str | None:
    if previous is None or close > previous:
        return None
    shown = format_instant(datetime.fromtimestamp(close, UTC))
    if close == previous:
        return f"duplicate time: the bar before also closes at {shown}"
    return f"time goes backwards: this bar closes at {shown}, before the bar above it"


def _epoch_seconds(value: int, *, whole: bool = True) -> int:
    """Epoch seconds, or milliseconds told apart by magnitude, as seconds."""
    if abs(value) < _EPOCH_MS_FROM:
        return value
    seconds, millis = divmod(value, 1000)
    if millis and whole:
        raise _Bad(f"epoch milliseconds {value} have a fraction of a second")
    return seconds


def _adjusted(
    prices: tuple[tuple[int, int], ...], adj_close: tuple[int, int]
) -> tuple[tuple[int, int], ...]:
    """OHLC times Adj Close / Close, rounded half-even to ADJUSTED_PLACES (monotone, so a
    valid bar stays valid)."""
    context = _ADJUST
    close = Decimal(prices[3][0]).scaleb(-prices[3][1])
    if not close:
        raise _Bad("close is 0, so Adj Close / Close is undefined")
    adj = Decimal(adj_close[0]).scaleb(-adj_close[1])
    quantum = Decimal(1).scaleb(-ADJUSTED_PLACES)
    adjusted = []
    for value, places in prices:
        scaled = context.divide(context.multiply(Decimal(value).scaleb(-places), adj), close)
        rounded = scaled.quantize(quantum, rounding=ROUND_HALF_EVEN, context=context)
        adjusted.append((int(rounded.scaleb(ADJUSTED_PLACES)), ADJUSTED_PLACES))
    return tuple(adjusted)


# --- column helpers for the block path -------------------------------------------------


_DIGITS = re.compile(r"[0-9]+(?:,[0-9]+)*")


def _all_epochs(stamps: list[str]) -> bool:
    # Eight digits are a date (Stooq's YYYYMMDD), so epochs here have at least nine.
    return bool(_DIGITS.fullmatch(",".join(stamps))) and min(map(len, stamps)) > 8


def _split_columns(body: str, width: int) -> list[list[str]] | None:
    """Every column of a block of unquoted lines, or None unless each line has `width` fields.

    One split on commas: the piece that holds each newline joins the last field of a line
    to the first of the next. With exactly one newline in each such piece (and none
    elsewhere, as there are no more), every line has width - 1 commas."""
    commas = width - 1
    flat = body.split(",")
    n, rest = divmod(len(flat) - 1, commas)
    if rest or body.count("\n") != n - 1:
        return None
    joints = flat[commas:-1:commas]
    if not all(map(str.__contains__, joints, repeat("\n"))):
        return None
    ends = "\n".join(joints).split("\n")
    firsts = [flat[0], *ends[1::2]]
    lasts = ends[0::2]
    lasts.append(flat[-1])
    return [firsts, *(flat[c::commas] for c in range(1, commas)), lasts]


def _split_stamps(stamps: list[str]) -> tuple[list[str], list[str]] | None:
    """`YYYY-MM-DD` + `T` or space + time of day, as the two parts (checked by their parsers;
    neither may hold the separator, so n separators, each at index 10, is one per stamp)."""
    first = stamps[0]
    separator = first[10] if len(first) > 10 else ""
    if separator not in ("T", " "):
        return None
    joined = ",".join(stamps)
    if joined.count(separator) != len(stamps):
        return None
    if set(map(str.find, stamps, repeat(separator))) != {10}:
        return None
    parts = joined.replace(separator, ",").split(",")
    return parts[0::2], parts[1::2]


_SHAPE = bytes.maketrans(b"123456789", b"000000000")


def _fast_decimals(values: list[str]) -> tuple[list[int], int] | None:
    """Plain unsigned decimals as ints at their most places, or None to go row by row."""
    joined = ",".join(values)
    if not joined.isascii():
        return None
    shape = joined.encode().translate(_SHAPE)  # every digit becomes "0"
    if shape.translate(None, b"0.,"):
        return None  # only digits, dots and commas from here on
    dots = shape.count(b".")
    digits = joined.replace(".", "") if dots else joined
    n = len(values)
    first = values[0]
    dot = first.find(".")
    places = len(first) - dot - 1 if dot >= 0 else 0
    # n values ending in "." + `places` digits, and n dots in all: that is every value.
    uniform = dots == (n if places else 0) and (
        not places or (shape + b",").count(b"." + b"0" * places + b",") == n
    )
    if uniform and places <= MAX_SCALE:
        return _ints(digits), places
    parts = list(map(str.partition, values, repeat(".")))
    if sum(map(len, map(_separator, parts))) != dots:
        return None  # a value with two dots
    each = list(map(len, map(_fraction, parts)))
    places = max(each)
    if places > MAX_SCALE:
        return None
    factors = map(_POW10.__getitem__, map(int.__rsub__, each, repeat(places)))
    return list(map(mul, _ints(digits), factors)), places


def _separator(parts: tuple[str, str, str]) -> str:
    return parts[1]


def _fraction(parts: tuple[str, str, str]) -> str:
    return parts[2]


def _ints(digits: str) -> list[int]:
    """Comma-joined runs of ASCII digits as ints."""
    if digits[0] != "0" and ",0" not in digits:
        # json's C scanner reads integers exactly and faster than int() one by one; it
        # refuses leading zeros, which the check above keeps away.
        parsed: list[int] = json.loads(f"[{digits}]")
        return parsed
    return list(map(int, digits.split(",")))


def _scaled(values: Iterable[int], factor: int) -> list[int]:
    return list(map(mul, values, repeat(factor)))
