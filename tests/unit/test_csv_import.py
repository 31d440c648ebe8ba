"""The bar-file parser: every layout and time form, exact prices, and every refusal with the
line it names."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters.bars.csv_import import BLOCK_BYTES, ImportFormat, read_bar_files
from adapters.bars.csv_import.reader import _Reader
from domain.bars import BarSeries, Timeframe
from domain.errors import InvalidBars, ValidationFailed
from domain.exchanges import ExchangeHours

NEW_YORK = ExchangeHours("America/New_York", time(16, 0))
GENERIC = "timestamp,open,high,low,close,volume\n"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp())


def write(tmp_path: Path, text: str, name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def read(
    tmp_path: Path, text: str, timeframe: Timeframe = Timeframe.D1, **options: Any
) -> BarSeries:
    return read_bar_files([write(tmp_path, text)], "TEST", timeframe, hours=NEW_YORK, **options)


def refused(tmp_path: Path, text: str, **options: Any) -> list[tuple[int, str]]:
    with pytest.raises(InvalidBars) as caught:
        read(tmp_path, text, **options)
    assert caught.value.details["count"] == len(caught.value.details["problems"])
    return [(p["line"], p["reason"]) for p in caught.value.details["problems"]]


def rows(series: BarSeries) -> list[tuple[int, str, str, str, str, str]]:
    return [
        (int(b.time.timestamp()), str(b.open), str(b.high), str(b.low), str(b.close), str(b.volume))
        for b in series.bars()
    ]


# ---------------------------------------------------------------- layouts and times


def test_generic_daily_bars_close_at_the_exchange_close_of_the_date(tmp_path: Path) -> None:
    series = read(
        tmp_path,
        "Date,Open,High,Low,Close,Volume,Note\n"
        "2023-01-03,10.5,11,10,10.75,1200,ignored\n"
        "2023-07-03,10.75,12,10.5,11,900,\n",
    )
    assert series.symbol == "TEST"
    assert series.timeframe is Timeframe.D1
    # 16:00 New York: 21:00 UTC in winter, 20:00 UTC in summer
    assert list(series.times) == [utc(2023, 1, 3, 21), utc(2023, 7, 3, 20)]
    assert rows(series)[0][1:] == ("10.50", "11.00", "10.00", "10.75", "1200")
    assert series.price_scale == 2
    assert series.volume_scale == 0


def test_prices_and_volumes_are_kept_exactly_as_written(tmp_path: Path) -> None:
    series = read(
        tmp_path,
        GENERIC + "2023-01-03,0.000012345,123456.78,0.000012345,1,0.5\n"
        "2023-01-04,1.1,1.2,1.0,1.15,1234567.125\n",
    )
    assert series.price_scale == 9
    assert series.volume_scale == 3
    first, second = series.bars()
    assert first.open == Decimal("0.000012345")
    assert first.high == Decimal("123456.78")
    assert series.highs[0] == 123456780000000  # 123456.78 * 10^9, no float on the way
    assert second.volume == Decimal("1234567.125")
    assert second.close == Decimal("1.15")


def test_mixed_decimal_places_in_a_column_take_the_most(tmp_path: Path) -> None:
    series = read(tmp_path, GENERIC + "2023-01-03,1.5,2,1,1.25,7\n2023-01-04,1,2.125,.5,2.,8\n")
    assert series.price_scale == 3
    assert list(series.opens) == [1500, 1000]
    assert list(series.lows) == [1000, 500]
    assert list(series.closes) == [1250, 2000]


def test_missing_volume_column_means_zero_volume(tmp_path: Path) -> None:
    series = read(tmp_path, "date,open,high,low,close\n2023-01-03,1.1,1.2,1.0,1.15\n")
    assert list(series.volumes) == [0]


def test_yahoo_layout_is_detected_and_adj_close_ignored_by_default(tmp_path: Path) -> None:
    text = (
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2023-01-03,130.279999,130.899994,124.169998,125.070000,124.216301,112117500\n"
    )
    series = read(tmp_path, text, fmt="yahoo")
    assert rows(series) == [
        (utc(2023, 1, 3, 21), "130.279999", "130.899994", "124.169998", "125.070000", "112117500")
    ]
    assert rows(read(tmp_path, text)) == rows(series)  # auto


def test_yahoo_adjusted_scales_ohlc_by_adj_close_over_close(tmp_path: Path) -> None:
    series = read(
        tmp_path,
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2023-01-03,130.279999,130.899994,124.169998,125.070000,124.216301,112117500\n",
        adjusted=True,
    )
    factor = Decimal("124.216301") / Decimal("125.070000")

    def adjusted(value: str) -> Decimal:
        exact = Decimal(value) * Decimal("124.216301") / Decimal("125.070000")
        return exact.quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN)

    bar = series.bar(0)
    assert series.price_scale == 6
    assert bar.open == adjusted("130.279999")
    assert bar.high == adjusted("130.899994")
    assert bar.low == adjusted("124.169998")
    assert bar.close == Decimal("124.216301")
    assert bar.volume == Decimal(112117500)  # volume is not adjusted
    assert abs(bar.open - Decimal("130.279999") * factor) < Decimal("0.000001")


def test_adjusted_needs_an_adj_close_column(tmp_path: Path) -> None:
    problems = refused(tmp_path, GENERIC + "2023-01-03,1,2,1,1,1\n", adjusted=True)
    assert problems == [(1, "--adjusted needs an 'Adj Close' column (Yahoo's layout)")]


def test_explicit_format_must_match_the_header(tmp_path: Path) -> None:
    problems = refused(tmp_path, GENERIC + "2023-01-03,1,2,1,1,1\n", fmt="yahoo")
    assert problems == [(1, "not a Yahoo file: the header has no 'Adj Close' column")]


def test_stooq_daily_layouts(tmp_path: Path) -> None:
    plain = read(tmp_path, "Date,Open,High,Low,Close,Volume\n2023-01-03,1.5,2,1,1.75,10\n")
    tickers = read(
        tmp_path,
        "<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<OPENINT>\n"
        "AAPL.US,D,20230103,000000,1.5,2,1,1.75,10,0\n",
        fmt="stooq",
    )
    assert (
        rows(plain)
        == rows(tickers)
        == [(utc(2023, 1, 3, 21), "1.50", "2.00", "1.00", "1.75", "10")]
    )


def test_stooq_intraday_layouts_are_start_times_in_the_zone(tmp_path: Path) -> None:
    tickers = read(
        tmp_path,
        "<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<OPENINT>\n"
        "AAPL.US,5,20230103,153000,1.5,2,1,1.75,10,0\n"
        "AAPL.US,5,20230103,153500,1.75,2,1,1.5,10,0\n",
        Timeframe.M5,
    )
    # 15:30 in New York is 20:30 UTC; a 5-minute bar starting then closes at 20:35
    assert list(tickers.times) == [utc(2023, 1, 3, 20, 35), utc(2023, 1, 3, 20, 40)]
    split = read(
        tmp_path,
        "Date,Time,Open,High,Low,Close,Volume\n"
        "2023-01-03,15:30:00,1.5,2,1,1.75,10\n2023-01-03,15:35:00,1.75,2,1,1.5,10\n",
        Timeframe.M5,
    )
    assert rows(split) == rows(tickers)


@pytest.mark.parametrize(
    ("stamp", "tz"),
    [
        ("2023-01-03 14:30:00", None),  # naive: the exchange's zone
        ("2023-01-03T14:30:00", "America/New_York"),
        ("2023-01-03T19:30:00Z", None),
        ("2023-01-03T14:30:00-05:00", "Asia/Tokyo"),  # an offset wins over --tz
        ("2023-01-03 20:30:00+01:00", None),
        ("2023-01-03 19:30", "UTC"),
        ("1672774200", None),  # epoch seconds
        ("1672774200000", None),  # epoch milliseconds
    ],
)
def test_intraday_time_forms_are_bar_starts(tmp_path: Path, stamp: str, tz: str | None) -> None:
    series = read(tmp_path, GENERIC + f"{stamp},1,1,1,1,1\n", Timeframe.H1, tz=tz)
    assert list(series.times) == [utc(2023, 1, 3, 20, 30)]


def test_daily_bars_from_datetimes_and_epochs_use_the_date(tmp_path: Path) -> None:
    series = read(
        tmp_path,
        GENERIC + "2023-01-03T00:00:00-05:00,1,1,1,1,1\n1672790400,1,1,1,1,1\n"
        "1672876800000,1,1,1,1,1\n20230106,1,1,1,1,1\n",
    )
    # 1672790400 is 2023-01-04 00:00 UTC, 1672876800000 ms is 2023-01-05 00:00 UTC
    assert list(series.times) == [utc(2023, 1, d, 21) for d in (3, 4, 5, 6)]


def test_daily_bars_of_a_midnight_exchange(tmp_path: Path) -> None:
    crypto = ExchangeHours("UTC", None)
    path = write(tmp_path, GENERIC + "2023-01-03,1,1,1,1,1\n")
    series = read_bar_files([path], "BTC-USD", Timeframe.D1, hours=crypto)
    assert list(series.times) == [utc(2023, 1, 4)]


def test_clocks_going_forward_refuse_the_skipped_hour(tmp_path: Path) -> None:
    text = GENERIC + "2023-03-12 01:30:00,1,1,1,1,1\n2023-03-12 02:30:00,1,1,1,1,1\n"
    text += "2023-03-12 03:30:00,1,1,1,1,1\n"
    problems = refused(tmp_path, text, timeframe=Timeframe.H1)
    assert problems == [
        (3, "time 2023-03-12 02:30:00 does not exist in America/New_York (the clocks skip it)")
    ]
    series = read(tmp_path, text.replace("2023-03-12 02:30:00,1,1,1,1,1\n", ""), Timeframe.H1)
    # 01:30 EST is 06:30 UTC; 03:30 EDT is 07:30 UTC: one hour apart
    assert list(series.times) == [utc(2023, 3, 12, 7, 30), utc(2023, 3, 12, 8, 30)]


def test_clocks_going_back_read_the_repeated_hour_twice_in_order(tmp_path: Path) -> None:
    series = read(
        tmp_path,
        GENERIC + "2023-11-05 00:30:00,1,1,1,1,1\n2023-11-05 01:30:00,1,1,1,1,1\n"
        "2023-11-05 01:30:00,1,1,1,1,1\n2023-11-05 02:30:00,1,1,1,1,1\n",
        Timeframe.H1,
    )
    # EDT (UTC-4) until 02:00, then EST (UTC-5): 01:30 happens at 05:30 and at 06:30 UTC
    starts = [t - 3600 for t in series.times]
    assert starts == [utc(2023, 11, 5, h, 30) for h in (4, 5, 6, 7)]


def test_many_files_are_one_series_in_the_order_given(tmp_path: Path) -> None:
    first = write(tmp_path, GENERIC + "2023-01-03,1,1,1,1,1\n2023-01-04,1,1,1,1,1\n", "a.csv")
    second = write(tmp_path, "Date,Open,High,Low,Close\n2023-01-05,2.5,2.5,2.5,2.5\n", "b.csv")
    series = read_bar_files([first, second], "TEST", Timeframe.D1, hours=NEW_YORK)
    assert list(series.times) == [utc(2023, 1, d, 21) for d in (3, 4, 5)]
    assert series.price_scale == 1
    assert list(series.closes) == [10, 10, 25]
    with pytest.raises(InvalidBars) as caught:
        read_bar_files([second, first], "TEST", Timeframe.D1, hours=NEW_YORK)
    # both bars of a.csv come before b.csv's
    assert [(p["file"], p["line"]) for p in caught.value.details["problems"]] == [
        (str(first), 2),
        (str(first), 3),
    ]


def test_line_endings_bom_quotes_and_blank_lines(tmp_path: Path) -> None:
    plain = read(tmp_path, GENERIC + "2023-01-03,1.5,2,1,1.75,10\n2023-01-04,1.5,2,1,1.75,10\n")
    odd = read(
        tmp_path,
        "\ufeff" + GENERIC.replace("\n", "\r\n") + '"2023-01-03","1.5", 2,1 ,1.75,10\r\n'
        "\r\n2023-01-04,1.5,2,1,1.75,10\r\n\r\n\r\n",
    )
    assert rows(odd) == rows(plain)


def test_progress_reports_every_byte(tmp_path: Path) -> None:
    text = GENERIC + "".join(f"{1_600_000_000 + 60 * i},1.5,2,1,1.75,10\n" for i in range(60_000))
    path = write(tmp_path, text)
    assert path.stat().st_size > BLOCK_BYTES  # more than one block
    seen: list[int] = []
    series = read_bar_files([path], "X", Timeframe.M1, hours=NEW_YORK, on_progress=seen.append)
    assert len(series) == 60_000
    assert sum(seen) == path.stat().st_size
    assert len(seen) > 2


def test_the_block_path_and_the_row_path_agree(tmp_path: Path) -> None:
    text = GENERIC + "".join(
        f"2023-01-{3 + i // 400:02d} {9 + i % 400 // 60:02d}:{i % 400 % 60:02d}:00,"
        f"{100 + i % 7}.{i % 100:02d},{110 + i % 7},{90 + i % 7}.5,{100 + i % 5}.125,{i}\n"
        for i in range(2_000)
    )
    path = write(tmp_path, text)
    results = []
    for fast in (True, False):
        reader = _Reader(Timeframe.M1, NEW_YORK.tz, NEW_YORK, adjusted=False, fast=fast)
        reader.read_file(path, "x", 0, ImportFormat.AUTO, None)
        # the block path reads whole blocks (its lines are a range), the row path one by one
        assert all(isinstance(b.lines, range) == fast for b in reader.blocks)
        results.append(reader.series("X"))
    assert rows(results[0]) == rows(results[1])
    assert results[0].price_scale == results[1].price_scale == 3


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("2023-01-04,1,0.5,0.4,0.9,1", "high is below max(open, close)"),
        ("2023-01-04,1,2,1.5,1.2,1", "low is above min(open, close)"),
        ("2023-01-04,1,2,1,1.5,-1", "volume is negative"),
        ("2023-01-04,1,2,1,1.5,", "volume is empty"),
        ("2023-01-04,abc,2,1,1.5,1", "open is not a number: 'abc'"),
        ("2023-01-04,1.2.3,2,1,1.5,1", "open is not a number: '1.2.3'"),
        ("2023-01-04,null,null,null,null,null", "open is not a number: 'null'"),
        ("2023-01-04,1,2,1,1.5", "5 fields; the header has 6"),
        ("2023-01-04,1,2,1,1.0000000000001,1", "close has more than 12 decimal places: "),
        ("2023-01-03,1,2,1,1.5,1", "duplicate time: the bar before also closes at "),
        ("2023-01-02,1,2,1,1.5,1", "time goes backwards: this bar closes at "),
        ("2023-02-30,1,2,1,1.5,1", "time '2023-02-30' is not a date"),
        (",1,2,1,1.5,1", "time is empty"),
    ],
)
def test_each_bad_row_is_named_by_its_line(tmp_path: Path, row: str, reason: str) -> None:
    text = GENERIC + "2023-01-03,1,2,1,1.5,1\n" + row + "\n2023-01-05,1,2,1,1.5,1\n"
    problems = refused(tmp_path, text)
    assert len(problems) == 1
    line, found = problems[0]
    assert line == 3
    assert found.startswith(reason)


def test_intraday_bars_need_a_time_of_day(tmp_path: Path) -> None:
    problems = refused(tmp_path, GENERIC + "2023-01-03,1,1,1,1,1\n", timeframe=Timeframe.H1)
    assert problems == [(2, "time '2023-01-03' has no time of day; 1h bars need one")]


def test_epoch_milliseconds_must_be_whole_seconds(tmp_path: Path) -> None:
    problems = refused(tmp_path, GENERIC + "1672774200500,1,1,1,1,1\n", timeframe=Timeframe.H1)
    assert problems == [(2, "epoch milliseconds 1672774200500 have a fraction of a second")]


def test_values_that_do_not_fit_at_the_series_scale(tmp_path: Path) -> None:
    problems = refused(
        tmp_path,
        GENERIC + "2023-01-03,0.000000000001,1,0.000000000001,1,1\n"
        "2023-01-04,10000000,10000000,10000000,10000000,1\n",
    )
    assert problems == [(3, "price does not fit in 64 bits at the series' decimal places")]


def test_header_problems(tmp_path: Path) -> None:
    assert refused(tmp_path, "timestamp,open,high,low\n2023-01-03,1,1,1\n") == [
        (1, "the header has no 'close' column")
    ]
    assert refused(tmp_path, "when,open,high,low,close\n2023-01-03,1,1,1,1\n") == [
        (1, "the header has no timestamp, datetime, date or time column")
    ]
    assert refused(tmp_path, "") == [(1, "the file has no header line")]
    assert refused(tmp_path, GENERIC + "\n\n") == [(1, "the file holds no bars")]


def test_every_bad_line_counts_but_twenty_are_listed(tmp_path: Path) -> None:
    good = "".join(f"2023-{1 + i // 28:02d}-{1 + i % 28:02d},1,2,1,1.5,1\n" for i in range(60))
    lines = good.splitlines()
    for i in range(5, 55, 2):  # 25 bad rows
        lines[i] = lines[i].replace(",2,", ",0.5,")
    with pytest.raises(InvalidBars) as caught:
        read(tmp_path, GENERIC + "\n".join(lines) + "\n")
    details = caught.value.details
    assert details["count"] == 25
    assert len(details["problems"]) == 20
    assert [p["line"] for p in details["problems"]] == [i + 2 for i in range(5, 45, 2)]
    assert caught.value.code == "INVALID_BARS"
    assert caught.value.message == "25 bad lines; nothing was imported"


def test_unknown_format_and_zone_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed):
        read(tmp_path, GENERIC, fmt="excel")
    with pytest.raises(ValidationFailed) as caught:
        read(tmp_path, GENERIC, tz="Mars/Olympus")
    assert caught.value.field == "tz"
