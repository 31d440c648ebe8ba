"""The engine's domain objects to and from their wire shapes (PROTOCOL.md §4.3): one place,
shared by the server and the in-process runner so both speak exactly the same shapes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TypeVar

import msgspec

from application.simulation import BarsAt, SimulationResults, Tick
from domain.bars import Bar, BarSeries, fixed_text
from domain.broker import AccountView, ExecutionReport
from domain.dates import format_instant
from domain.errors import InvalidOrder, ValidationFailed
from domain.metrics import Metrics
from domain.orders import (
    OrderRequest,
    OrderSide,
    OrderSnapshot,
    OrderType,
    TimeInForce,
    check_numbers,
)
from domain.trades import ClosedTrade
from entrypoints.protocol import messages as m


def order_request(data: m.OrderData, *, bounds_checked: bool = False) -> OrderRequest:
    """Wire order → domain request; an unknown enum value, or a number outside its bound
    (`domain.money.ORDER_BOUNDS`), is INVALID_ORDER on its field. `bounds_checked`: the
    numbers were checked against the same bounds already (the SDK checks before sending)."""
    request = OrderRequest(
        order_id=data.order_id,
        symbol=data.symbol,
        side=_enum(OrderSide, data.side, "side"),
        type=_enum(OrderType, data.type, "type"),
        quantity=data.quantity,
        notional=data.notional,
        limit_price=data.limit_price,
        stop_price=data.stop_price,
        time_in_force=_enum(TimeInForce, data.time_in_force, "time_in_force"),
        stop_loss=data.stop_loss,
        take_profit=data.take_profit,
    )
    if not bounds_checked:
        check_numbers(request)
    return request


def check_batch_size(orders: Sequence[m.OrderData]) -> None:
    """At most MAX_BATCH_ORDERS orders per request, in an `order_batch` or a `tick_ack`."""
    if len(orders) > m.MAX_BATCH_ORDERS:
        raise ValidationFailed(
            "orders",
            f"An order batch holds at most {m.MAX_BATCH_ORDERS} orders",
            max=m.MAX_BATCH_ORDERS,
            count=len(orders),
        )


E = TypeVar("E", OrderSide, OrderType, TimeInForce)


_MEMBERS: dict[type, dict[str, OrderSide | OrderType | TimeInForce]] = {
    kind: {member.value: member for member in kind} for kind in (OrderSide, OrderType, TimeInForce)
}
"""Each enum's members by value: a lookup for the usual exact spelling, before the general
(stripped, lower-cased) conversion below."""


def _enum(kind: type[E], value: str, field: str) -> E:
    member = _MEMBERS[kind].get(value)
    if member is not None:
        return member  # type: ignore[return-value]
    try:
        return kind(value.strip().lower())
    except ValueError:
        raise InvalidOrder(
            field, f"{field} '{value}' is not one of {', '.join(kind)}", value=value
        ) from None


def account_data(
    session_id: str, sequence_id: int, sim_time: datetime | None, account: AccountView
) -> m.AccountData:
    return m.AccountData(
        session_id=session_id,
        sim_time=sim_time,
        sequence_id=sequence_id,
        cash=account.cash,
        equity=account.equity,
        buying_power=account.buying_power,
        realized_pnl=account.realized_pnl,
        unrealized_pnl=account.unrealized_pnl,
        total_commission=account.total_commission,
        positions=[
            m.PositionData(
                symbol=p.symbol,
                quantity=p.quantity,
                avg_price=p.avg_price,
                market_price=p.market_price,
                market_value=p.market_value,
                unrealized_pnl=p.unrealized_pnl,
            )
            for p in account.positions
        ],
        open_orders=[open_order_data(o) for o in account.open_orders],
    )


def open_order_data(o: OrderSnapshot) -> m.OpenOrderData:
    r = o.request
    return m.OpenOrderData(
        order_id=r.order_id,
        symbol=r.symbol,
        side=r.side.value,
        type=r.type.value,
        quantity=o.quantity if o.quantity is not None else r.quantity,
        notional=r.notional,
        limit_price=r.limit_price,
        stop_price=r.stop_price,
        time_in_force=r.time_in_force.value,
        stop_loss=r.stop_loss,
        take_profit=r.take_profit,
        status=o.status.value,
        filled_quantity=o.filled_quantity,
    )


def bars_json(bars: Mapping[str, Bar]) -> msgspec.Raw:
    """`{SYMBOL: {open, high, low, close, volume}}` with the exact decimals as JSON numbers."""
    return msgspec.Raw(
        b"{"
        + b",".join(
            b"".join(
                (
                    _SYMBOL.encode(symbol),
                    b':{"open":',
                    str(b.open).encode(),
                    b',"high":',
                    str(b.high).encode(),
                    b',"low":',
                    str(b.low).encode(),
                    b',"close":',
                    str(b.close).encode(),
                    b',"volume":',
                    str(b.volume).encode(),
                    b"}",
                )
            )
            for symbol, b in bars.items()
        )
        + b"}"
    )


def series_bars_json(series: Mapping[str, BarSeries], at: Mapping[str, int]) -> bytes:
    """`bars_json` of bar `at[symbol]` of each symbol's series, printed from the series'
    fixed-point columns as the decoded bars print (`fixed_text`), without decoding them."""
    parts = []
    for symbol, i in at.items():
        s = series[symbol]
        p, v = s.price_scale, s.volume_scale
        parts.append(
            f'{_symbol_json(symbol)}:{{"open":{fixed_text(s.opens[i], p)},'
            f'"high":{fixed_text(s.highs[i], p)},"low":{fixed_text(s.lows[i], p)},'
            f'"close":{fixed_text(s.closes[i], p)},"volume":{fixed_text(s.volumes[i], v)}}}'
        )
    return ("{" + ",".join(parts) + "}").encode()


def _symbol_json(symbol: str) -> str:
    text = _SYMBOLS.get(symbol)
    if text is None:
        text = _SYMBOLS[symbol] = _SYMBOL.encode(symbol).decode()
    return text


_SYMBOLS: dict[str, str] = {}
"""symbol → its JSON string (symbols are few: a catalog's)."""


def tick_bars_json(tick: Tick, series: Mapping[str, BarSeries] | None) -> msgspec.Raw:
    """`bars_json` of a tick's bars; with the simulation's `series`, a simulation's bars
    printed from their columns (`series_bars_json`), not decoded."""
    bars = tick.bars
    if series is not None and isinstance(bars, BarsAt):
        return msgspec.Raw(series_bars_json(series, bars.at))
    return bars_json(bars)


def window_tick_head(tick: Tick, series: Mapping[str, BarSeries] | None = None) -> bytes:
    """The part of a window's bar (`WindowTickOut`) that depends on the bar alone, up to its
    `equity`: `{"sequence_id":…,"sim_time":…,"bars":{…},`. A bar stepped again after a void
    says the same there, so this is made once per bar (`window_tick_json` adds the rest).
    With the simulation's `series`, a simulation's bars are printed from their columns."""
    return b"".join(
        (
            b'{"sequence_id":',
            str(tick.sequence_id).encode(),
            b',"sim_time":',
            m.encoder.encode(tick.sim_time),
            b',"bars":',
            tick_bars_json(tick, series),
            b',"equity":',
        )
    )


def window_tick_json(
    head: bytes,
    tick: Tick,
    executions: Sequence[m.ExecutionReportData],
    account: m.AccountData | None,
) -> bytes:
    """A window's bar, encoded as `m.encoder.encode(m.WindowTickOut(...))` would, byte for
    byte, from its `window_tick_head`: only the account, the reports and `is_last` are
    encoded here."""
    encode = m.encoder.encode
    return b"".join(
        (
            head,
            encode(tick.equity),
            b',"cash":',
            encode(tick.cash),
            b',"is_last":true,"executions":' if tick.is_last else b',"is_last":false,"executions":',
            encode(executions) if executions else b"[]",
            b',"account":',
            b"null" if account is None else encode(account),
            b"}",
        )
    )


def window_tick_plain(head: bytes, tick: Tick, cash: bytes | None = None) -> bytes:
    """`window_tick_json` of a bar without reports or account (most bars). `cash`: the
    JSON of `tick.cash` if made already (it is the same from one fill to the next), which
    is also the equity's when no position is held."""
    encode = m.encoder.encode
    if cash is None:
        cash = encode(tick.cash)
    equity = cash if tick.equity is tick.cash else encode(tick.equity)
    return b"".join((head, equity, b',"cash":', cash, _ENDS[tick.is_last]))


_ENDS = {
    False: b',"is_last":false,"executions":[],"account":null}',
    True: b',"is_last":true,"executions":[],"account":null}',
}


def history_json(history: Mapping[str, Sequence[Bar]]) -> msgspec.Raw:
    """`{SYMBOL: [[time, open, high, low, close, volume], …]}`, prices as JSON numbers."""
    parts = []
    for symbol, bars in history.items():
        rows = ",".join(
            f'["{format_instant(b.time)}",{b.open},{b.high},{b.low},{b.close},{b.volume}]'
            for b in bars
        )
        parts.append(f"{_SYMBOL.encode(symbol).decode()}:[{rows}]")
    return msgspec.Raw(("{" + ",".join(parts) + "}").encode())


_SYMBOL = msgspec.json.Encoder()


def report_data(session_id: str, r: ExecutionReport) -> m.ExecutionReportData:
    return m.ExecutionReportData(
        session_id=session_id,
        execution_id=r.execution_id,
        order_id=r.order_id,
        symbol=r.symbol,
        # `_value_` is the member's value as `.value` gives it, without the descriptor call
        # (four per report, on every fill).
        side=r.side._value_,
        status=r.status._value_,
        quantity=r.quantity,
        fill_quantity=r.fill_quantity,
        filled_quantity=r.filled_quantity,
        remaining_quantity=r.remaining_quantity,
        price=r.price,
        commission=r.commission,
        slippage=r.slippage,
        sim_time=r.sim_time,
        sequence_id=r.sequence_id,
        fill_reason=r.fill_reason._value_ if r.fill_reason is not None else None,
        reason=r.reason._value_ if r.reason is not None else None,
    )


def metrics_data(x: Metrics) -> m.MetricsData:
    return m.MetricsData(
        total_return_pct=x.total_return_pct,
        annual_return_pct=x.annual_return_pct,
        annual_volatility_pct=x.annual_volatility_pct,
        sharpe_ratio=x.sharpe_ratio,
        sortino_ratio=x.sortino_ratio,
        max_drawdown_pct=x.max_drawdown_pct,
        calmar_ratio=x.calmar_ratio,
        final_equity=x.final_equity,
        total_trades=x.total_trades,
        winning_trades=x.winning_trades,
        win_rate_pct=x.win_rate_pct,
        profit_factor=x.profit_factor,
        avg_trade_pct=x.avg_trade_pct,
        best_trade_pct=x.best_trade_pct,
        worst_trade_pct=x.worst_trade_pct,
        exposure_pct=x.exposure_pct,
        total_commission=x.total_commission,
        total_slippage=x.total_slippage,
        equity_peak=x.equity_peak,
        buy_and_hold_return_pct=x.buy_and_hold_return_pct,
        cagr_pct=x.cagr_pct,
        avg_drawdown_pct=x.avg_drawdown_pct,
        max_drawdown_duration_days=x.max_drawdown_duration_days,
        avg_drawdown_duration_days=x.avg_drawdown_duration_days,
        max_trade_duration_days=x.max_trade_duration_days,
        avg_trade_duration_days=x.avg_trade_duration_days,
        expectancy_pct=x.expectancy_pct,
        sqn=x.sqn,
        kelly_criterion=x.kelly_criterion,
        alpha_pct=x.alpha_pct,
        beta=x.beta,
    )


def trade_data(t: ClosedTrade) -> m.TradeData:
    return m.TradeData(
        symbol=t.symbol,
        side=t.side,
        quantity=t.quantity,
        entry_time=t.entry_time,
        entry_price=t.entry_price,
        exit_time=t.exit_time,
        exit_price=t.exit_price,
        pnl=t.pnl,
        return_pct=t.return_pct,
        commission=t.commission,
    )


def results_data(session_id: str, results: SimulationResults) -> m.SimulationResultsData:
    return m.SimulationResultsData(
        session_id=session_id,
        metrics=metrics_data(results.metrics),
        equity_curve=[(day, equity) for day, equity in results.equity_curve],
        trades=[trade_data(t) for t in results.trades],
        executions=results.executions,
    )
