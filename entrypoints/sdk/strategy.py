"""The strategy API: subclass `Strategy`, override any of its hooks, and place orders through
the `Context` it is given. The same strategy runs in process or against a server."""

from __future__ import annotations

import itertools
import math
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from domain.bars import Bar as Bar  # the one pure value the SDK shares with the engine
from domain.errors import InvalidOrder
from domain.money import MONEY_CONTEXT, ORDER_BOUNDS, budget, check_bound
from entrypoints.protocol.messages import ExecutionReportData, OrderData
from entrypoints.sdk.errors import SimuTradorError
from entrypoints.sdk.indicators import (
    INPUT_FIELDS,
    Indicator,
    IndicatorError,
    IndicatorFunction,
    IndicatorTrack,
    _Source,
    default_name,
    fields_of,
)
from entrypoints.sdk.plots import PlotSeries
from entrypoints.sdk.results import BacktestResults

Number = Decimal | int | str | float
BAR_FIELDS = ("open", "high", "low", "close", "volume")
DEFAULT_HISTORY_SIZE = 5_000
_NONE_PENDING: tuple[Sequence[OrderData], Sequence[str]] = ((), ())
_FIELD_INDEX = {name: i for i, name in enumerate(BAR_FIELDS)}


class StrategyUsageError(SimuTradorError):
    """A strategy asked the context for something it cannot do (bad argument, unknown
    symbol, more history than kept)."""

    code = "STRATEGY_USAGE"


