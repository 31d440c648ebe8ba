"""SMA crossover, long only: buy with all cash when the fast average of closes crosses above
the slow one, sell everything when it crosses back below.

    python examples/sma_cross.py                  # in process, on the local bar store
    simutrador run examples/sma_cross.py --symbols AAPL --start 2015-01-01 \\
        --end 2024-12-31 --capital 10000 --param fast=10 --param slow=20
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from entrypoints.sdk import Bar, Context, Strategy, run_backtest


def mean(values: Sequence[Decimal]) -> Decimal:
    return sum(values, Decimal(0)) / len(values)


class SmaCross(Strategy):
    """Params: `fast` (default 10) and `slow` (default 20) bar counts."""

    def on_bar(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        fast = int(ctx.params.get("fast", 10))
        slow = int(ctx.params.get("slow", 20))
        for symbol in bars:
            closes = ctx.history(symbol, slow + 1)
            if len(closes) <= slow:
                continue  # the slow average needs slow + 1 closes to have a previous value
            fast_now, slow_now = mean(closes[-fast:]), mean(closes[-slow:])
            fast_before, slow_before = mean(closes[-fast - 1 : -1]), mean(closes[-slow - 1 : -1])
            if fast_before < slow_before and fast_now > slow_now and not ctx.position(symbol):
                ctx.buy(symbol, notional=ctx.cash / len(ctx.symbols))
            elif fast_before > slow_before and fast_now < slow_now and ctx.position(symbol):
                ctx.close(symbol)


if __name__ == "__main__":
    results = run_backtest(
        SmaCross, ["AAPL"], "2015-01-01", "2024-12-31", 10_000, commission_pct="0.001"
    )
    m = results.metrics
    print(f"{len(results.trades)} trades over {results.total_ticks} bars")
    print(f"final equity {m.final_equity}  total return {m.total_return_pct:.2f} %")
    print(f"sharpe {m.sharpe_ratio}  max drawdown {m.max_drawdown_pct} %")
