"""domain/bars.py: timeframes, the columnar fixed-point BarSeries (exact prices, slicing,
rescaling, merging, the bar rules) and the write rules of every bar store (`plan_write`)."""

from __future__ import annotations

from array import array
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from domain.bars import (
    MAX_SCALE,
    Bar,
    BarSeries,
    Coverage,
    DataSource,
    Timeframe,
    coverage_of,
    epoch_seconds,
    from_epoch,
    merge_series,
    plan_write,
    union_times,
)
from domain.errors import DataConflict, ValidationFailed

T0 = datetime(2024, 1, 2, 21, 0, tzinfo=UTC)
DAY = 86_400


def bar(day: int, close: str, *, volume: str = "100", spread: str = "0") -> Bar:
    """A bar `day` days after T0 with open = close and high/low `spread` away from it."""
    c, s = Decimal(close), Decimal(spread)
    return Bar(T0 + timedelta(days=day), c, c + s, c - s, c, Decimal(volume))


def series(*bars: Bar, symbol: str = "AAPL") -> BarSeries:
    return BarSeries.from_bars(symbol, Timeframe.D1, bars)


def closes(s: BarSeries) -> list[Decimal]:
    return [s.price(c) for c in s.closes]


def days(s: BarSeries) -> list[int]:
    t0 = epoch_seconds(T0)
    return [(t - t0) // DAY for t in s.times]


def coverage(first_day: int, last_day: int, source: DataSource = DataSource.IMPORTED) -> Coverage:
    return Coverage(
        "AAPL",
        Timeframe.D1,
        T0 + timedelta(days=first_day),
        T0 + timedelta(days=last_day),
        last_day - first_day + 1,
        source,
    )


# --- Timeframe ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "timeframe", "seconds", "intraday"),
    [
        ("1d", Timeframe.D1, 86_400, False),
        (" 1H ", Timeframe.H1, 3_600, True),
        ("5m", Timeframe.M5, 300, True),
        ("1M", Timeframe.M1, 60, True),  # case-insensitive: there is no monthly timeframe
    ],
)
def test_timeframe_parse(text: str, timeframe: Timeframe, seconds: int, intraday: bool) -> None:
    parsed = Timeframe.parse(text)
    assert parsed is timeframe
    assert (parsed.seconds, parsed.is_intraday) == (seconds, intraday)


