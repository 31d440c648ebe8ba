"""§4.6 metrics on small hand-computed cases, every undefined case, and never a NaN."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

import msgspec
import pytest

from domain.metrics import Metrics, compute_metrics, daily_returns
from domain.trades import ClosedTrade
from tests.fakes import METRIC_NAMES

T0 = datetime(2024, 1, 2, 21, 0, tzinfo=UTC)
SQRT_252 = math.sqrt(252)

METRIC_FIELDS = list(METRIC_NAMES)


def equity(*values: str | int) -> list[Decimal]:
    return [Decimal(v) for v in values]


def trade(pnl: str, return_pct: float) -> ClosedTrade:
    return ClosedTrade(
        symbol="AAPL",
        side="long",
        quantity=Decimal(1),
        entry_time=T0,
        entry_price=Decimal(100),
        exit_time=T0,
        exit_price=Decimal(100),
        pnl=Decimal(pnl),
        return_pct=return_pct,
        commission=Decimal(0),
    )


def metrics_of(
    daily_equity: Sequence[Decimal],
    trades: Sequence[ClosedTrade] = (),
    *,
    bars_total: int = 10,
    bars_with_position: int = 0,
) -> Metrics:
    return compute_metrics(
        daily_equity,
        trades,
        bars_total=bars_total,
        bars_with_position=bars_with_position,
        total_commission=Decimal("12.34"),
        total_slippage=Decimal("5.67"),
    )


def assert_no_nan_or_inf(metrics: Metrics) -> None:
    for f in dataclasses.fields(metrics):
        value = getattr(metrics, f.name)
        if isinstance(value, float):
            assert math.isfinite(value), f"{f.name} = {value}"


def test_the_fields_are_exactly_those_of_the_protocol() -> None:
    assert [f.name for f in dataclasses.fields(Metrics)] == METRIC_FIELDS


def test_a_hand_computed_series() -> None:
    # r = [+10 %, -10 %]: mean 0, sample std 0.1·√2, downside √(0.01 / 2).
    m = metrics_of(equity("100", "110", "99"))
    assert m.total_return_pct == pytest.approx(-1.0, rel=1e-15)
    assert m.annual_return_pct == pytest.approx((0.99**126 - 1) * 100, rel=1e-12)
    assert m.annual_volatility_pct == pytest.approx(0.1 * math.sqrt(2) * SQRT_252 * 100, rel=1e-12)
    assert m.sharpe_ratio == 0.0
    assert m.sortino_ratio == 0.0
    assert m.max_drawdown_pct == pytest.approx(-10.0, rel=1e-15)
    assert m.calmar_ratio == pytest.approx((0.99**126 - 1) / 0.1, rel=1e-12)
    assert m.final_equity == Decimal("99")
    assert_no_nan_or_inf(m)


def test_a_second_hand_computed_series() -> None:
    # r = [+10 %, -10 %, +20 %]; peak 110, trough 99.
    m = metrics_of(equity("100", "110", "99", "118.8"))
    mean = 0.2 / 3
    std = math.sqrt(((0.1 - mean) ** 2 + (-0.1 - mean) ** 2 + (0.2 - mean) ** 2) / 2)
    downside = math.sqrt(0.01 / 3)
    annual = 1.188**84 - 1
    assert m.total_return_pct == pytest.approx(18.8, rel=1e-14)
    assert m.annual_return_pct == pytest.approx(annual * 100, rel=1e-12)
    assert m.annual_volatility_pct == pytest.approx(std * SQRT_252 * 100, rel=1e-12)
    assert m.sharpe_ratio == pytest.approx(mean / std * SQRT_252, rel=1e-12)
    assert m.sortino_ratio == pytest.approx(mean / downside * SQRT_252, rel=1e-12)
    assert m.max_drawdown_pct == pytest.approx(-10.0, rel=1e-15)
    assert m.calmar_ratio == pytest.approx(annual / 0.1, rel=1e-12)


def test_the_drawdown_is_measured_from_the_running_peak() -> None:
    m = metrics_of(equity("100", "120", "90", "150", "135", "160"))
    assert m.max_drawdown_pct == pytest.approx(-25.0, rel=1e-15)  # 120 -> 90


def test_trade_statistics() -> None:
    trades = [trade("10", 5.0), trade("-5", -2.5), trade("20", 8.0), trade("0", 0.0)]
    m = metrics_of(equity("1000", "1025"), trades, bars_total=40, bars_with_position=10)
    assert (m.total_trades, m.winning_trades) == (4, 2)  # a zero pnl is not a win
    assert m.win_rate_pct == 50.0
    assert m.profit_factor == 6.0  # 30 / 5
    assert m.avg_trade_pct == pytest.approx(2.625, rel=1e-15)
    assert (m.best_trade_pct, m.worst_trade_pct) == (8.0, -2.5)
    assert m.exposure_pct == 25.0
    assert (m.total_commission, m.total_slippage) == (Decimal("12.34"), Decimal("5.67"))


def test_no_trades_leaves_the_trade_ratios_undefined() -> None:
    m = metrics_of(equity("1000", "1010", "1005"))
    assert (m.total_trades, m.winning_trades) == (0, 0)
    assert m.win_rate_pct is None
    assert m.profit_factor is None
    assert m.avg_trade_pct is None
    assert m.best_trade_pct is None
    assert m.worst_trade_pct is None


def test_profit_factor_without_losses_is_undefined_and_without_profits_zero() -> None:
    assert metrics_of(equity("1", "1"), [trade("3", 1.0), trade("0", 0.0)]).profit_factor is None
    losers = metrics_of(equity("1", "1"), [trade("-3", -1.0), trade("-1", -0.5)])
    assert losers.profit_factor == 0.0
    assert losers.win_rate_pct == 0.0


def test_a_single_equity_point_defines_no_return_metric() -> None:
    m = metrics_of(equity("1000"))
    assert m.total_return_pct is None
    assert m.annual_return_pct is None
    assert m.annual_volatility_pct is None
    assert m.sharpe_ratio is None
    assert m.sortino_ratio is None
    assert m.max_drawdown_pct is None
    assert m.calmar_ratio is None
    assert m.final_equity == Decimal("1000")


def test_a_single_return_has_no_dispersion_metrics() -> None:
    m = metrics_of(equity("1000", "1010"))
    assert m.total_return_pct == pytest.approx(1.0, rel=1e-15)
    assert m.annual_return_pct == pytest.approx((1.01**252 - 1) * 100, rel=1e-12)
    assert m.max_drawdown_pct == 0.0
    assert m.annual_volatility_pct is None
    assert m.sharpe_ratio is None
    assert m.sortino_ratio is None
    assert m.calmar_ratio is None  # no drawdown


def test_a_flat_series() -> None:
    m = metrics_of(equity("1000", "1000", "1000", "1000"))
    assert m.total_return_pct == 0.0
    assert m.annual_return_pct == 0.0
    assert m.annual_volatility_pct == 0.0
    assert m.sharpe_ratio is None  # zero std
    assert m.sortino_ratio is None  # no downside
    assert m.max_drawdown_pct == 0.0
    assert m.calmar_ratio is None


def test_constant_returns_have_zero_std_and_no_sharpe() -> None:
    m = metrics_of(equity("100", "110", "121", "133.1"))
    assert m.annual_volatility_pct == 0.0
    assert m.sharpe_ratio is None
    assert m.sortino_ratio is None


def test_steady_gains_have_no_sortino_and_no_calmar() -> None:
    m = metrics_of(equity("100", "101", "103", "104"))
    assert m.sharpe_ratio is not None
    assert m.sharpe_ratio > 0
    assert m.sortino_ratio is None
    assert m.max_drawdown_pct == 0.0
    assert m.calmar_ratio is None


def test_steady_losses_have_a_negative_sortino() -> None:
    m = metrics_of(equity("100", "99", "97", "96"))
    assert m.sortino_ratio is not None
    assert m.sortino_ratio < 0


def test_an_annual_return_too_large_for_a_float_is_undefined() -> None:
    m = metrics_of(equity("1000", "100000"))
    assert m.total_return_pct == pytest.approx(9900.0)
    assert m.annual_return_pct is None
    assert m.calmar_ratio is None


def test_equity_wiped_out_and_below_zero() -> None:
    wiped = metrics_of(equity("100", "0"))
    assert wiped.total_return_pct == -100.0
    assert wiped.annual_return_pct == -100.0
    assert wiped.max_drawdown_pct == -100.0
    assert wiped.calmar_ratio == -1.0

    after_zero = metrics_of(equity("100", "0", "0"))
    assert after_zero.annual_volatility_pct is None
    assert after_zero.sharpe_ratio is None
    assert after_zero.sortino_ratio is None

    negative = metrics_of(equity("100", "50", "-50"))
    assert negative.total_return_pct == -150.0
    assert negative.annual_return_pct is None  # no real root of a negative growth
    assert negative.calmar_ratio is None
    assert negative.max_drawdown_pct == -150.0
    assert_no_nan_or_inf(negative)


def test_exposure_without_bars_is_undefined() -> None:
    assert metrics_of(equity("1"), bars_total=0).exposure_pct is None
    assert metrics_of(equity("1"), bars_total=3, bars_with_position=3).exposure_pct == 100.0


@pytest.mark.parametrize(
    ("daily_equity", "bars_total", "bars_with_position", "match"),
    [
        ([], 1, 0, "empty"),
        (equity("0", "1"), 1, 0, "initial capital"),
        (equity("-1", "1"), 1, 0, "initial capital"),
        (equity("1"), 1, 2, "bars_with_position"),
        (equity("1"), 1, -1, "bars_with_position"),
        (equity("1"), -1, 0, "bars_with_position"),
    ],
)
def test_invalid_inputs_are_refused(
    daily_equity: list[Decimal], bars_total: int, bars_with_position: int, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        metrics_of(daily_equity, bars_total=bars_total, bars_with_position=bars_with_position)


def test_daily_returns_are_exact_then_rounded_once() -> None:
    assert daily_returns(equity("100", "110", "99")) == [0.1, -0.1]
    assert daily_returns(equity("3", "1")) == [-2 / 3]
    assert daily_returns(equity("5")) == []
    with pytest.raises(ValueError, match="zero"):
        daily_returns(equity("1", "0", "1"))


def test_never_nan_or_inf_on_random_series() -> None:
    rng = random.Random(4_6)
    for _ in range(500):
        length = rng.randint(1, 40)
        values = [Decimal(rng.choice([1000, 1000, rng.randint(1, 10**7)])) / 100]
        for _ in range(length - 1):
            kind = rng.random()
            if kind < 0.3:
                values.append(values[-1])
            elif kind < 0.35:
                values.append(Decimal(rng.randint(-1000, 0)) / 100)
            else:
                values.append(Decimal(rng.randint(1, 10**9)) / 100)
        trades = [
            trade(str(Decimal(rng.randint(-500, 500)) / 10), rng.uniform(-50, 50))
            for _ in range(rng.randint(0, 5))
        ]
        bars_total = rng.randint(0, 100)
        m = metrics_of(values, trades, bars_total=bars_total, bars_with_position=bars_total // 2)
        assert_no_nan_or_inf(m)


def test_metrics_encode_for_the_wire_with_decimal_strings_and_nulls() -> None:
    m = metrics_of(equity("1000.00", "1000.00"))
    wire = msgspec.json.decode(msgspec.json.encode(m))
    assert list(wire) == METRIC_FIELDS
    assert wire["final_equity"] == "1000.00"
    assert wire["total_commission"] == "12.34"
    assert wire["sharpe_ratio"] is None
    assert wire["total_return_pct"] == 0.0
