"""Buy and hold: spend all cash on the first bar (split evenly across the symbols) and keep
the positions to the end. The baseline every other strategy should beat.

    python examples/buy_and_hold.py [SYMBOL ...]
    simutrador run examples/buy_and_hold.py --symbols AAPL,MSFT --start 2015-01-01 \\
        --end 2024-12-31 --capital 10000
"""

from __future__ import annotations

import sys
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


def _shown(value: float | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:,.2f}{unit}"


if __name__ == "__main__":
    symbols = sys.argv[1:] or ["AAPL", "MSFT"]  # python examples/buy_and_hold.py [SYMBOL ...]
    results = run_backtest(BuyAndHold, symbols, "2015-01-01", "2024-12-31", 10_000)
    m = results.metrics
    print(f"BuyAndHold on {', '.join(symbols)}")
    print(f"final equity {m.final_equity:,.2f}  total return {_shown(m.total_return_pct, ' %')}")
    print(
        f"annual return {_shown(m.annual_return_pct, ' %')}  "
        f"max drawdown {_shown(m.max_drawdown_pct, ' %')}"
    )
