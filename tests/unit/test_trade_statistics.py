"""backtesting.py's statistics (§7.12) on small hand-computed cases and their undefined cases.
That they equal backtesting.py's own on a real run is tests/reference/test_backtesting_stats.py.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from domain.metrics import (
    Metrics,
    beta,
    compute_metrics,
    drawdown_periods,
    equal_weight_buy_and_hold,
    trade_duration,
)
from domain.trades import ClosedTrade

D = Decimal
T0 = datetime(2024, 1, 2, 21, 0, tzinfo=UTC)


def days(n: int, first: date = date(2024, 1, 1), step: int = 1) -> list[date]:
    return [first + timedelta(days=i * step) for i in range(n)]


def trade(
    pnl: str, *, qty: str = "1", entry: str = "100", held: timedelta = timedelta(0)
) -> ClosedTrade:
    return ClosedTrade(
        symbol="AAPL",
        side="long",
        quantity=D(qty),
        entry_time=T0,
        entry_price=D(entry),
        exit_time=T0 + held,
        exit_price=D(entry),
        pnl=D(pnl),
        return_pct=0.0,
        commission=D(0),
    )


def stats(
    equity: list[str],
    trades: list[ClosedTrade] | None = None,
    *,
    when: list[date] | None = None,
    market: list[str] | None = None,
) -> Metrics:
    values = [D(v) for v in equity]
    return compute_metrics(
        values,
        trades or [],
        bars_total=len(values),
        bars_with_position=0,
        total_commission=D(0),
        total_slippage=D(0),
        days=when if when is not None else days(len(values)),
        buy_and_hold=[D(v) for v in market] if market is not None else None,
    )


def test_the_equity_peak_is_the_highest_point() -> None:
    assert stats(["100", "130", "90", "120"]).equity_peak == D(130)


def test_drawdown_periods_run_from_peak_to_peak_or_to_the_end() -> None:
    # Peaks at 0, 3 (110 > 100), 4 (as high) and 5; under water 1-2 (worst 80/100), then
    # 6-7 until the end (worst 99/120). Points are two days apart.
    values = ["100", "90", "80", "110", "110", "120", "99", "100"]
    periods = drawdown_periods([D(v) for v in values], days(8, step=2))
    assert periods.durations == [timedelta(days=6), timedelta(days=4)]
    assert periods.depths == pytest.approx([0.2, 1 - 99 / 120])
    m = stats(values, when=days(8, step=2))
    assert m.avg_drawdown_pct == pytest.approx(-(0.2 + (1 - 99 / 120)) / 2 * 100)
    assert m.max_drawdown_duration_days == 6
    assert m.avg_drawdown_duration_days == 5


def test_a_drawdown_starting_on_the_last_point_is_not_a_period_as_in_backtesting_py() -> None:
    m = stats(["100", "110", "105"])
    assert m.max_drawdown_pct is not None
    assert m.max_drawdown_pct < 0
    assert m.avg_drawdown_pct is None
    assert m.max_drawdown_duration_days is None


def test_without_drawdown_the_drawdown_statistics_are_undefined() -> None:
    m = stats(["100", "101", "102"])
    assert (m.avg_drawdown_pct, m.max_drawdown_duration_days, m.avg_drawdown_duration_days) == (
        None,
        None,
        None,
    )


def test_cagr_over_calendar_years() -> None:
    when = [date(2020, 1, 1), date(2020, 7, 1), date(2022, 1, 1)]
    years = (when[-1] - when[0]).days / 365.25
    m = stats(["100", "150", "121"], when=when)
    assert m.cagr_pct == pytest.approx((1.21 ** (1 / years) - 1) * 100, rel=1e-12)


def test_cagr_is_undefined_over_a_single_day_and_minus_100_when_wiped_out() -> None:
    assert stats(["100"]).cagr_pct is None
    assert stats(["100", "0"]).cagr_pct == -100.0


def test_buy_and_hold_weights_symbols_equally_from_their_first_close() -> None:
    value = equal_weight_buy_and_hold(
        {"A": [D(10), D(20), D(20)], "B": [None, D(50), D(25)]}  # B starts on the 2nd point
    )
    assert value == [D(1), D("1.5"), D("1.25")]


def test_buy_and_hold_refuses_ragged_or_empty_input() -> None:
    with pytest.raises(ValueError, match="at least one"):
        equal_weight_buy_and_hold({})
    with pytest.raises(ValueError, match="one close per point"):
        equal_weight_buy_and_hold({"A": [D(1)], "B": [D(1), D(2)]})


def test_beta_and_alpha_against_the_market() -> None:
    equity = ["100", "102", "101", "105"]
    market = ["50", "52", "51", "54"]
    ours = [math.log(b / a) for a, b in zip([100, 102, 101], [102, 101, 105], strict=True)]
    theirs = [math.log(b / a) for a, b in zip([50, 52, 51], [52, 51, 54], strict=True)]
    mo, mt = sum(ours) / 3, sum(theirs) / 3
    expected_beta = sum((a - mo) * (b - mt) for a, b in zip(ours, theirs, strict=True)) / sum(
        (b - mt) ** 2 for b in theirs
    )
    m = stats(equity, market=market)
    assert m.beta == pytest.approx(expected_beta, rel=1e-12)
    assert m.buy_and_hold_return_pct == pytest.approx(8.0, rel=1e-12)
    assert m.alpha_pct == pytest.approx(5.0 - expected_beta * 8.0, rel=1e-12)


def test_an_equity_that_tracks_the_market_has_beta_one_and_alpha_zero() -> None:
    m = stats(["100", "110", "99", "120"], market=["10", "11", "9.9", "12"])
    assert m.beta == pytest.approx(1.0, rel=1e-12)
    assert m.alpha_pct == pytest.approx(0.0, abs=1e-9)


def test_beta_is_undefined_for_a_flat_market_a_short_series_or_no_benchmark() -> None:
    assert stats(["100", "110", "120"], market=["5", "5", "5"]).beta is None
    assert stats(["100", "110"], market=["5", "6"]).beta is None
    flat = stats(["100", "110", "120"])
    assert (flat.beta, flat.alpha_pct, flat.buy_and_hold_return_pct) == (None, None, None)
    with pytest.raises(ValueError, match="one market value per equity point"):
        beta([D(1), D(2)], [D(1)])


def test_expectancy_is_the_mean_return_net_of_commission_on_the_cost() -> None:
    # +30 on 10 x 100 = +3 %, -10 on 5 x 40 = -5 %.
    trades = [trade("30", qty="10", entry="100"), trade("-10", qty="5", entry="40")]
    assert stats(["100", "101"], trades).expectancy_pct == pytest.approx(-1.0, rel=1e-12)


def test_sqn_and_kelly() -> None:
    pnls = [30.0, -10.0, 20.0, -20.0]
    trades = [trade(str(p)) for p in pnls]
    mean = sum(pnls) / 4
    std = math.sqrt(sum((p - mean) ** 2 for p in pnls) / 3)
    m = stats(["100", "101"], trades)
    assert m.sqn == pytest.approx(2 * mean / std, rel=1e-12)
    # Win rate 0.5, average win 25, average loss 15: 0.5 - 0.5 / (25 / 15).
    assert m.kelly_criterion == pytest.approx(0.5 - 0.5 / (25 / 15), rel=1e-12)


def test_sqn_and_kelly_are_undefined_without_dispersion_or_without_losers() -> None:
    one = stats(["100", "101"], [trade("5")])
    assert (one.sqn, one.kelly_criterion) == (None, None)
    same = stats(["100", "101"], [trade("5"), trade("5")])
    assert (same.sqn, same.kelly_criterion) == (None, None)
    none = stats(["100", "101"])
    assert (none.expectancy_pct, none.max_trade_duration_days, none.avg_trade_duration_days) == (
        None,
        None,
        None,
    )


def test_trade_durations_in_days_ignore_a_daylight_saving_hour() -> None:
    # Daily closes 21:00Z in winter, 20:00Z in summer: 100 days minus an hour is 100 days.
    shortened = trade("1", held=timedelta(days=100, hours=-1))
    assert trade_duration(shortened) == timedelta(days=100)
    m = stats(["100", "101"], [shortened, trade("1", held=timedelta(days=3))])
    assert m.max_trade_duration_days == 100
    assert m.avg_trade_duration_days == 51.5


def test_intraday_trade_durations_keep_their_hours() -> None:
    held = trade("1", held=timedelta(hours=30))
    m = compute_metrics(
        [D(100), D(101)],
        [held],
        bars_total=2,
        bars_with_position=0,
        total_commission=D(0),
        total_slippage=D(0),
        bar_length=timedelta(hours=1),
    )
    assert m.max_trade_duration_days == 1.25
