"""The charts of the HTML report, as one plotly figure: equity with buy and hold, its peak and
its longest drawdown marked; drawdown in %; each trade's P&L; then per symbol the candlesticks
(merged into wider candles past `MAX_CANDLES`), the strategy's plotted series over them, the
fills and each trade's entry joined to its exit (winners and losers in two colours), and the
volume."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import pairwise

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from entrypoints.export import DAY_SECONDS, bar_seconds
from entrypoints.protocol.messages import ExecutionReportData, TradeData
from entrypoints.sdk.plots import Line, PriceTrack, Reportable

MAX_CANDLES = 5_000
"""More bars than this are merged, k at a time, into candles of k bars (readable and light)."""

WIN, LOSS = "#1a9850", "#d73027"
BUY, SELL = "#2166ac", "#b2182b"

X = date | datetime


def bar_x(close: int, length: int) -> X:
    """Where a bar (given by its close, epoch seconds) sits on the time axis: its trading day
    for daily bars (every close, midnight included, falls on it in UTC a second before), its
    start (the instant of its open) for intraday ones."""
    if length >= DAY_SECONDS:
        return datetime.fromtimestamp(close - 1, UTC).date()
    return datetime.fromtimestamp(close - length, UTC).replace(tzinfo=None)


def instant_x(when: datetime, length: int) -> X:
    return bar_x(int(when.timestamp()), length)


@dataclass(frozen=True, slots=True)
class Candles:
    times: list[int]  # close of each candle's first bar: where the candle sits
    opens: list[float]
    highs: list[float]
    lows: list[float]
    closes: list[float]
    volumes: list[float]
    per_candle: int


def candles(track: PriceTrack, most: int = MAX_CANDLES) -> Candles:
    """The bars, or k consecutive bars merged per candle (first open, highest high, lowest low,
    last close, summed volume) with k the smallest that keeps at most `most` candles."""
    n = len(track.times)
    k = max(1, math.ceil(n / most))
    if k == 1:
        return Candles(
            list(track.times),
            list(track.opens),
            list(track.highs),
            list(track.lows),
            list(track.closes),
            list(track.volumes),
            1,
        )
    merged = Candles([], [], [], [], [], [], k)
    for start in range(0, n, k):
        stop = min(start + k, n)
        merged.times.append(track.times[start])
        merged.opens.append(track.opens[start])
        merged.highs.append(max(track.highs[start:stop]))
        merged.lows.append(min(track.lows[start:stop]))
        merged.closes.append(track.closes[stop - 1])
        merged.volumes.append(math.fsum(track.volumes[start:stop]))
    return merged


def thin(series: Line, most: int = MAX_CANDLES) -> tuple[list[int], list[float | None]]:
    """A plotted series with at most `most` points (the last of every k); NaN becomes a gap."""
    k = max(1, math.ceil(len(series.times) / most))
    times = list(series.times[k - 1 :: k]) if k > 1 else list(series.times)
    values = list(series.values[k - 1 :: k]) if k > 1 else list(series.values)
    if k > 1 and len(series.times) % k:
        times.append(series.times[-1])
        values.append(series.values[-1])
    return times, [None if math.isnan(v) else v for v in values]


def buy_and_hold(results: Reportable) -> list[float] | None:
    """The equal-weighted buy and hold of the symbols, worth the first equity point at the
    start, on each day of the equity curve (§7.12's B)."""
    curve = results.equity_curve
    tracks = [t for t in results.prices.values() if len(t.times)]
    if not curve or not tracks:
        return None
    length = bar_seconds(results)
    days = [day for day, _ in curve]
    ratios = [0.0] * len(days)
    for track in tracks:
        track_days = [_as_day(bar_x(t, length)) for t in track.times]
        first = track.closes[0]
        for i, day in enumerate(days):
            j = bisect_right(track_days, day) - 1
            ratios[i] += track.closes[j] / first if j >= 0 else 1.0
    start = float(curve[0][1])
    return [start * r / len(tracks) for r in ratios]


def _as_day(x: X) -> date:
    return x.date() if isinstance(x, datetime) else x


@dataclass(frozen=True, slots=True)
class Drawdown:
    pct: list[float]
    peak: int  # index of the highest equity point
    trough: int  # index of the deepest drawdown
    longest: tuple[int, int] | None  # first and last point of the longest drawdown period


def drawdown(equity: Sequence[float], days: Sequence[date]) -> Drawdown:
    pct, peaks = [], []
    top = -math.inf
    for value in equity:
        top = max(top, value)
        peaks.append(top)
        pct.append((value / top - 1) * 100 if top > 0 else 0.0)
    ends = [i for i, p in enumerate(pct) if p == 0]
    if pct and ends[-1] != len(pct) - 1:
        ends.append(len(pct) - 1)
    spans = [(a, b) for a, b in pairwise(ends) if b > a + 1]
    longest = max(spans, key=lambda s: days[s[1]] - days[s[0]]) if spans else None
    trough = min(range(len(pct)), key=pct.__getitem__) if pct else 0
    peak = max(range(len(equity)), key=equity.__getitem__) if equity else 0
    return Drawdown(pct, peak, trough, longest)


def _money(currency: str) -> str:
    return currency if currency and currency != "mixed" else "quote currency"


def figure(results: Reportable, overlays: Mapping[str, Line] | None = None) -> go.Figure:
    symbols = [s for s, track in results.prices.items() if len(track.times)]
    money = _money(results.currency)
    rows = 3 + 2 * len(symbols)
    heights = [0.24, 0.1, 0.12] + [w for _ in symbols for w in (0.42, 0.12)]
    titles = ["Equity", "Drawdown", "Trade P&L"]
    length = bar_seconds(results)
    merged = {s: candles(results.prices[s]) for s in symbols}
    for s in symbols:
        wide = merged[s].per_candle
        titles += [f"{s}" + (f" (each candle: {wide} bars)" if wide > 1 else ""), f"{s} volume"]
    fig = make_subplots(
        rows=rows,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.03 if rows <= 5 else 0.015,
        row_heights=[h / sum(heights) for h in heights],
        subplot_titles=titles,
    )
    _equity_rows(fig, results, money)
    for i, symbol in enumerate(symbols):
        row = 4 + 2 * i
        _price_row(fig, results, symbol, merged[symbol], row, length, money, overlays or {})
    time_title = "Date" if length >= DAY_SECONDS else "Time (UTC)"
    fig.update_xaxes(title_text=time_title, row=rows, col=1)
    fig.update_xaxes(rangeslider_visible=False)
    fig.update_layout(
        height=320 + 200 * rows,
        template="plotly_white",
        hovermode="x unified",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.01, "x": 0},
        margin={"t": 60},
    )
    return fig


