"""`PriceRecorder`: the bars a remote run shows its strategy, as a `PriceTrack` per symbol
whose prices are converted when first read or a batch at a time, give exactly the track made
bar by bar (`PriceTrack.add`): read at the end or midway, across batches, with symbols
missing from some ticks, and prices that are not short binary fractions."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from domain.bars import Bar
from entrypoints.sdk import plots
from entrypoints.sdk.plots import PriceRecorder, PriceTrack

T0 = datetime(2024, 1, 2, 21, 0, tzinfo=UTC)
SYMBOLS = ("AAA", "BBB", "CCC")


def columns(track: PriceTrack) -> list[bytes]:
    fields = (track.times, track.opens, track.highs, track.lows, track.closes, track.volumes)
    return [column.tobytes() for column in fields]  # bit for bit


def random_bars(rng: random.Random, when: datetime) -> dict[str, Bar]:
    bars = {}
    for symbol in SYMBOLS:
        if symbol == "AAA" or rng.random() < 0.6:
            o, h, lo, c = (Decimal(rng.randint(1, 10**9)) / 10**6 for _ in range(4))
            bars[symbol] = Bar(when, o, h, lo, c, Decimal(rng.randint(0, 10**7)) / 1000)
    return bars


@pytest.mark.parametrize("held", [plots.PRICES_HELD, 50])
def test_the_tracks_are_those_made_bar_by_bar(monkeypatch: pytest.MonkeyPatch, held: int) -> None:
    """Read midway and at the end; with the default batch and with a small one (so that
    bars are converted in batches during the run too)."""
    monkeypatch.setattr(plots, "PRICES_HELD", held)
    rng = random.Random(7)
    recorder = PriceRecorder(SYMBOLS)
    one_by_one = {symbol: PriceTrack() for symbol in SYMBOLS}
    ticks = 437
    for i in range(ticks):
        when = T0 + timedelta(minutes=i)
        bars = random_bars(rng, when)
        for symbol, bar in bars.items():
            one_by_one[symbol].add(int(when.timestamp()), bar)
        recorder.add(int(when.timestamp()), bars)
        if i == 211:  # read midway, then go on: nothing lost or doubled
            assert columns(recorder["BBB"]) == columns(one_by_one["BBB"])
    assert list(recorder) == list(SYMBOLS)
    assert len(recorder) == len(SYMBOLS)
    for symbol in SYMBOLS:
        assert recorder.times(symbol) == one_by_one[symbol].times
        assert columns(recorder[symbol]) == columns(one_by_one[symbol])
    assert len(recorder["AAA"].times) == ticks


def test_a_symbol_without_bars_has_an_empty_track() -> None:
    recorder = PriceRecorder(["AAA", "BBB"])
    bar = Bar(T0, Decimal("1.10"), Decimal("1.20"), Decimal("1.00"), Decimal("1.15"), Decimal(5))
    recorder.add(int(T0.timestamp()), {"AAA": bar})
    assert list(recorder["AAA"].closes) == [1.15]
    assert columns(recorder["BBB"]) == [b""] * 6
