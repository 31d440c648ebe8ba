"""SMA crossover in pure Python with exact decimals (examples/sma_cross.py does the same with
indicators): buy with all cash when the fast average of closes crosses above the slow one,
sell everything when it crosses back below. Running sums of `ctx.history`, updated each bar.

    python examples/sma_cross_pure.py             # in process, on the local bar store
    simutrador run examples/sma_cross_pure.py --symbols AAPL --start 2015-01-01 \\
        --end 2024-12-31 --capital 10000 --param fast=10 --param slow=20
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from entrypoints.sdk import Bar, Context, Strategy, run_backtest


class MovingSum:
    """The sum of the last `n` values, updated in O(1) a bar; exact with decimals."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.total = Decimal(0)
        self.count = 0

    def push(self, value: Decimal, leaving: Decimal | None) -> None:
        self.total += value
        self.count += 1
        if leaving is not None and self.count > self.n:
            self.total -= leaving


class SmaCrossPure(Strategy):
    """Params: `fast` (default 10) and `slow` (default 20) bar counts."""

    def on_start(self, ctx: Context) -> None:
        self.fast = int(ctx.params.get("fast", 10))
        self.slow = int(ctx.params.get("slow", 20))
        self.sums = {s: (MovingSum(self.fast), MovingSum(self.slow)) for s in ctx.symbols}
        self.above: dict[str, bool | None] = dict.fromkeys(ctx.symbols)

    def on_bar(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        for symbol in bars:
            closes = ctx.history(symbol, self.slow + 1)
            fast, slow = self.sums[symbol]
            close = closes[-1]
            fast.push(close, closes[-self.fast - 1] if len(closes) > self.fast else None)
            slow.push(close, closes[0] if len(closes) > self.slow else None)
            if slow.count < self.slow:
                continue
            # fast/n_fast vs slow/n_slow, compared without dividing: exact.
            diff = fast.total * self.slow - slow.total * self.fast
            before, self.above[symbol] = self.above[symbol], diff > 0 if diff else None
            if before is False and diff > 0 and not ctx.position(symbol):
                ctx.buy(symbol, notional=ctx.cash / len(ctx.symbols))
            elif before is True and diff < 0 and ctx.position(symbol):
                ctx.close(symbol)


if __name__ == "__main__":
    results = run_backtest(
        SmaCrossPure, ["AAPL"], "2015-01-01", "2024-12-31", 10_000, commission_pct="0.001"
    )
    m = results.metrics
    print(f"{len(results.trades)} trades over {results.total_ticks} bars")
    print(f"final equity {m.final_equity}  total return {m.total_return_pct:.2f} %")
    print(f"sharpe {m.sharpe_ratio}  max drawdown {m.max_drawdown_pct} %")