def _equity_rows(fig: go.Figure, results: Reportable, money: str) -> None:
    days = [day for day, _ in results.equity_curve]
    equity = [float(value) for _, value in results.equity_curve]
    fig.add_trace(
        go.Scatter(x=days, y=equity, name="Equity", line={"width": 1.6, "color": "#1f4e79"}),
        1,
        1,
    )
    held = buy_and_hold(results)
    if held is not None:
        fig.add_trace(
            go.Scatter(
                x=days,
                y=held,
                name="Buy & hold (equal-weighted)",
                line={"width": 1.2, "color": "#999999", "dash": "dot"},
            ),
            1,
            1,
        )
    dd = drawdown(equity, days)
    if equity:
        fig.add_trace(
            go.Scatter(
                x=[days[dd.peak]],
                y=[equity[dd.peak]],
                mode="markers",
                name=f"Peak {equity[dd.peak]:,.2f}",
                marker={"color": "#1f78b4", "size": 10, "symbol": "star"},
            ),
            1,
            1,
        )
    if dd.pct and dd.pct[dd.trough] < 0:
        fig.add_trace(
            go.Scatter(
                x=[days[dd.trough]],
                y=[equity[dd.trough]],
                mode="markers",
                name=f"Max drawdown {dd.pct[dd.trough]:.2f} %",
                marker={"color": LOSS, "size": 10, "symbol": "x"},
            ),
            1,
            1,
        )
    if dd.longest is not None:
        first, last = dd.longest
        span = (days[last] - days[first]).days
        fig.add_trace(
            go.Scatter(
                x=[days[first], days[last]],
                y=[equity[first], equity[first]],
                mode="lines",
                name=f"Longest drawdown {span} days",
                line={"color": LOSS, "width": 3},
            ),
            1,
            1,
        )
    fig.add_trace(
        go.Scatter(
            x=days,
            y=dd.pct,
            name="Drawdown",
            fill="tozeroy",
            line={"width": 1, "color": LOSS},
            showlegend=False,
        ),
        2,
        1,
    )
    fig.update_yaxes(title_text=f"Equity ({money})", row=1, col=1)
    fig.update_yaxes(title_text="Drawdown (%)", row=2, col=1)
    _pnl_row(fig, results.trades, money, bar_seconds(results))