@pytest.mark.parametrize("text", ["2h", "", "daily", "1 d"])
def test_unknown_timeframe_is_a_validation_error(text: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        Timeframe.parse(text)
    assert caught.value.details == {"field": "timeframe", "allowed": ["1d", "1h", "5m", "1m"]}


# --- BarSeries: exact columns ---------------------------------------------------------------


def test_from_bars_keeps_the_fewest_places_that_hold_every_value() -> None:
    s = series(
        Bar(T0, Decimal("1.5"), Decimal("1.75"), Decimal("1.125"), Decimal("1.5"), Decimal(10)),
        Bar(T0 + timedelta(days=1), *map(Decimal, ("2", "2", "2", "2", "0.5"))),
    )
    assert (s.price_scale, s.volume_scale) == (3, 1)
    assert list(s.opens) == [1500, 2000]
    assert list(s.highs) == [1750, 2000]
    assert list(s.lows) == [1125, 2000]
    assert list(s.volumes) == [100, 5]
    assert list(s.times) == [epoch_seconds(T0), epoch_seconds(T0) + DAY]
    assert s.nbytes == 2 * 6 * 8  # six int64 columns


@pytest.mark.parametrize(
    "price", ["0.000012345", "123456789.123456789", "0.000000000001", "99999.99", "7"]
)
def test_prices_come_back_exactly(price: str) -> None:
    value = Decimal(price)
    original = Bar(T0, value, value * 2, value, value, Decimal("0.00000001"))
    s = series(original)
    assert s.bar(0) == original
    # The same digits and exponent, not merely an equal number (0.0000123450000 == 0.000012345).
    assert s.bar(0).close.as_tuple() == value.as_tuple()
    assert s.bars() == [original]


def test_more_places_than_a_store_keeps_are_refused() -> None:
    tiny = Decimal("1").scaleb(-(MAX_SCALE + 1))
    with pytest.raises(ValueError, match=f"at most {MAX_SCALE}"):
        series(Bar(T0, tiny, tiny, tiny, tiny, Decimal(1)))


def test_empty_series() -> None:
    s = series()
    assert len(s) == 0
    assert not s
    assert (s.price_scale, s.volume_scale) == (0, 0)
    assert "empty" in repr(s)
    assert s.problems() == []


def test_columns_must_have_one_value_per_bar() -> None:
    one, two = array("q", [1]), array("q", [1, 2])
    with pytest.raises(ValueError, match="one value per bar"):
        BarSeries("AAPL", Timeframe.D1, 0, 0, two, one, one, one, one, one)


def test_repr_names_symbol_size_and_span() -> None:
    text = repr(series(bar(0, "1"), bar(4, "2")))
    assert text.startswith("BarSeries(AAPL 1d, 2 bars, 2024-01-02 21:00:00+00:00..")


def test_epoch_round_trip() -> None:
    assert from_epoch(epoch_seconds(T0)) == T0
    assert from_epoch(0) == datetime(1970, 1, 1, tzinfo=UTC)


# --- slicing ----------------------------------------------------------------------------------


def test_between_is_inclusive_at_both_ends() -> None:
    s = series(*(bar(d, str(d + 1)) for d in range(10)))
    t0 = epoch_seconds(T0)
    assert days(s.between(t0 + 2 * DAY, t0 + 5 * DAY)) == [2, 3, 4, 5]
    assert days(s.between(t0 + 2 * DAY + 1, t0 + 5 * DAY - 1)) == [3, 4]
    assert days(s.between(t0 - 10 * DAY, t0)) == [0]
    assert days(s.between(t0 + 9 * DAY, t0 + 99 * DAY)) == [9]
    assert len(s.between(t0 + 10 * DAY, t0 + 20 * DAY)) == 0
    assert len(s.between(t0 + 5 * DAY, t0 + 2 * DAY)) == 0  # an inverted window is empty
    window = s.between(t0 + 3 * DAY, t0 + 3 * DAY)
    assert window.bars() == [s.bar(3)]
    assert (window.symbol, window.price_scale) == (s.symbol, s.price_scale)


def test_a_full_range_slice_is_the_series_itself() -> None:
    # Columns are never mutated once shared, so a read of everything holds one copy, not two.
    s = series(bar(0, "1"), bar(1, "2"))
    t0 = epoch_seconds(T0)
    assert s.slice(0, 2) is s
    assert s.slice(-5, 99) is s
    assert s.between(t0 - DAY, t0 + 9 * DAY) is s
    part = s.slice(1, 2)
    assert part is not s
    assert part.bars() == [s.bar(1)]


# --- rescaling and merging ----------------------------------------------------------------------


def test_rescaled_adds_places_exactly() -> None:
    s = series(bar(0, "1.5", volume="3"), bar(1, "2.25", volume="4"))
    wider = s.rescaled(6, 2)
    assert (wider.price_scale, wider.volume_scale) == (6, 2)
    assert list(wider.closes) == [1_500_000, 2_250_000]
    assert list(wider.volumes) == [300, 400]
    assert wider.bars() == s.bars()  # the same values, numerically
    assert s.rescaled(s.price_scale, s.volume_scale) is s
    with pytest.raises(ValueError, match="more decimal places"):
        s.rescaled(1, 0)


def test_merge_replaces_the_span_of_the_incoming_bars_and_keeps_the_rest() -> None:
    base = series(*(bar(d, "10") for d in range(10)))
    # Incoming covers days 3..6 with a hole on day 5: day 5 of the base goes too, since
    # the incoming bars replace everything from their first to their last.
    incoming = series(bar(3, "1.25"), bar(4, "1.25"), bar(6, "1.25"))
    merged = merge_series(base, incoming)
    assert days(merged) == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    assert closes(merged) == [Decimal(10)] * 3 + [Decimal("1.25")] * 3 + [Decimal(10)] * 3
    assert merged.price_scale == 2  # the wider of the two scales
    assert merged.problems() == []


def test_merge_appends_and_prepends() -> None:
    base = series(bar(5, "5"), bar(6, "6"))
    later = merge_series(base, series(bar(8, "8")))
    assert days(later) == [5, 6, 8]
    earlier = merge_series(later, series(bar(1, "1"), bar(2, "2")))
    assert days(earlier) == [1, 2, 5, 6, 8]
    assert closes(earlier) == [Decimal(v) for v in (1, 2, 5, 6, 8)]


def test_merge_with_an_empty_side() -> None:
    base = series(bar(0, "1"))
    empty = BarSeries.empty("AAPL", Timeframe.D1)
    assert merge_series(base, empty) is base
    assert merge_series(empty, base) is base


def test_coverage_of_and_union_times() -> None:
    a = series(bar(0, "1"), bar(2, "1"))
    b = series(bar(1, "1"), bar(2, "1"), symbol="MSFT")
    assert coverage_of(a, DataSource.SYNTHETIC) == Coverage(
        "AAPL", Timeframe.D1, T0, T0 + timedelta(days=2), 2, DataSource.SYNTHETIC
    )
    t0 = epoch_seconds(T0)
    assert union_times([a, b]) == [t0, t0 + DAY, t0 + 2 * DAY]
    assert union_times([a]) == [t0, t0 + 2 * DAY]


# --- the bar rules ----------------------------------------------------------------------------


def test_a_valid_series_has_no_problems() -> None:
    assert series(bar(0, "10", spread="1"), bar(1, "11", spread="0")).problems() == []


def test_problems_lists_every_broken_bar_in_order() -> None:
    d = Decimal
    rows = [
        Bar(T0, d(10), d(11), d(9), d(10), d(1)),  # fine
        Bar(T0 + timedelta(days=1), d(10), d(9), d(8), d(10), d(1)),  # high < open
        Bar(T0 + timedelta(days=2), d(10), d(12), d(11), d(12), d(1)),  # low > open
        Bar(T0 + timedelta(days=3), d(10), d(10), d(10), d(10), d(-1)),  # negative volume
        Bar(T0 + timedelta(days=3), d(10), d(10), d(10), d(10), d(1)),  # same time again
        Bar(T0 + timedelta(days=2), d(10), d(10), d(10), d(10), d(1)),  # back in time
        Bar(T0 + timedelta(days=9), d(10), d(10), d(10), d(11), d(1)),  # high < close
        Bar(T0 + timedelta(days=10), d(10), d(10), d(9), d(9), d(0)),  # fine, zero volume
    ]
    assert series(*rows).problems() == [
        (1, "high is below max(open, close)"),
        (2, "low is above min(open, close)"),
        (3, "volume is negative"),
        (4, "time is not after the previous bar's"),
        (5, "time is not after the previous bar's"),
        (6, "high is below max(open, close)"),
    ]


# --- plan_write: what a store may write over what it holds -------------------------------------


def test_anything_may_be_written_to_an_empty_slot() -> None:
    incoming = series(bar(0, "1"))
    for source in DataSource:
        assert plan_write(None, incoming, source, replace=False) is False


def test_an_empty_write_is_refused() -> None:
    with pytest.raises(DataConflict) as caught:
        plan_write(None, BarSeries.empty("AAPL", Timeframe.D1), DataSource.IMPORTED, replace=True)
    assert caught.value.details == {"symbol": "AAPL"}


@pytest.mark.parametrize("replace", [False, True])
def test_imported_bars_drop_a_synthetic_series(replace: bool) -> None:
    # Overlapping or not: the synthetic series is dropped whole.
    assert plan_write(
        coverage(0, 9, DataSource.SYNTHETIC),
        series(bar(5, "1")),
        DataSource.IMPORTED,
        replace=replace,
    )
    assert plan_write(
        coverage(0, 9, DataSource.SYNTHETIC),
        series(bar(50, "1")),
        DataSource.IMPORTED,
        replace=False,
    )


@pytest.mark.parametrize("replace", [False, True])
def test_synthetic_bars_never_replace_imported_ones(replace: bool) -> None:
    with pytest.raises(DataConflict) as caught:
        plan_write(coverage(0, 9), series(bar(50, "1")), DataSource.SYNTHETIC, replace=replace)
    assert caught.value.details == {"symbol": "AAPL", "timeframe": "1d"}
    assert "never replace" in caught.value.message


@pytest.mark.parametrize("source", list(DataSource))
@pytest.mark.parametrize(
    ("first", "last"),
    [(5, 6), (9, 12), (-3, 0), (-3, 12)],  # inside, over the end, at the start, around
)
def test_overlap_needs_replace(source: DataSource, first: int, last: int) -> None:
    stored = coverage(0, 9, source)
    incoming = series(bar(first, "1"), bar(last, "1"))
    with pytest.raises(DataConflict) as caught:
        plan_write(stored, incoming, source, replace=False)
    assert caught.value.details == {
        "symbol": "AAPL",
        "timeframe": "1d",
        "stored_first": stored.first.isoformat(),
        "stored_last": stored.last.isoformat(),
    }
    assert plan_write(stored, incoming, source, replace=True) is False


@pytest.mark.parametrize(("first", "last"), [(10, 12), (-5, -1)])
def test_bars_next_to_the_stored_ones_are_added_without_replace(first: int, last: int) -> None:
    incoming = series(bar(first, "1"), bar(last, "1"))
    assert plan_write(coverage(0, 9), incoming, DataSource.IMPORTED, replace=False) is False
