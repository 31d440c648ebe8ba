"""SMA crossover, long only, with indicators: buy with all cash when the fast moving average
of closes crosses above the slow one, sell everything when it crosses back below.

The averages are declared once in `on_start` (computed over the whole run in process, over
the bars received so far against a server; the same values either way) and read in `on_bar`
through views that end at the current bar: nothing later can be read. examples/
sma_cross_pure.py does the same in pure Python with exact decimals.

    python examples/sma_cross.py [SYMBOL ...]     # in process, on the local bar store
    simutrador run examples/sma_cross.py --symbols AAPL --start 2015-01-01 \\
        --end 2024-12-31 --capital 10000 --param fast=10 --param slow=20
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from entrypoints.sdk import Bar, Context, Strategy, crossover, run_backtest, sma


class SmaCross(Strategy):
    """Params: `fast` (default 10) and `slow` (default 20) bar counts."""

    average = staticmethod(sma)
    """Any moving average over a NumPy array (e.g. pandas' rolling mean) fits here."""

    def on_start(self, ctx: Context) -> None:
        fast, slow = int(ctx.params.get("fast", 10)), int(ctx.params.get("slow", 20))
        self.fast = {
            s: ctx.indicator(self.average, "close", fast, symbol=s, name=f"{s} sma({fast})")
            for s in ctx.symbols
        }
        self.slow = {
            s: ctx.indicator(self.average, "close", slow, symbol=s, name=f"{s} sma({slow})")
            for s in ctx.symbols
        }

    def on_bar(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        for s in bars:
            if crossover(self.fast[s], self.slow[s]) and not ctx.position(s):
                ctx.buy(s, notional=ctx.cash / len(ctx.symbols))
            elif crossover(self.slow[s], self.fast[s]) and ctx.position(s):
                ctx.close(s)


def _shown(value: float | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:,.2f}{unit}"


if __name__ == "__main__":
    symbols = sys.argv[1:] or ["AAPL"]  # python examples/sma_cross.py [SYMBOL ...]
    results = run_backtest(
        SmaCross, symbols, "2015-01-01", "2024-12-31", 10_000, commission_pct="0.001"
    )
    m = results.metrics
    print(
        f"SmaCross on {', '.join(symbols)}: {len(results.trades)} trades over "
        f"{results.total_ticks:,} bars"
    )
    print(f"final equity {m.final_equity:,.2f}  total return {_shown(m.total_return_pct, ' %')}")
    print(f"sharpe {_shown(m.sharpe_ratio)}  max drawdown {_shown(m.max_drawdown_pct, ' %')}")
