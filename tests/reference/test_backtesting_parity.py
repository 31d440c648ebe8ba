"""The engine against backtesting.py on the same strategy and data: the SMA(10)/SMA(20)
crossover of examples/sma_cross.py, long only, all cash at the next open, 0.1 % commission,
10,000 capital, on backtesting.py's bundled GOOG daily bars. The closed trades must be
identical and the final equity equal within a dollar (we round commission to cents)."""

from __future__ import annotations

import warnings
from decimal import Decimal
from pathlib import Path

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


class ReferenceSmaCross(BtStrategy):  # type: ignore[misc]
    fast = 10
    slow = 20

    def init(self) -> None:
        self.fast_sma = self.I(SMA, self.data.Close, self.fast)
        self.slow_sma = self.I(SMA, self.data.Close, self.slow)

    def next(self) -> None:
        if crossover(self.fast_sma, self.slow_sma) and not self.position:
            self.buy()
        elif crossover(self.slow_sma, self.fast_sma) and self.position:
            self.position.close()


def reference_run() -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backtest = Backtest(GOOG, ReferenceSmaCross, cash=CAPITAL, commission=COMMISSION)
        return backtest.run()


@pytest.fixture(scope="module")
def both(goog_home: Path) -> tuple[pd.Series, BacktestResults]:
    first, last = GOOG.index[0].date(), GOOG.index[-1].date()
    strategy = load_strategy(EXAMPLE)
    ours = run_backtest(strategy, ["GOOG"], first, last, CAPITAL, commission_pct=str(COMMISSION))
    return reference_run(), ours


def test_closed_trades_are_identical(both: tuple[pd.Series, BacktestResults]) -> None:
    stats, ours = both
    theirs = stats["_trades"]
    assert len(theirs) > 10, "the reference run should trade often on GOOG"
    expected = [
        (
            row.EntryTime.date(),
            Decimal(str(row.EntryPrice)),
            row.ExitTime.date(),
            Decimal(str(row.ExitPrice)),
            Decimal(int(row.Size)),
        )
        for row in theirs.itertuples()
    ]
    got = [
        (t.entry_time.date(), t.entry_price, t.exit_time.date(), t.exit_price, t.quantity)
        for t in ours.trades
    ]
    assert got == expected


def test_final_equity_within_a_dollar(both: tuple[pd.Series, BacktestResults]) -> None:
    stats, ours = both
    final = ours.metrics.final_equity
    assert abs(float(final) - float(stats["Equity Final [$]"])) <= 1.0