class Strategy:
    """Override what you need; every hook is optional.

    - `on_start(ctx)`: once, before the first bar (warm-up history is already there).
    - `on_bar(ctx, bars)`: each tick; `bars` maps symbol → `Bar` for the symbols that have
      a bar at this time. Orders placed here are live from the next bar.
    - `on_fill(ctx, report)`: every execution report, before the `on_bar` of the tick whose
      bar produced it: fills, and orders ending otherwise (`report.status` says which).
    - `on_reject(ctx, order_id, code, message)`: an order the engine refused outright.
    - `on_finish(ctx, results)`: once, with the final results.
    """

    def on_start(self, ctx: Context) -> None:
        """Called once before the first bar."""

    def on_bar(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        """Called on every tick."""

    def on_fill(self, ctx: Context, report: ExecutionReportData) -> None:
        """Called for every execution report."""

    def on_reject(self, ctx: Context, order_id: str, code: str, message: str) -> None:
        """Called when an order is refused (`INVALID_ORDER`, `DUPLICATE_ORDER_ID`, …)."""

    def on_finish(self, ctx: Context, results: BacktestResults) -> None:
        """Called once at the end."""


def _decimal(name: str, value: Number | None) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    try:
        # repr of a float is its shortest exact round-trip text: 0.1 stays 0.1.
        return Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except InvalidOperation:
        raise StrategyUsageError(f"{name}={value!r} is not a number") from None


def _budget(notional: Decimal | None) -> Decimal | None:
    """A notional is a budget: the SDK cuts it down to 8 places (`ctx.cash / 3` is fine)."""
    return None if notional is None else budget(notional)


def _out_of_bounds(order: OrderData) -> InvalidOrder | None:
    """The first number of `order` outside its bound (`domain.money.ORDER_BOUNDS`, the one
    definition the server checks too), or None."""
    for name, bound in ORDER_BOUNDS.items():
        value = getattr(order, name)
        if value is None:
            continue
        try:
            check_bound(name, value, bound)
        except InvalidOrder as exc:
            return exc
    return None


class Context:
    """What a strategy sees and does: positions (from its fills), cash and equity (as of
    the current bar), bar history, and orders sent with the next acknowledgement."""

    def __init__(
        self,
        symbols: tuple[str, ...],
        params: Mapping[str, Any] | None = None,
        history_size: int = DEFAULT_HISTORY_SIZE,
    ) -> None:
        self.symbols = symbols
        self.params: dict[str, Any] = dict(params or {})
        self.session_id = ""
        self._history_size = history_size
        # One list per field and symbol: `history` is then a slice, not a walk over bars.
        self._history: dict[str, tuple[list[Decimal], ...]] = {
            s: tuple([] for _ in BAR_FIELDS) for s in symbols
        }
        self._positions: dict[str, Decimal] = {}
        self._cash = Decimal(0)
        self._equity = Decimal(0)
        self._time: datetime | None = None
        self._counts: dict[str, int] = dict.fromkeys(symbols, 0)
        """Bars of each symbol received so far (warm-up bars included)."""
        self._warmup: Mapping[str, Sequence[Bar]] = {}
        self._inputs: dict[str, dict[str, array[float]]] = {}
        """Per symbol with an indicator, its bars so far as floats, per field."""
        self._indicators: list[Indicator] = []
        self._peek: Callable[[], Iterable[tuple[int, Mapping[str, Bar]]]] | None = None
        """The bars received and not shown yet (a window's), with their sequence ids: what
        client-side indicators are computed over ahead (set by the strategy loop)."""
        self._held_through = 0
        """The last sequence id whose bars `_inputs` holds ahead of the current one."""
        self._declaring = True
        """Indicators are declared in `on_start`, before the first bar."""
        self._pending: list[OrderData] = []
        self._refused: dict[str, tuple[str, str]] = {}
        self._cancels: list[str] = []
        self._ids = itertools.count(1)
        self._plots: dict[str, PlotSeries] = {}
        self._plotted_at: datetime | None = None
        self._plotted_epoch = 0

    # ------------------------------------------------------------------ what it sees

    @property
    def cash(self) -> Decimal:
        """Cash in the account now, exact."""
        return self._cash

    @property
    def equity(self) -> Decimal:
        """Cash plus the positions marked to the current bar's close, exact."""
        return self._equity

    @property
    def time(self) -> datetime | None:
        """The close of the current bar (None before the first)."""
        return self._time

    def position(self, symbol: str) -> Decimal:
        """Signed quantity held (0 when flat)."""
        self._bars_of(symbol)  # a symbol of this simulation, or a usage error
        return self._positions.get(symbol, Decimal(0))

    def history(self, symbol: str, n: int, field: str = "close") -> list[Decimal]:
        """The last `n` values of `field` up to and including the current bar (warm-up bars
        included); fewer at the start of the data."""
        column: list[Decimal] | None
        try:  # the common case first: a known symbol and field, within what is kept
            column = self._history[symbol][_FIELD_INDEX[field]]
        except KeyError:
            column = None
        if column is None or n > self._history_size:
            column = self._check_history(symbol, n, field)  # (or the usage error)
        return column[-n:] if n > 0 else []

    def _check_history(self, symbol: str, n: int, field: str) -> list[Decimal]:
        columns = self._bars_of(symbol)
        try:
            column = columns[_FIELD_INDEX[field]]
        except KeyError:
            raise StrategyUsageError(f"field must be one of {', '.join(BAR_FIELDS)}") from None
        if n > self._history_size:
            raise StrategyUsageError(
                f"history keeps the last {self._history_size} bars; pass a larger "
                "history_size to run_backtest to look further back"
            )
        return column

    def indicator(
        self,
        function: IndicatorFunction,
        *args: Any,
        name: str | None = None,
        symbol: str | None = None,
        **kwargs: Any,
    ) -> Indicator:
        """Declare, in `on_start`, a series computed by `function` over the bars: each
        argument naming a field (open, high, low, close, volume) is passed as that column,
        a NumPy array of floats, warm-up bars first; the others as they are. The function
        gives one value per bar (an array, a list, a pandas Series). Read it in `on_bar`:
        `ind[-1]` now, `ind[-2]` a bar before; a later bar cannot be indexed.

        `symbol` is needed when the simulation has several; `name` (default like
        "sma(close, 10)") labels it in the results (`results.indicators`). A function that
        looks ahead is refused (`LookAheadError`)."""
        if not self._declaring:
            raise IndicatorError("declare indicators in on_start, before the first bar")
        if symbol is None:
            if len(self.symbols) != 1:
                raise IndicatorError(
                    f"this simulation has several symbols ({', '.join(self.symbols)}): "
                    "pass symbol= to indicator()"
                )
            symbol = self.symbols[0]
        self._bars_of(symbol)
        if not fields_of(args, kwargs):
            raise IndicatorError(
                f"name at least one bar field ({', '.join(INPUT_FIELDS)}) among the "
                "arguments of indicator(): it is passed as that column"
            )
        label = name or default_name(function, args)
        taken = {i.name for i in self._indicators}
        if label in taken:
            if name is not None:
                raise IndicatorError(f"an indicator is already named {name!r}")
            copies = (f"{label}#{k}" for k in range(2, len(taken) + 3))
            label = next(c for c in copies if c not in taken)
        made = self._make_indicator(label, symbol, function, args, kwargs)
        self._indicators.append(made)
        return made

    def _make_indicator(
        self,
        name: str,
        symbol: str,
        function: IndicatorFunction,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
    ) -> Indicator:
        """Client side: computed over the bars received so far (those of the window in
        flight included) when read past the bars it was last computed over."""
        columns = self._inputs.get(symbol)
        if columns is None:
            warm = self._warmup.get(symbol, ())
            columns = self._inputs[symbol] = {
                f: array("d", [float(getattr(bar, f)) for bar in warm]) for f in BAR_FIELDS
            }
        source = _Source(name, function, args, kwargs, columns, self._hold)
        return Indicator(name, symbol, self._counts, array("d"), source)

    def _hold(self) -> None:
        """Take the bars received ahead of the current one into the indicators' inputs
        (each once: a window after a decision holds again bars already taken)."""
        if self._peek is None:
            return
        for sequence_id, bars in self._peek():
            if sequence_id <= self._held_through:
                continue
            self._held_through = sequence_id
            for symbol, bar in bars.items():
                columns = self._inputs.get(symbol)
                if columns is not None:
                    for f in BAR_FIELDS:
                        columns[f].append(float(getattr(bar, f)))

    def _indicator_tracks(self, tradable: Mapping[str, array[int]]) -> dict[str, IndicatorTrack]:
        """Each indicator's values on the bars traded (`tradable`: their close times)."""
        tracks = {}
        for made in self._indicators:
            times = tradable.get(made.symbol, array("q"))
            tracks[made.name] = IndicatorTrack(made.symbol, times, made.last(len(times)))
        return tracks

    # ------------------------------------------------------------------ what it does

    def buy(
        self,
        symbol: str,
        quantity: Number | None = None,
        notional: Number | None = None,
        type: str = "market",
        limit_price: Number | None = None,
        stop_price: Number | None = None,
        time_in_force: str = "gtc",
        stop_loss: Number | None = None,
        take_profit: Number | None = None,
    ) -> str:
        """Send a buy with the next acknowledgement; returns its order id."""
        return self._order(
            "buy",
            symbol,
            quantity,
            notional,
            type,
            limit_price,
            stop_price,
            time_in_force,
            stop_loss,
            take_profit,
        )

    def sell(
        self,
        symbol: str,
        quantity: Number | None = None,
        notional: Number | None = None,
        type: str = "market",
        limit_price: Number | None = None,
        stop_price: Number | None = None,
        time_in_force: str = "gtc",
        stop_loss: Number | None = None,
        take_profit: Number | None = None,
    ) -> str:
        """Send a sell with the next acknowledgement; returns its order id."""
        return self._order(
            "sell",
            symbol,
            quantity,
            notional,
            type,
            limit_price,
            stop_price,
            time_in_force,
            stop_loss,
            take_profit,
        )

    def close(self, symbol: str) -> str | None:
        """Flatten the position at the next open (a market order); None when already flat."""
        held = self.position(symbol)
        if not held:
            return None
        side = "sell" if held > 0 else "buy"
        return self._order(side, symbol, abs(held), None, "market", None, None, "gtc", None, None)

    def cancel(self, order_id: str) -> None:
        """Cancel an open order (as of the next acknowledgement)."""
        self._cancels.append(order_id)

    def plot(self, name: str, value: Number | None, symbol: str | None = None) -> None:
        """Draw `value` at the current bar on the line `name`, over `symbol`'s price in the
        report (default: the first symbol). Call it on every bar you want a point; None
        leaves a gap."""
        series = self._plots.get(name)
        if series is None or (symbol is not None and symbol != series.symbol):
            series = self._new_plot(name, symbol)
        when = self.time
        if when is None:
            raise StrategyUsageError("plot from on_bar: there is no current bar yet")
        if when != self._plotted_at:  # one conversion a bar, however many lines
            self._plotted_at, self._plotted_epoch = when, int(when.timestamp())
        try:
            number = math.nan if value is None else float(value)
        except (TypeError, ValueError):
            raise StrategyUsageError(f"plot {name!r}: {value!r} is not a number") from None
        series.add(self._plotted_epoch, number)

    def _new_plot(self, name: str, symbol: str | None) -> PlotSeries:
        if not isinstance(name, str) or not name.strip():
            raise StrategyUsageError(f"a plot needs a name, not {name!r}")
        target = self.symbols[0] if symbol is None else symbol
        self._bars_of(target)
        series = self._plots.setdefault(name, PlotSeries(target))
        if series.symbol != target:
            raise StrategyUsageError(f"plot {name!r} is drawn over {series.symbol}, not {target}")
        return series

    # ------------------------------------------------------------------ runner side

    def _order(
        self,
        side: str,
        symbol: str,
        quantity: Number | None,
        notional: Number | None,
        type: str,
        limit_price: Number | None,
        stop_price: Number | None,
        time_in_force: str,
        stop_loss: Number | None,
        take_profit: Number | None,
    ) -> str:
        self._bars_of(symbol)
        order_id = f"o{next(self._ids)}"
        order = OrderData(
            order_id=order_id,
            symbol=symbol,
            side=side,
            type=type,
            quantity=_decimal("quantity", quantity),
            notional=_budget(_decimal("notional", notional)),
            limit_price=_decimal("limit_price", limit_price),
            stop_price=_decimal("stop_price", stop_price),
            time_in_force=time_in_force,
            stop_loss=_decimal("stop_loss", stop_loss),
            take_profit=_decimal("take_profit", take_profit),
        )
        # Refused here exactly as the server would (INVALID_ORDER through on_reject),
        # without sending it: a number out of bounds can never be accepted.
        refusal = _out_of_bounds(order)
        if refusal is None:
            self._pending.append(order)
        else:
            self._refused[order_id] = (refusal.code, refusal.message)
        return order_id

    def _bars_of(self, symbol: str) -> tuple[list[Decimal], ...]:
        bars = self._history.get(symbol)
        if bars is None:
            raise StrategyUsageError(
                f"{symbol!r} is not a symbol of this simulation ({', '.join(self.symbols)})"
            )
        return bars

    def _take_refused(self) -> dict[str, tuple[str, str]]:
        """Orders refused before sending: order id → (code, message), for on_reject."""
        refused, self._refused = self._refused, {}
        return refused

    def _take_orders(self) -> tuple[Sequence[OrderData], Sequence[str]]:
        if not self._pending and not self._cancels:
            return _NONE_PENDING
        orders, cancels = self._pending, self._cancels
        self._pending, self._cancels = [], []
        return orders, cancels

    def _add_bars(self, bars: Mapping[str, Bar]) -> None:
        """The bars of the next tick (once per bar of a run: kept lean)."""
        counts, history, limit = self._counts, self._history, self._history_size
        for symbol, bar in bars.items():
            count = counts[symbol] = counts[symbol] + 1
            if self._inputs:  # indicators declared: their inputs as floats
                self._add_input(symbol, bar, count)
            columns = history[symbol]
            opens, highs, lows, closes, volumes = columns
            _, open_, high, low, close, volume = bar
            opens.append(open_)
            highs.append(high)
            lows.append(low)
            closes.append(close)
            volumes.append(volume)
            if len(closes) > 2 * limit:  # trim in batches: amortised O(1) per bar
                for column in columns:
                    del column[:-limit]

    def _add_input(self, symbol: str, bar: Bar, count: int) -> None:
        columns = self._inputs.get(symbol)
        if columns is not None and len(columns["close"]) < count:  # (not held ahead)
            for f in BAR_FIELDS:
                columns[f].append(float(getattr(bar, f)))

    def _add_bars_history(self, history: Mapping[str, Sequence[Bar]]) -> None:
        self._warmup = history
        for symbol, bars in history.items():
            columns = self._bars_of(symbol)
            self._counts[symbol] += len(bars)
            kept = bars[-self._history_size :]
            opens, highs, lows, closes, volumes = columns
            opens.extend(bar.open for bar in kept)
            highs.extend(bar.high for bar in kept)
            lows.extend(bar.low for bar in kept)
            closes.extend(bar.close for bar in kept)
            volumes.extend(bar.volume for bar in kept)

    def _apply_report(self, report: ExecutionReportData) -> None:
        if report.fill_quantity:
            signed = report.fill_quantity if report.side == "buy" else -report.fill_quantity
            # In the engine's context: a position may outgrow the caller's 28 digits.
            held = MONEY_CONTEXT.add(self._positions.get(report.symbol, Decimal(0)), signed)
            if held:
                self._positions[report.symbol] = held
            else:
                self._positions.pop(report.symbol, None)

    def _mark(self, time: datetime, cash: Decimal, equity: Decimal) -> None:
        self._time, self._cash, self._equity = time, cash, equity
