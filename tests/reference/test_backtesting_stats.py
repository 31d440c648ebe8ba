"""SimuTrador's statistics against backtesting.py 0.6.6's same-named ones, on the GOOG SMA
parity run (tests/reference/test_backtesting_parity.py): each one computed by both.

backtesting.py measures buy and hold from the first bar its strategy can trade, after the
warm-up of the indicators it declared with `self.I`; SimuTrador from the session's first bar
(its warm-up bars come before `--start`). The reference strategy here therefore computes the
same moving averages without declaring them, so both start at GOOG's first bar; its trades
are checked identical to SimuTrador's before any statistic is compared."""

from __future__ import annotations

import math
import warnings
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest
from backtesting import Strategy as BtStrategy
from backtesting.lib import crossover
from backtesting.test import GOOG, SMA

from entrypoints.sdk import BacktestResults, run_backtest
from entrypoints.sdk.loading import load_strategy

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sma_cross.py"
CAPITAL = 10_000
COMMISSION = 0.001

# Ours differs from theirs by the cent rounding of commissions (a few cents in 10,000: about 1e-7).
RELATIVE = 1e-6


class SmaCrossWithoutWarmup(BtStrategy):  # type: ignore[misc]
    """The SMA(10)/SMA(20) crossover of examples/sma_cross.py, averages kept undeclared."""

    def init(self) -> None:
        self.fast_sma = np.asarray(SMA(self.data.Close, 10))
        self.slow_sma = np.asarray(SMA(self.data.Close, 20))

    def next(self) -> None:
        seen = len(self.data)
        fast, slow = self.fast_sma[:seen], self.slow_sma[:seen]
        if crossover(fast, slow) and not self.position:
            self.buy()
        elif crossover(slow, fast) and self.position:
            self.position.close()


@pytest.fixture(scope="module")
def both(goog_home: Path) -> tuple[pd.Series, BacktestResults]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = Backtest(GOOG, SmaCrossWithoutWarmup, cash=CAPITAL, commission=COMMISSION).run()
    first, last = GOOG.index[0].date(), GOOG.index[-1].date()
    ours = run_backtest(
        load_strategy(EXAMPLE), ["GOOG"], first, last, CAPITAL, commission_pct=str(COMMISSION)
    )
    return theirs, ours


def test_the_same_trades(both: tuple[pd.Series, BacktestResults]) -> None:
    theirs, ours = both
    trades = theirs["_trades"]
    assert len(trades) == len(ours.trades) > 10
    assert [t.EntryTime.date() for t in trades.itertuples()] == [
        t.entry_time.date() for t in ours.trades
    ]
    assert [t.ExitTime.date() for t in trades.itertuples()] == [
        t.exit_time.date() for t in ours.trades
    ]


@pytest.mark.parametrize(
    ("ours_name", "their_name"),
    [
        ("equity_peak", "Equity Peak [$]"),
        ("buy_and_hold_return_pct", "Buy & Hold Return [%]"),
        ("cagr_pct", "CAGR [%]"),
        ("avg_drawdown_pct", "Avg. Drawdown [%]"),
        ("expectancy_pct", "Expectancy [%]"),
        ("sqn", "SQN"),
        ("kelly_criterion", "Kelly Criterion"),
        ("alpha_pct", "Alpha [%]"),
        ("beta", "Beta"),
        # Already there, and the same definition as backtesting.py's:
        ("max_drawdown_pct", "Max. Drawdown [%]"),
        ("total_return_pct", "Return [%]"),
        ("win_rate_pct", "Win Rate [%]"),
    ],
)
def test_a_statistic_equals_backtesting_py(
    both: tuple[pd.Series, BacktestResults], ours_name: str, their_name: str
) -> None:
    theirs, ours = both
    expected = float(theirs[their_name])
    got = getattr(ours.metrics, ours_name)
    assert got is not None, ours_name
    assert math.isfinite(expected), f"backtesting.py's {their_name} is {expected}"
    assert float(got) == pytest.approx(expected, rel=RELATIVE)


@pytest.mark.parametrize(
    ("ours_name", "their_name"),
    [
        ("max_drawdown_duration_days", "Max. Drawdown Duration"),
        ("avg_drawdown_duration_days", "Avg. Drawdown Duration"),
        ("max_trade_duration_days", "Max. Trade Duration"),
        ("avg_trade_duration_days", "Avg. Trade Duration"),
    ],
)
def test_a_duration_equals_backtesting_py_in_whole_days(
    both: tuple[pd.Series, BacktestResults], ours_name: str, their_name: str
) -> None:
    """backtesting.py shows durations rounded up to the bar's resolution (a day here); we
    keep the exact number of days (a mean can have a fraction)."""
    theirs, ours = both
    expected: pd.Timedelta = theirs[their_name]
    got = getattr(ours.metrics, ours_name)
    assert got is not None, ours_name
    assert expected.to_pytimedelta() == timedelta(days=math.ceil(got))
    if ours_name.startswith("max_"):
        assert got == math.ceil(got), "a maximum of whole days is whole"
