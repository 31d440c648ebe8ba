"""Buy and hold: spend all cash on the first bar (split evenly across the symbols) and keep
the positions to the end. The baseline every other strategy should beat.

    python examples/buy_and_hold.py
    simutrador run examples/buy_and_hold.py --symbols AAPL,MSFT --start 2015-01-01 \\
        --end 2024-12-31 --capital 10000
"""

from __future__ import annotations

from collections.abc import Mapping

from entrypoints.sdk import Bar, Context, Strategy, run_backtest


class BuyAndHold(Strategy):
    def on_bar(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        if ctx.params.get("bought"):
            return
        share = ctx.cash / len(ctx.symbols)
        for symbol in ctx.symbols:
            ctx.buy(symbol, notional=share)
        ctx.params["bought"] = True


if __name__ == "__main__":
    results = run_backtest(BuyAndHold, ["AAPL", "MSFT"], "2015-01-01", "2024-12-31", 10_000)
    m = results.metrics
    print(f"final equity {m.final_equity}  total return {m.total_return_pct:.2f} %")
    print(f"annual return {m.annual_return_pct:.2f} %  max drawdown {m.max_drawdown_pct:.2f} %")
