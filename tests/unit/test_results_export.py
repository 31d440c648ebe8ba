"""Results taken away: the CSV files (exact, one row per trade, fill and day, every metric),
`to_pandas()` (and its clear error without pandas), `_repr_html_`, and the report's pieces
(candles merged past 5,000 bars, bars placed at their day or their open, positions left
open, `ctx.plot`)."""

from __future__ import annotations

import csv
import io
import sys
from array import array
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from entrypoints.export import csv_files, trade_days, write_csv_files
from entrypoints.protocol.messages import ExecutionReportData, MetricsData, TradeData
from entrypoints.report import open_positions, render_report
from entrypoints.report_charts import MAX_CANDLES, bar_x, candles, figure
from entrypoints.sdk import BacktestResults, Context
from entrypoints.sdk.frames import PANDAS_HINT, PandasMissingError
from entrypoints.sdk.results import PriceTrack, Rejection
from entrypoints.sdk.strategy import StrategyUsageError
from entrypoints.stats import METRIC_LABELS
from tests.fakes import METRIC_NAMES

D = Decimal
T0 = datetime(2024, 1, 2, 21, 0, tzinfo=UTC)


def metrics(**values: object) -> MetricsData:
    base: dict[str, object] = dict.fromkeys(METRIC_NAMES)
    base.update(
        final_equity=D("10250.50"),
        total_trades=2,
        winning_trades=1,
        total_commission=D("3.10"),
        total_slippage=D(0),
        sharpe_ratio=1.25,
        equity_peak=D("10400.00"),
    )
    base.update(values)
    return msgspec.convert(base, MetricsData, from_attributes=False, strict=False)


def fill(
    n: int, side: str, qty: str, price: str, when: datetime, symbol: str = "AAPL"
) -> ExecutionReportData:
    return ExecutionReportData(
        session_id="s",
        execution_id=f"e{n}",
        order_id=f"o{n}",
        symbol=symbol,
        side=side,
        status="filled",
        quantity=D(qty),
        fill_quantity=D(qty),
        filled_quantity=D(qty),
        remaining_quantity=D(0),
        price=D(price),
        commission=D("1.00"),
        slippage=D(0),
        sim_time=when,
        sequence_id=n,
        fill_reason="market_open",
    )


def trade(pnl: str, entry: datetime, held: timedelta) -> TradeData:
    return TradeData(
        symbol="AAPL",
        side="long",
        quantity=D(10),
        entry_time=entry,
        entry_price=D("100.10"),
        exit_time=entry + held,
        exit_price=D("102.20"),
        pnl=D(pnl),
        return_pct=2.0979020979,
        commission=D("2.00"),
    )


def track(n: int, start: datetime = T0, step: timedelta = timedelta(days=1)) -> PriceTrack:
    prices = PriceTrack()
    for i in range(n):
        prices.times.append(int((start + i * step).timestamp()))
        prices.opens.append(100.0 + i)
        prices.highs.append(105.0 + i)
        prices.lows.append(95.0 + i)
        prices.closes.append(101.0 + i)
        prices.volumes.append(1000.0)
    return prices


def results(**extra: object) -> BacktestResults:
    fields: dict[str, object] = {
        "session_id": "sess_test",
        "metrics": metrics(),
        "trades": [
            trade("19.00", T0, timedelta(days=100, hours=-1)),  # across a DST change
            trade("-5.00", T0 + timedelta(days=120), timedelta(days=3)),
        ],
        "equity_curve": [
            (date(2024, 1, 2), D("10000.00")),
            (date(2024, 1, 3), D("10400.00")),
            (date(2024, 1, 4), D("10250.50")),
        ],
        "executions": [
            fill(1, "buy", "10", "100.10", T0),
            fill(2, "buy", "5", "110.00", T0 + timedelta(days=1)),
            fill(3, "sell", "12", "120.00", T0 + timedelta(days=2)),
        ],
        "total_ticks": 3,
        "wall_time_ms": 5,
        "prices": {"AAPL": track(3)},
    }
    fields.update(extra)
    return BacktestResults(**fields)  # type: ignore[arg-type]


