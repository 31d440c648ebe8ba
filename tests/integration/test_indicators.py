"""Indicators (`ctx.indicator`) against a real SIMUTRADOR_HOME: read through a view that ends
at the current bar (a later bar cannot be indexed), the same values in process (computed once
over the whole run) and client side (recomputed over the bars received so far, as against a
server), functions that look ahead refused both ways, and declaration mistakes reported."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from domain.limits import Plan
from entrypoints.sdk import (
    BacktestResults,
    Bar,
    Context,
    Indicator,
    IndicatorError,
    LookAheadError,
    Strategy,
    crossover,
    sma,
)
from entrypoints.sdk.backtest import drive
from entrypoints.sdk.local import LocalDriver
from entrypoints.server.embedded import EmbeddedServer
from tests.integration.test_backtest_runner import AAPL, CAPITAL, backtest, home

__all__ = ["home"]  # the fixture, shared with the runner's tests


def centred_mean(values: Any, n: int) -> Any:
    """A moving average centred on each bar: it reads n // 2 later bars."""
    half = n // 2
    return np.array([np.mean(values[max(0, i - half) : i + half + 1]) for i in range(len(values))])


def next_close(values: Any) -> Any:
    """Tomorrow's close, today (a shift(-1))."""
    return np.append(values[1:], np.nan)


