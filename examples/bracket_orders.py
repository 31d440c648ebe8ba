"""Breakout with a bracket: when a close tops the highest high of the previous `lookback`
bars, buy with all cash, protected by a stop-loss `stop_pct` below and a take-profit
`target_pct` above that close. The exits are OCO: whichever fills cancels the other.

    python examples/bracket_orders.py [SYMBOL ...]
    simutrador run examples/bracket_orders.py --symbols AAPL --start 2015-01-01 \\
        --end 2024-12-31 --capital 10000 --param stop_pct=0.05 --param target_pct=0.10
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from decimal import Decimal

from entrypoints.protocol.messages import ExecutionReportData
from entrypoints.sdk import Bar, Context, Strategy, run_backtest

CENT = Decimal("0.01")


class Breakout(Strategy):
    """Params: `lookback` (20), `stop_pct` (0.05), `target_pct` (0.10)."""

    def on_start(self, ctx: Context) -> None:
        self.exits: dict[str, str] = {}

    def on_bar(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        lookback = int(ctx.params.get("lookback", 20))
        stop = Decimal(str(ctx.params.get("stop_pct", "0.05")))
        target = Decimal(str(ctx.params.get("target_pct", "0.10")))
        for symbol, bar in bars.items():
            highs = ctx.history(symbol, lookback + 1, "high")
            if len(highs) <= lookback or ctx.position(symbol) or symbol in self.exits:
                continue
            if bar.close > max(highs[:-1]):
                self.exits[symbol] = ctx.buy(
                    symbol,
                    notional=ctx.cash / len(ctx.symbols),
                    stop_loss=(bar.close * (1 - stop)).quantize(CENT),
                    take_profit=(bar.close * (1 + target)).quantize(CENT),
                )

    def on_fill(self, ctx: Context, report: ExecutionReportData) -> None:
        # Once an exit leg closes the position (or the entry dies), look for the next one.
        if report.fill_reason in ("stop_loss", "take_profit") or report.status in (
            "rejected",
            "expired",
        ):
            self.exits.pop(report.symbol, None)


if __name__ == "__main__":
    symbols = sys.argv[1:] or ["AAPL"]  # python examples/bracket_orders.py [SYMBOL ...]
    results = run_backtest(Breakout, symbols, "2015-01-01", "2024-12-31", 10_000)
    wins = sum(1 for t in results.trades if t.pnl > 0)
    print(f"Breakout on {', '.join(symbols)}: {len(results.trades)} trades, {wins} winners")
    print(f"final equity {results.metrics.final_equity:,.2f}")
    reasons = [r.fill_reason for r in results.executions if r.fill_reason]
    print("exits:", {reason: reasons.count(reason) for reason in sorted(set(reasons))})