def table(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_every_metric_has_a_label_and_nothing_else_does() -> None:
    assert set(METRIC_LABELS) == set(METRIC_NAMES) == set(MetricsData.__struct_fields__)


def test_the_csv_files_are_exact() -> None:
    files = csv_files(results())
    trades = table(files["trades.csv"])
    assert [r["pnl"] for r in trades] == ["19.00", "-5.00"]
    assert trades[0]["entry_time"] == "2024-01-02T21:00:00Z"
    assert trades[0]["entry_price"] == "100.10"
    assert [float(r["duration_days"]) for r in trades] == [100.0, 3.0]
    equity = table(files["equity.csv"])
    assert [(r["date"], r["equity"]) for r in equity] == [
        ("2024-01-02", "10000.00"),
        ("2024-01-03", "10400.00"),
        ("2024-01-04", "10250.50"),
    ]
    assert float(equity[2]["drawdown_pct"]) == pytest.approx((10250.5 / 10400 - 1) * 100)
    executions = table(files["executions.csv"])
    assert [(r["side"], r["fill_quantity"], r["price"]) for r in executions] == [
        ("buy", "10", "100.10"),
        ("buy", "5", "110.00"),
        ("sell", "12", "120.00"),
    ]
    stats = {r["metric"]: r for r in table(files["stats.csv"])}
    assert list(stats) == list(METRIC_LABELS)
    assert stats["final_equity"]["value"] == "10250.50"
    assert stats["sharpe_ratio"]["value"] == "1.25"
    assert stats["cagr_pct"]["value"] == ""  # undefined: empty, never "None" or "nan"
    assert stats["cagr_pct"]["unit"] == "%"


def test_intraday_durations_keep_their_hours() -> None:
    held = trade("1", T0, timedelta(hours=30))
    assert trade_days(held, 3600) == 1.25
    assert trade_days(held) == 1.0  # to the nearest day for daily bars


def test_csv_files_replace_old_ones_whole(tmp_path: Path) -> None:
    target = tmp_path / "out"
    write_csv_files(results(), target)
    (target / "trades.csv").write_text("stale")
    written = write_csv_files(results(trades=[]), target)
    assert sorted(p.name for p in written) == sorted(p.name for p in target.iterdir())
    assert (target / "trades.csv").read_text().splitlines() == [
        "symbol,side,quantity,entry_time,entry_price,exit_time,exit_price,pnl,return_pct,"
        "commission,duration_days"
    ]


def test_to_pandas() -> None:
    frames = results().to_pandas()
    assert list(frames.trades["pnl"]) == [19.0, -5.0]
    assert str(frames.trades["entry_time"].dt.tz) == "UTC"
    assert list(frames.trades["duration_days"]) == [100.0, 3.0]
    assert list(frames.executions["fill_quantity"]) == [10.0, 5.0, 12.0]
    assert list(frames.equity.index.strftime("%Y-%m-%d")) == [
        "2024-01-02",
        "2024-01-03",
        "2024-01-04",
    ]
    assert frames.equity["drawdown_pct"].iloc[-1] == pytest.approx((10250.5 / 10400 - 1) * 100)
    assert frames.stats["final_equity"] == 10250.5
    assert frames.stats["total_trades"] == 2
    assert frames.stats["cagr_pct"] is None
    assert list(frames.stats.index) == list(METRIC_LABELS)


def test_to_pandas_without_pandas_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now fails
    with pytest.raises(PandasMissingError, match=r"pip install simutrador\[pandas\]") as caught:
        results().to_pandas()
    assert isinstance(caught.value, ImportError)
    assert PANDAS_HINT in str(caught.value)


def test_jupyter_shows_the_stats_and_the_charts() -> None:
    shown = results()._repr_html_()
    assert "<html" not in shown  # a fragment, for a notebook cell
    assert "<th>Sharpe ratio</th>" in shown
    assert "Plotly.newPlot" in shown


def test_long_series_are_merged_into_at_most_5000_candles() -> None:
    bars = track(12_001)
    merged = candles(bars)
    assert merged.per_candle == 3
    assert len(merged.times) == 4_001 <= MAX_CANDLES
    assert merged.opens[1] == bars.opens[3]
    assert merged.highs[1] == max(bars.highs[3:6])
    assert merged.lows[1] == min(bars.lows[3:6])
    assert merged.closes[1] == bars.closes[5]
    assert merged.volumes[1] == 3000.0
    assert merged.closes[-1] == bars.closes[-1]
    assert candles(track(MAX_CANDLES)).per_candle == 1


def test_the_report_of_a_long_run_stays_light() -> None:
    long = results(prices={"AAPL": track(20_000)})
    chart = figure(long)
    [candlesticks] = [t for t in chart.data if t.type == "candlestick"]
    assert len(candlesticks.x) <= MAX_CANDLES
    assert "each candle: 4 bars" in render_report(long)


def test_bars_sit_at_their_trading_day_or_their_open() -> None:
    stock = int(datetime(2024, 7, 5, 20, 0, tzinfo=UTC).timestamp())  # 16:00 New York
    crypto = int(datetime(2024, 7, 6, 0, 0, tzinfo=UTC).timestamp())  # the bar of the 5th
    assert bar_x(stock, 86_400) == date(2024, 7, 5)
    assert bar_x(crypto, 86_400) == date(2024, 7, 5)
    hourly_close = int(datetime(2024, 7, 5, 15, 0, tzinfo=UTC).timestamp())
    assert bar_x(hourly_close, 3_600) == datetime(2024, 7, 5, 14, 0)  # its open


def test_fill_markers_are_at_the_fills_bar_and_price() -> None:
    chart = figure(results())
    [buys] = [t for t in chart.data if t.name == "Buy fill"]
    assert list(buys.x) == [date(2024, 1, 2), date(2024, 1, 3)]
    assert list(buys.y) == [100.10, 110.00]


def test_open_positions_are_what_the_fills_leave_first_in_first_out() -> None:
    found = open_positions(results().executions, {"AAPL": track(3)})
    [position] = found
    assert position.quantity == D(3)  # 10 + 5 - 12
    assert position.average_price == D("110.00")  # the 10 at 100.10 closed first
    assert position.last_close == 103.0
    page = render_report(results())
    assert "1 position still open at the end" in page


def test_the_report_says_synthetic_in_plain_words_and_lists_refusals() -> None:
    page = render_report(
        results(
            warnings=("AAPL runs on synthetic data (a seeded random walk, not market prices)",),
            rejections=[Rejection("o9", "INVALID_ORDER", "quantity must be positive")],
        )
    )
    assert "Synthetic sample:" in page
    assert "not market prices" in page
    assert "Refused orders (1)" in page
    assert "INVALID_ORDER" in page


def test_ctx_plot_records_one_value_per_bar() -> None:
    ctx = Context(("AAPL", "MSFT"))
    with pytest.raises(StrategyUsageError, match="no current bar"):
        ctx.plot("sma", 1)
    for day in range(3):
        ctx._mark(T0 + timedelta(days=day), D(0), D(0))
        ctx.plot("sma", D(day) + D("0.5"))
        ctx.plot("sma", D(day) + D("0.25"))  # twice on one bar: the last wins
        ctx.plot("gap", None, "MSFT")
    series = ctx._plots["sma"]
    assert series.symbol == "AAPL"
    assert list(series.values) == [0.25, 1.25, 2.25]
    assert list(series.times) == [int((T0 + timedelta(days=d)).timestamp()) for d in range(3)]
    assert ctx._plots["gap"].symbol == "MSFT"
    with pytest.raises(StrategyUsageError, match="over AAPL"):
        ctx.plot("sma", 1, "MSFT")
    with pytest.raises(StrategyUsageError, match="not a symbol"):
        ctx.plot("x", 1, "TSLA")
    with pytest.raises(StrategyUsageError, match="not a number"):
        ctx.plot("x", "abc")


def test_the_report_overlays_any_named_series_on_its_symbol() -> None:
    from entrypoints.sdk.plots import PlotSeries

    extra = PlotSeries("AAPL", array("q", list(track(3).times)), array("d", [1.0, 2.0, 3.0]))
    chart = figure(results(), {"ema 5": extra})
    [line] = [t for t in chart.data if t.name == "ema 5"]
    assert list(line.y) == [1.0, 2.0, 3.0]
