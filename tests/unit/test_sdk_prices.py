"""`PriceRecorder`: the bars a remote run shows its strategy, converted to a `PriceTrack`
per symbol a batch at a time, give exactly the track made bar by bar (`PriceTrack.add`),
across batches, with symbols missing from some ticks, and prices that are not short
binary fractions."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from domain.bars import Bar
from entrypoints.sdk.plots import PRICE_BATCH, PriceRecorder, PriceTrack

T0 = datetime(2024, 1, 2, 21, 0, tzinfo=UTC)


def columns(track: PriceTrack) -> list[bytes]:
    fields = (track.times, track.opens, track.highs, track.lows, track.closes, track.volumes)
    return [column.tobytes() for column in fields]  # bit for bit


def test_batches_give_the_track_made_bar_by_bar() -> None:
    rng = random.Random(7)
    symbols = ("AAA", "BBB", "CCC")
    recorder = PriceRecorder(symbols)
    one_by_one = {symbol: PriceTrack() for symbol in symbols}
    for i in range(2 * PRICE_BATCH + 37):
        when = T0 + timedelta(minutes=i)
        present = [s for s in symbols if s == "AAA" or rng.random() < 0.6]
        bars = {}
        for symbol in present:
            o, h, lo, c = (Decimal(rng.randint(1, 10**9)) / 10**6 for _ in range(4))
            bars[symbol] = Bar(when, o, h, lo, c, Decimal(rng.randint(0, 10**7)) / 1000)
            one_by_one[symbol].add(int(when.timestamp()), bars[symbol])
        recorder.add(int(when.timestamp()), bars)
        if i == PRICE_BATCH + 5:  # read midway, then go on: nothing lost or doubled
            tracks = recorder.tracks()
            assert columns(tracks["AAA"]) == columns(one_by_one["AAA"])
    tracks = recorder.tracks()
    assert list(tracks) == list(symbols)
    for symbol in symbols:
        assert len(tracks[symbol].times) == len(one_by_one[symbol].times)
        assert columns(tracks[symbol]) == columns(one_by_one[symbol])
    assert len(tracks["AAA"].times) == 2 * PRICE_BATCH + 37


def test_a_symbol_without_bars_has_an_empty_track() -> None:
    recorder = PriceRecorder(["AAA", "BBB"])
    bar = Bar(T0, Decimal("1.10"), Decimal("1.20"), Decimal("1.00"), Decimal("1.15"), Decimal(5))
    recorder.add(int(T0.timestamp()), {"AAA": bar})
    tracks = recorder.tracks()
    assert list(tracks["AAA"].closes) == [1.15]
    assert columns(tracks["BBB"]) == [b""] * 6
