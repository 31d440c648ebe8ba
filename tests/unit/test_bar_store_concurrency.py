"""SqliteBarStore under concurrent use: readers in threads (and through a second store on the
same file, as another process would) never see a half-written series while a writer flips it
between two versions."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from adapters.bars.sqlite_store import CHUNK_BARS, SqliteBarStore
from domain.bars import BarSeries, DataSource, Timeframe, epoch_seconds
from tests.fakes import BARS_START, bars_of

T0 = epoch_seconds(BARS_START)
MINUTES = 12_000
"""Both versions span the same minutes (about three of the store's chunks), so replacing one
with the other swaps the whole series in one write."""
END = T0 + MINUTES * 60
WRITES = 30


def version(close: str, every_minutes: int) -> BarSeries:
    """Bars from T0 to END, one every `every_minutes`, all closing at `close`."""
    series = bars_of("AAPL", *[close] * (MINUTES // every_minutes + 1), timeframe=Timeframe.M1)
    step = every_minutes * 60
    for i in range(len(series)):
        series.times[i] = T0 + i * step
    assert series.times[-1] == END
    return series


ONES = version("1", 3)  # 4,001 bars
TWOS = version("2", 2)  # 6,001 bars
EXPECTED = {
    ("1", len(ONES), 180): "ones",
    ("2", len(TWOS), 120): "twos",
}


def which(series: BarSeries) -> str:
    """The version a read holds, or an assertion error describing the mix it found."""
    assert len(series) > 0, "an empty read: the series was missing while being replaced"
    closes = {series.price(c) for c in series.closes}
    steps = {b - a for a, b in zip(series.times, series.times[1:], strict=False)}
    assert len(closes) == 1, f"closes from both versions: {closes}"
    assert len(steps) == 1, f"bar spacing from both versions: {steps}"
    key = (str(closes.pop()), len(series), steps.pop())
    assert key in EXPECTED, f"a read that is neither version: {key}"
    return EXPECTED[key]


def test_every_read_sees_exactly_one_version(tmp_path: Path) -> None:
    path = tmp_path / "bars.db"
    store = SqliteBarStore(path)
    other_process = SqliteBarStore(path)
    assert MINUTES > 2 * CHUNK_BARS  # the series spans several chunks (blob rows)
    store.write_sync(ONES, DataSource.IMPORTED, replace=False)

    done = threading.Event()
    seen: Counter[str] = Counter()
    failures: list[BaseException] = []
    lock = threading.Lock()

    def reader(read: Callable[[], BarSeries]) -> None:
        try:
            while not done.is_set():
                name = which(read())
                with lock:
                    seen[name] += 1
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
            done.set()

    def whole(on: SqliteBarStore) -> Callable[[], BarSeries]:
        return lambda: on.read_sync(["AAPL"], Timeframe.M1, 0, 2**62)["AAPL"]

    def window() -> BarSeries:
        # A window across a chunk boundary: still from one version only.
        got = store.read_sync(["AAPL"], Timeframe.M1, T0 + 3600 * 60, T0 + 6000 * 60)["AAPL"]
        full = ONES if got.price(got.closes[0]) == 1 else TWOS
        assert list(got.times) == list(full.between(T0 + 3600 * 60, T0 + 6000 * 60).times)
        return full

    def coverage() -> BarSeries:
        (cov,) = other_process.coverage_sync()
        assert cov.bars in (len(ONES), len(TWOS))
        return ONES if cov.bars == len(ONES) else TWOS

    readers = [
        threading.Thread(target=reader, args=(whole(store),)),
        threading.Thread(target=reader, args=(whole(store),)),
        threading.Thread(target=reader, args=(whole(other_process),)),
        threading.Thread(target=reader, args=(window,)),
        threading.Thread(target=reader, args=(coverage,)),
    ]
    for thread in readers:
        thread.start()
    try:
        for i in range(WRITES):
            if done.is_set():
                break
            store.write_sync(TWOS if i % 2 == 0 else ONES, DataSource.IMPORTED, replace=True)
    finally:
        done.set()
        for thread in readers:
            thread.join(30)
    store.close()
    other_process.close()

    if failures:
        raise failures[0]
    assert not any(thread.is_alive() for thread in readers)
    assert set(seen) == {"ones", "twos"}, seen  # the readers really ran across the flips
    assert sum(seen.values()) > WRITES
