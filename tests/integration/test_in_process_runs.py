"""Many `run_backtest`s in one process (as a sweep's worker runs them): the setup is built
once per home and reused, each run leaves no session behind and gives what a fresh process
gives, and a strategy may keep the bars of a tick and read them later."""

from __future__ import annotations

import asyncio
import decimal
from collections.abc import Mapping
from pathlib import Path

import pytest

from entrypoints.container import Container
from entrypoints.sdk import Bar, Context, ExecutionReportData, Strategy
from entrypoints.sdk.local import RUNNER_PRINCIPAL, shared_container
from tests.integration.test_backtest_runner import AAPL, MSFT, Scripted, backtest, home

__all__ = ["home"]  # the fixture, shared with the runner's tests


def container_of(home: Path) -> Container:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SIMUTRADOR_HOME", str(home))
        return shared_container()


def fill(r: ExecutionReportData) -> tuple[object, ...]:
    return (r.order_id, r.status, r.fill_quantity, r.price, r.commission, r.sim_time)


def buy_on_bar_3(ctx: Context) -> None:
    ctx.buy("AAPL", quantity=5)


def test_runs_in_one_process_share_the_setup_and_leave_no_session(
    home: Path, tmp_path: Path
) -> None:
    first = backtest(home, Scripted({3: buy_on_bar_3}))
    container = container_of(home)
    again = [backtest(home, Scripted({3: buy_on_bar_3})) for _ in range(3)]
    assert container_of(home) is container
    assert container_of(tmp_path) is not container  # another home, another setup
    for results in again:
        assert results.session_id != first.session_id
        assert results.trades == first.trades
        assert results.equity_curve == first.equity_curve
        assert [fill(r) for r in results.executions] == [fill(r) for r in first.executions]
    left = asyncio.run(container.session_service().list(RUNNER_PRINCIPAL))
    assert list(left) == []


class KeepsBars(Strategy):
    """Keeps each tick's bars and reads them all at the end."""

    def on_start(self, ctx: Context) -> None:
        self.kept: list[Mapping[str, Bar]] = []
        self.read_then: list[dict[str, Bar]] = []

    def on_bar(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        self.kept.append(bars)
        self.read_then.append(dict(bars))


def test_bars_kept_from_a_tick_read_later_are_that_ticks_bars(home: Path) -> None:
    strategy = KeepsBars()
    backtest(home, strategy, ["AAPL", "MSFT"])
    read_later = [dict(bars) for bars in strategy.kept]
    assert read_later == strategy.read_then
    assert [b["AAPL"] for b in read_later] == AAPL
    assert [b["MSFT"] for b in read_later if "MSFT" in b] == MSFT
    assert all(set(bars) == set(dict(bars)) for bars in strategy.kept)
    with pytest.raises(KeyError):
        strategy.kept[2]["MSFT"]  # MSFT has no bar on the third day


class RoundsItsOwnDecimals(Scripted):
    """Lowers the thread's decimal precision for its own arithmetic, as a strategy may."""

    def on_start(self, ctx: Context) -> None:
        super().on_start(ctx)
        decimal.getcontext().prec = 3


def test_a_strategy_lowering_decimal_precision_changes_no_price(home: Path) -> None:
    """Bars are decoded, marked and filled in the engine's own exact context: a strategy that
    sets the thread's context to 3 digits gets the fills and curve one at 28 digits gets
    (prices of several digits, e.g. 196.26, would otherwise round to 196)."""
    orders = {3: buy_on_bar_3, 20: lambda ctx: ctx.close("AAPL")}
    exact = backtest(home, Scripted(orders))
    with decimal.localcontext():
        rounded = backtest(home, RoundsItsOwnDecimals(orders))
    assert [fill(r) for r in rounded.executions] == [fill(r) for r in exact.executions]
    assert rounded.equity_curve == exact.equity_curve
    assert rounded.trades == exact.trades
    assert any(len(r.price.as_tuple().digits) > 3 for r in exact.executions if r.price)