class Reader(Strategy):
    """Declares sma(close, 3) (or `function`) and records what it reads on each bar."""

    def __init__(self, function: Any = sma, *args: Any) -> None:
        self.function, self.args = function, args or ("close", 3)
        self.seen: list[tuple[int, float, float, float]] = []
        self.future_refused = 0

    def on_start(self, ctx: Context) -> None:
        self.ind: Indicator = ctx.indicator(self.function, *self.args, name="probe")

    def on_bar(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        n = len(self.ind)
        previous = self.ind[-2] if n > 1 else math.nan
        self.seen.append((n, self.ind[-1], previous, float(ctx.history("AAPL", 1)[0])))
        try:
            self.ind[n]
        except IndexError:
            self.future_refused += 1


def client_side(
    home: Path, strategy: Strategy, warmup_bars: int = 0, start: str = "2023-01-03"
) -> BacktestResults:
    """The loop a server run uses (`drive`), over the engine in process: indicators are
    computed client side from the bars received so far."""

    async def run() -> BacktestResults:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SIMUTRADOR_HOME", str(home))
            driver = LocalDriver(["AAPL"], start, "2023-03-31", CAPITAL, warmup_bars=warmup_bars)
            try:
                return await drive(strategy, driver)
            finally:
                await driver.close()

    return asyncio.run(run())


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def test_an_indicator_is_read_up_to_the_current_bar_and_never_past_it(home: Path) -> None:
    reader = Reader()
    results = backtest(home, reader)
    assert reader.future_refused == len(reader.seen) == results.total_ticks
    closes = [float(b.close) for b in AAPL]
    for i, (n, now, before, close) in enumerate(reader.seen):
        assert n == i + 1
        assert close == closes[i]
        expected = float(np.mean(closes[i - 2 : i + 1])) if i >= 2 else math.nan
        assert same(now, expected)
        assert same(before, reader.seen[i - 1][1] if i else math.nan)
    track = results.indicators["probe"]
    assert list(track.times) == list(results.prices["AAPL"].times)
    assert all(same(a, b[1]) for a, b in zip(track.values, reader.seen, strict=True))


@pytest.mark.parametrize(("warmup_bars", "start"), [(0, "2023-01-03"), (4, "2023-01-10")])
def test_in_process_and_client_side_values_are_identical(
    home: Path, warmup_bars: int, start: str
) -> None:
    here, there = Reader(), Reader()
    local = backtest(home, here, start=start, warmup_bars=warmup_bars)
    remote = client_side(home, there, warmup_bars, start)
    assert here.seen
    assert here.seen[0][0] == warmup_bars + 1
    # sma(close, 3) has a value from the third bar on, warm-up bars included
    assert math.isnan(here.seen[0][1]) is (warmup_bars < 2)
    assert all(
        a[0] == b[0] and all(same(x, y) for x, y in zip(a[1:], b[1:], strict=True))
        for a, b in zip(here.seen, there.seen, strict=True)
    )
    assert list(local.indicators["probe"].values) == pytest.approx(
        list(remote.indicators["probe"].values), nan_ok=True, abs=0
    )


@pytest.mark.parametrize(
    ("function", "args"), [(centred_mean, ("close", 5)), (next_close, ("close",))]
)
def test_a_function_that_looks_ahead_is_refused_in_process(
    home: Path, function: Any, args: tuple[Any, ...]
) -> None:
    with pytest.raises(LookAheadError, match="looks ahead"):
        backtest(home, Reader(function, *args))


@pytest.mark.parametrize(
    ("function", "args"), [(centred_mean, ("close", 5)), (next_close, ("close",))]
)
def test_a_function_that_looks_ahead_is_refused_client_side(
    home: Path, function: Any, args: tuple[Any, ...]
) -> None:
    with pytest.raises(LookAheadError, match="looks ahead"):
        client_side(home, Reader(function, *args))


class DeclaresLate(Strategy):
    def on_bar(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        ctx.indicator(sma, "close", 3)


class DeclaresWrongly(Strategy):
    def __init__(self, **options: Any) -> None:
        self.options = options

    def on_start(self, ctx: Context) -> None:
        function = self.options.pop("function", sma)
        ctx.indicator(function, *self.options.pop("args", ("close", 3)), **self.options)


@pytest.mark.parametrize(
    ("strategy", "symbols", "message"),
    [
        (DeclaresLate(), "AAPL", "in on_start"),
        (DeclaresWrongly(args=("price", 3)), "AAPL", "name at least one bar field"),
        (DeclaresWrongly(), ["AAPL", "MSFT"], "pass symbol="),
        (DeclaresWrongly(symbol="TSLA"), "AAPL", "not a symbol of this simulation"),
        (
            DeclaresWrongly(function=lambda c: c[:-1], args=("close",)),
            "AAPL",
            "one value per bar",
        ),
    ],
)
def test_declaration_mistakes_are_usage_errors(
    home: Path, strategy: Strategy, symbols: str | list[str], message: str
) -> None:
    with pytest.raises(Exception, match=message) as caught:
        backtest(home, strategy, symbols)
    assert caught.value.code == IndicatorError.code  # type: ignore[attr-defined]


class Cross(Strategy):
    def on_start(self, ctx: Context) -> None:
        self.fast = ctx.indicator(sma, "close", 3)
        self.slow = ctx.indicator(sma, "close", 8)
        self.crossings: list[int] = []

    def on_bar(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        if crossover(self.fast, self.slow):
            self.crossings.append(len(self.fast))
            ctx.buy("AAPL", quantity=1)


def test_default_names_and_crossover(home: Path) -> None:
    strategy = Cross()
    results = backtest(home, strategy)
    assert set(results.indicators) == {"sma(close, 3)", "sma(close, 8)"}
    fast = results.indicators["sma(close, 3)"].values
    slow = results.indicators["sma(close, 8)"].values
    expected = [
        i + 1
        for i in range(1, len(fast))
        if fast[i - 1] < slow[i - 1] < math.inf and fast[i] > slow[i]
    ]
    assert expected
    assert strategy.crossings == expected


@pytest.fixture(scope="module")
def served(home: Path) -> Iterator[tuple[str, str]]:
    """A server over the same home: its URL and an API key."""
    server = EmbeddedServer(home=home, sample=False).start()
    try:
        yield server.http_url, server.create_api_key("indicators", Plan.PROFESSIONAL)
    finally:
        server.stop()


class Counting:
    """sma, counting the bars it is run over (a causal function)."""

    def __init__(self) -> None:
        self.runs = 0
        self.__name__ = "sma"

    def __call__(self, values: Any, n: int) -> Any:
        self.runs += 1
        return sma(values, n)


@pytest.mark.parametrize(("warmup_bars", "start"), [(0, "2023-01-03"), (4, "2023-01-10")])
def test_windows_give_the_same_values_computed_once_a_window_not_once_a_bar(
    home: Path, served: tuple[str, str], warmup_bars: int, start: str
) -> None:
    url, key = served
    here = Reader()
    local = backtest(home, here, start=start, warmup_bars=warmup_bars)
    runs = {}
    for window in (1, 8):
        counted = Counting()
        there = Reader(counted, "close", 3)
        remote = backtest(
            home,
            there,
            start=start,
            warmup_bars=warmup_bars,
            server=url,
            api_key=key,
            window=window,
        )
        runs[window] = counted.runs
        assert len(there.seen) == len(here.seen) == remote.total_ticks
        assert all(
            a[0] == b[0] and all(same(x, y) for x, y in zip(a[1:], b[1:], strict=True))
            for a, b in zip(here.seen, there.seen, strict=True)
        )
        assert list(local.indicators["probe"].values) == pytest.approx(
            list(remote.indicators["probe"].values), nan_ok=True, abs=0
        )
    bars = len(here.seen)
    assert runs[1] == bars  # one bar at a time: run over the bars so far on each bar
    # Windows of 8, then 32, 128…: run twice a window (ahead, and checked up to the bar).
    assert runs[8] <= 2 * math.ceil(bars / 8)


@pytest.mark.parametrize(
    ("function", "args"), [(centred_mean, ("close", 5)), (next_close, ("close",))]
)
def test_a_function_that_looks_ahead_is_refused_with_windows_before_a_value_is_read(
    home: Path, served: tuple[str, str], function: Any, args: tuple[Any, ...]
) -> None:
    url, key = served
    reader = Reader(function, *args)
    with pytest.raises(LookAheadError, match="looks ahead"):
        backtest(home, reader, server=url, api_key=key, window=8)
    assert reader.seen == []  # refused on its first read, the window's later bars unread


class TwoSymbols(Strategy):
    """sma(close, 3) of each symbol, read on every bar; MSFT has no bar every fifth day."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, float]] = []

    def on_start(self, ctx: Context) -> None:
        self.ind = {s: ctx.indicator(sma, "close", 3, symbol=s) for s in ctx.symbols}

    def on_bar(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        for s in ctx.symbols:
            self.seen.append((s, len(self.ind[s]), self.ind[s][-1]))


def test_windows_give_the_same_values_for_symbols_with_missing_bars(
    home: Path, served: tuple[str, str]
) -> None:
    url, key = served
    here, there = TwoSymbols(), TwoSymbols()
    backtest(home, here, ["AAPL", "MSFT"])
    backtest(home, there, ["AAPL", "MSFT"], server=url, api_key=key, window=8)
    assert len({n for s, n, _ in here.seen if s == "MSFT"}) < len(here.seen) / 2  # gaps
    assert len(there.seen) == len(here.seen)
    assert all(
        a[:2] == b[:2] and same(a[2], b[2]) for a, b in zip(here.seen, there.seen, strict=True)
    )
