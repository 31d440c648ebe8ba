"""Properties of the SQLite bar store: any valid series comes back exactly, column by column,
and any [first, last] window it reads is the same as filtering the series in Python."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.bars.sqlite_store import CHUNK_BARS, SqliteBarStore
from domain.bars import MAX_SCALE, Bar, BarSeries, DataSource, Timeframe, epoch_seconds

FAR = 2**62
EARLIEST = epoch_seconds(datetime(1990, 1, 1, tzinfo=UTC))
LATEST = epoch_seconds(datetime(2035, 1, 1, tzinfo=UTC))
_symbols = itertools.count()


def decimals(max_mantissa: int = 10**6) -> st.SearchStrategy[Decimal]:
    """Non-negative exact decimals with 0..MAX_SCALE places (at most 10^18 once scaled)."""
    return st.builds(
        lambda mantissa, places: Decimal(mantissa).scaleb(-places),
        st.integers(0, max_mantissa),
        st.integers(0, MAX_SCALE),
    )


@st.composite
def valid_series(draw: st.DrawFn) -> BarSeries:
    timeframe = draw(st.sampled_from(list(Timeframe)))
    chunk = CHUNK_BARS * timeframe.seconds
    # Mostly one bar-length apart, sometimes far enough to skip whole chunks of the store.
    gap = st.one_of(
        st.just(timeframe.seconds),
        st.integers(1, timeframe.seconds * 10),
        st.integers(1, 3 * chunk),
    )
    # (open, close, high above the top, low below the bottom, volume, gap to the next bar)
    rows = draw(
        st.lists(
            st.tuples(decimals(), decimals(), decimals(10**3), decimals(10**3), decimals(), gap),
            min_size=1,
            max_size=30,
        )
    )
    t = draw(st.integers(EARLIEST, LATEST))
    bars: list[Bar] = []
    for open_, close, up, down, volume, step in rows:
        high = max(open_, close) + up
        low = max(Decimal(0), min(open_, close) - down)
        bars.append(Bar(datetime.fromtimestamp(t, UTC), open_, high, low, close, volume))
        t += step
    series = BarSeries.from_bars(f"S{next(_symbols)}", timeframe, bars)
    assert series.problems() == []  # the strategy makes valid bars only
    return series


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteBarStore]:
    """One file for the module: every example writes its own symbol."""
    opened = SqliteBarStore(Path(tmp_path_factory.mktemp("props")) / "bars.db")
    yield opened
    opened.close()


PROPS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPS
@given(series=valid_series(), source=st.sampled_from(list(DataSource)))
def test_what_is_written_is_read_back_identically(
    store: SqliteBarStore, series: BarSeries, source: DataSource
) -> None:
    coverage = store.write_sync(series, source, replace=False)
    assert (coverage.bars, coverage.source) == (len(series), source)
    back = store.read_sync([series.symbol], series.timeframe, 0, FAR)[series.symbol]
    assert (back.price_scale, back.volume_scale) == (series.price_scale, series.volume_scale)
    for written, read in zip(series.columns, back.columns, strict=True):
        assert list(read) == list(written)
    assert back.bars() == series.bars()


@PROPS
@given(series=valid_series(), data=st.data())
def test_a_window_is_the_series_filtered_in_python(
    store: SqliteBarStore, series: BarSeries, data: st.DataObject
) -> None:
    store.write_sync(series, DataSource.IMPORTED, replace=False)
    times = list(series.times)
    # Bounds near the bars (on them, just beside them) and anywhere around them.
    near = st.sampled_from(times).flatmap(lambda t: st.integers(t - 1, t + 1))
    anywhere = st.integers(times[0] - 10 * 86_400, times[-1] + 10 * 86_400)
    first = data.draw(st.one_of(near, anywhere), label="first")
    last = data.draw(st.one_of(near, anywhere), label="last")

    window = store.read_sync([series.symbol], series.timeframe, first, last)[series.symbol]

    keep = [i for i, t in enumerate(times) if first <= t <= last]
    for read, written in zip(window.columns, series.columns, strict=True):
        assert list(read) == [written[i] for i in keep]
    assert window.bars() == [series.bar(i) for i in keep]
