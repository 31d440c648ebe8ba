"""Reading bar files into one exact `BarSeries`: each file in blocks of whole lines, each
block column-at-a-time when it can be (`columns`), else row by row with a reason for every
bad line (`fields`); `read_bars` is the entry point."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import repeat
from operator import add, floordiv, ge, le, lt, mod
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from adapters.bars.csv_import.columns import (
    all_epochs,
    fast_decimals,
    scaled,
    split_columns,
    split_stamps,
)
from adapters.bars.csv_import.fields import (
    EPOCH,
    EPOCH_DAY,
    EPOCH_MS_FROM,
    POW10,
    BadField,
    adjusted_prices,
    all_null,
    epoch_seconds,
    naive_day_epoch,
    order_problem,
    parse_day,
    parse_decimal,
    parse_time_of_day,
    split_timestamp,
)
from adapters.bars.csv_import.header import BadHeader, ImportFormat, Layout, header_layout
from adapters.bars.csv_import.problems import Problem, problems_error
from domain.bars import INT64_MAX, BarSeries, Timeframe, bar_problem
from domain.errors import ValidationFailed
from domain.exchanges import ExchangeHours, daily_close

BLOCK_BYTES = 1 << 20


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


def _zone_or_fail(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed("tz", f"Unknown time zone '{name}'") from None


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
                layout = header_layout(next(csv.reader([header_text])), fmt, self.adjusted)
            except BadHeader as exc:
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
        self, text: str, first_line: int, count: int, layout: Layout, name: str, index: int
    ) -> None:
        body = text.rstrip("\n")
        if not body.strip():
            return
        block = None
        if self.fast and not self.adjusted and '"' not in body:
            try:
                block = self._fast_block(body, first_line, layout, name, index)
            except (BadField, ValueError, KeyError):
                block = None
        if block is None:
            lines = text.split("\n")[:count]
            block = self._slow_block(lines, first_line, layout, name, index)
        if block.times:
            self.blocks.append(block)

    # ---- the block path: column-at-a-time, C-speed; None means "read these rows one by one"

    def _fast_block(
        self, body: str, first_line: int, layout: Layout, name: str, index: int
    ) -> _Block | None:
        columns = split_columns(body, layout.width)
        if columns is None:
            return None
        n = len(columns[layout.time])
        times = self._fast_times(columns, layout)
        if times is None:
            return None
        previous = self.last_close
        if (previous is not None and times[0] <= previous) or not all(map(lt, times, times[1:])):
            return None
        parsed = [fast_decimals(columns[col]) for col in layout.prices]
        if None in parsed:
            return None
        prices = cast(list[tuple[list[int], int]], parsed)
        price_places = max(places for _, places in prices)
        opens, highs, lows, closes = (
            values if places == price_places else scaled(values, POW10[price_places - places])
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
            volume = fast_decimals(columns[layout.volume])
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

    def _fast_times(self, columns: list[list[str]], layout: Layout) -> list[int] | None:
        stamps = columns[layout.time]
        if not self.timeframe.is_intraday:
            daily = self._daily
            for text in set(stamps).difference(daily):
                daily[text] = self._daily_close(text)
            return list(map(daily.__getitem__, stamps))
        step = self.timeframe.seconds
        if layout.time_of_day is not None:
            days, clocks = stamps, columns[layout.time_of_day]
        elif all_epochs(stamps):
            starts: list[int] = json.loads(f"[{','.join(stamps)}]")
            if max(starts) >= EPOCH_MS_FROM:
                if min(starts) < EPOCH_MS_FROM or any(map(mod, starts, repeat(1000))):
                    return None
                starts = list(map(floordiv, starts, repeat(1000)))
            return list(map(add, starts, repeat(step)))
        else:
            split = split_stamps(stamps)
            if split is None:
                return None
            days, clocks = split
        distinct = set(clocks)
        for text in distinct.difference(self._clock):
            self._clock[text] = parse_time_of_day(text)
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
                bases[text] = naive_day_epoch(text)
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
        self, lines: list[str], first_line: int, layout: Layout, name: str, index: int
    ) -> _Block:
        kept_lines: list[int] = []
        times: list[int] = []
        rows: list[tuple[tuple[int, int], ...]] = []
        volumes: list[tuple[int, int]] = []
        for offset, text in enumerate(lines):
            if not text.strip():
                continue
            line = first_line + offset
            if layout.skips_null_rows and all_null(text, layout):
                self.skipped += 1
                continue
            try:
                # One record per line; the csv module only for the lines that quote.
                fields = next(csv.reader([text])) if '"' in text else text.split(",")
                close, prices, volume = self._row(fields, layout)
            except BadField as exc:
                self._problem(index, Problem(name, line, exc.reason))
                continue
            reason = order_problem(close, self.last_close)
            if reason is None:
                places = max(p for _, p in prices)
                o, h, lo, c = (v * POW10[places - p] for v, p in prices)
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
            [v * POW10[price_places - p] for v, p in (row[i] for row in rows)] for i in range(4)
        ]
        return _Block(
            name,
            index,
            kept_lines,
            times,
            columns,
            price_places,
            [v * POW10[volume_places - p] for v, p in volumes],
            volume_places,
        )

    def _row(
        self, fields: list[str], layout: Layout
    ) -> tuple[int, tuple[tuple[int, int], ...], tuple[int, int]]:
        if len(fields) != layout.width:
            raise BadField(f"{len(fields)} fields; the header has {layout.width}")
        close = self._close_time(fields, layout)
        names = ("open", "high", "low", "close")
        prices = tuple(
            parse_decimal(fields[i], n) for i, n in zip(layout.prices, names, strict=True)
        )
        if layout.adj_close is not None:
            prices = adjusted_prices(prices, parse_decimal(fields[layout.adj_close], "adj close"))
        volume = (0, 0) if layout.volume is None else parse_decimal(fields[layout.volume], "volume")
        return close, prices, volume

    def _close_time(self, fields: list[str], layout: Layout) -> int:
        stamp = fields[layout.time].strip()
        if not stamp:
            raise BadField("time is empty")
        if not self.timeframe.is_intraday:
            close = self._daily.get(stamp)
            if close is None:
                close = self._daily[stamp] = self._daily_close(stamp)
            return close
        if layout.time_of_day is not None:
            day, clock = stamp, fields[layout.time_of_day].strip()
        elif EPOCH.fullmatch(stamp) and len(stamp) != 8:
            return epoch_seconds(int(stamp)) + self.timeframe.seconds
        else:
            day, clock_or_none = split_timestamp(stamp)
            if clock_or_none is None:
                raise BadField(f"time {stamp!r} has no time of day; {self.timeframe} bars need one")
            clock = clock_or_none
        seconds, offset = self._clock.get(clock) or self._clock.setdefault(
            clock, parse_time_of_day(clock)
        )
        step = self.timeframe.seconds
        if offset is not None:
            utc_base = self._utc_day.get(day)
            if utc_base is None:
                utc_base = self._utc_day[day] = naive_day_epoch(day)
            return utc_base + seconds - offset + step
        if day not in self._zone_day:
            self._zone_day[day] = self._zone_day_base(day)
        base = self._zone_day[day]
        if base is not None:
            return base + seconds + step
        return self._wall_to_utc(parse_day(day), seconds, f"{day} {clock}") + step

    def _daily_close(self, stamp: str) -> int:
        """The close instant of the daily bar of the date written (epochs: their UTC date)."""
        if EPOCH.fullmatch(stamp) and len(stamp) != 8:
            day = date.fromordinal(EPOCH_DAY + epoch_seconds(int(stamp), whole=False) // 86_400)
        else:
            day_text, clock = split_timestamp(stamp)
            if clock is not None:
                parse_time_of_day(clock)
            day = parse_day(day_text)
        return int(daily_close(day, self.hours).timestamp())

    def _zone_day_base(self, text: str) -> int | None:
        """Epoch seconds of local midnight of the day, or None when the clocks change that
        day (then each time of it is converted on its own)."""
        day = parse_day(text)
        midnight = datetime(day.year, day.month, day.day, tzinfo=self.zone)
        following = midnight + timedelta(days=1)
        offset = midnight.utcoffset()
        if offset is None or offset != following.utcoffset():
            return None
        return (day.toordinal() - EPOCH_DAY) * 86_400 - int(offset.total_seconds())

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
            raise BadField(f"time {shown} does not exist in {self.zone.key} (the clocks skip it)")
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
            price_factor = POW10[price_places - block.price_places]
            volume_factor = POW10[volume_places - block.volume_places]
            if self.problems:  # refused anyway: only look for more lines that do not fit
                self._check_fits(block, price_factor, volume_factor)
                continue
            try:
                series.times.fromlist(block.times)
                for column, values in zip(series.columns[1:5], block.prices, strict=True):
                    column.fromlist(values if price_factor == 1 else scaled(values, price_factor))
                series.volumes.fromlist(
                    block.volumes if volume_factor == 1 else scaled(block.volumes, volume_factor)
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


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")