def _pnl_row(fig: go.Figure, trades: Sequence[TradeData], money: str, length: int) -> None:
    for won, name, colour in ((True, "Winning trade", WIN), (False, "Losing trade", LOSS)):
        chosen = [t for t in trades if (t.pnl > 0) == won]
        if not chosen:
            continue
        fig.add_trace(
            go.Scatter(
                x=[instant_x(t.exit_time, length) for t in chosen],
                y=[float(t.pnl) for t in chosen],
                mode="markers",
                name=name,
                legendgroup=name,
                marker={
                    "color": colour,
                    "size": [6 + min(abs(t.return_pct), 30) / 2 for t in chosen],
                    "symbol": "triangle-up" if won else "triangle-down",
                },
                text=[f"{t.symbol} {t.side}: {t.return_pct:+.2f} %" for t in chosen],
                hovertemplate="%{text}<br>P&L %{y:,.2f}<extra></extra>",
            ),
            3,
            1,
        )
    fig.update_yaxes(title_text=f"P&L ({money})", zeroline=True, row=3, col=1)


def _price_row(
    fig: go.Figure,
    results: Reportable,
    symbol: str,
    bars: Candles,
    row: int,
    length: int,
    money: str,
    overlays: Mapping[str, Line],
) -> None:
    xs = [bar_x(t, length) for t in bars.times]  # a merged candle sits where its first bar does
    fig.add_trace(
        go.Candlestick(
            x=xs,
            open=bars.opens,
            high=bars.highs,
            low=bars.lows,
            close=bars.closes,
            name=f"{symbol} price",
            increasing={"line": {"color": "#5a9e6f"}},
            decreasing={"line": {"color": "#c0504d"}},
        ),
        row,
        1,
    )
    every: dict[str, Line] = {**results.indicators, **results.plots, **overlays}
    for name, series in every.items():
        if series.symbol != symbol or not len(series.times):
            continue
        times, values = thin(series)
        fig.add_trace(
            go.Scatter(
                x=[bar_x(t, length) for t in times],
                y=values,
                name=name,
                mode="lines",
                line={"width": 1.3},
            ),
            row,
            1,
        )
    trades = [t for t in results.trades if t.symbol == symbol]
    _trade_lines(fig, trades, row, length)
    _fill_markers(fig, results.executions, trades, symbol, row, length)
    fig.add_trace(
        go.Bar(
            x=xs,
            y=bars.volumes,
            name=f"{symbol} volume",
            marker={"color": "#9db4c0"},
            showlegend=False,
        ),
        row + 1,
        1,
    )
    fig.update_yaxes(title_text=f"Price ({money})", row=row, col=1)
    fig.update_yaxes(title_text="Volume", row=row + 1, col=1)


def _trade_lines(fig: go.Figure, trades: Sequence[TradeData], row: int, length: int) -> None:
    for won, name, colour in ((True, "Winning trade", WIN), (False, "Losing trade", LOSS)):
        xs: list[X | None] = []
        ys: list[float | None] = []
        for t in trades:
            if (t.pnl > 0) != won:
                continue
            xs += [instant_x(t.entry_time, length), instant_x(t.exit_time, length), None]
            ys += [float(t.entry_price), float(t.exit_price), None]
        if xs:
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    mode="lines",
                    name=name,
                    legendgroup=name,
                    showlegend=False,
                    line={"color": colour, "width": 2, "dash": "dash"},
                    hoverinfo="skip",
                ),
                row,
                1,
            )


def _fill_markers(
    fig: go.Figure,
    executions: Sequence[ExecutionReportData],
    trades: Sequence[TradeData],
    symbol: str,
    row: int,
    length: int,
) -> None:
    """Each fill at its bar (orders fill at the bar's open, or at their limit or stop price
    inside it) and at its price."""
    fills: list[tuple[str, datetime, Decimal, Decimal]] = [
        (r.side, r.sim_time, r.price, r.fill_quantity)
        for r in executions
        if r.symbol == symbol and r.fill_quantity > 0 and r.sim_time and r.price is not None
    ]
    if not fills and not executions:  # results without executions: the trades' ends
        for t in trades:
            opening, closing = ("buy", "sell") if t.side == "long" else ("sell", "buy")
            fills.append((opening, t.entry_time, t.entry_price, t.quantity))
            fills.append((closing, t.exit_time, t.exit_price, t.quantity))
    for side, colour, marker in (("buy", BUY, "triangle-up"), ("sell", SELL, "triangle-down")):
        chosen = [f for f in fills if f[0] == side]
        if not chosen:
            continue
        fig.add_trace(
            go.Scatter(
                x=[instant_x(when, length) for _, when, _, _ in chosen],
                y=[float(price) for _, _, price, _ in chosen],
                mode="markers",
                name=f"{side.capitalize()} fill",
                legendgroup=f"{side} fill",
                showlegend=row == 4,
                marker={"color": colour, "size": 10, "symbol": marker, "line": {"width": 1}},
                text=[f"{side} {qty:,} @ {price:,}" for _, _, price, qty in chosen],
                hovertemplate="%{text}<extra></extra>",
            ),
            row,
            1,
        )
