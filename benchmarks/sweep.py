"""Sweeps: the issue's grid (SMA cross, `fast` in 5..30:5 by `slow` in 20..100, `fast <
slow`: 38 runs on GOOG daily, 0.1 % commission, all cash at the next open) through our
`optimize` and through backtesting.py's `Backtest.optimize`, both on every core: final
equities side by side, the same best, the wall-time ratio. Then the trials per second of
the local pool with one worker and with all, and Ray on a local head against the pool
(the overhead a trial pays on Ray), both measured on warm workers."""

from __future__ import annotations

import asyncio
import os
import time
import warnings
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from backtesting import Backtest
from backtesting import Strategy as BtStrategy
from backtesting.lib import crossover
from backtesting.test import GOOG, SMA

from application.sweeps.model import Trial
from application.sweeps.ports import TrialExecutor
from benchmarks.engine import CAPITAL, COMMISSION, GOOG_INSTRUMENT, INDICATORS, goog_series, home
from benchmarks.report import Figure
from entrypoints.sdk.loading import load_strategy
from entrypoints.sdk.optimize import optimize

FAST = range(5, 31, 5)
SLOW = (20, 30, 40, 50, 60, 80, 100)
RUNS = 38
RATIO_TARGET = 2.0
# A Ray of our own stays on loopback; Ray reads these when imported, so set them first.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
EQUITY_TOLERANCE = Decimal(1)


class ReferenceSweepCross(BtStrategy):  # type: ignore[misc]
    fast = 10
    slow = 20

    def init(self) -> None:
        self.fast_sma = self.I(SMA, self.data.Close, self.fast)
        self.slow_sma = self.I(SMA, self.data.Close, self.slow)

    def next(self) -> None:
        if crossover(self.fast_sma, self.slow_sma) and not self.position:
            self.buy()
        elif crossover(self.slow_sma, self.fast_sma) and self.position:
            self.position.close()


def reference() -> tuple[float, dict[tuple[int, int], Decimal]]:
    """(seconds, final equity by (fast, slow)) of backtesting.py's grid on every core."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # its progress bars, in every worker too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        backtest = Backtest(GOOG, ReferenceSweepCross, cash=CAPITAL, commission=COMMISSION)
        _, heatmap = backtest.optimize(
            fast=list(FAST),
            slow=list(SLOW),
            constraint=lambda p: p.fast < p.slow,
            maximize="Equity Final [$]",
            return_heatmap=True,
        )
        seconds = time.perf_counter() - started
    equities = {(int(f), int(s)): Decimal(repr(float(v))) for (f, s), v in heatmap.items()}
    return seconds, equities


def ours(workers: int) -> tuple[float, dict[tuple[int, int], Decimal], Any]:
    strategy = load_strategy(INDICATORS)
    first, last = GOOG.index[0].date().isoformat(), GOOG.index[-1].date().isoformat()
    started = time.perf_counter()
    results = optimize(
        strategy,
        "GOOG",
        first,
        last,
        CAPITAL,
        params={"fast": FAST, "slow": SLOW},
        constraint="fast < slow",
        maximize="final_equity",
        workers=workers,
        commission_pct=str(COMMISSION),
    )
    seconds = time.perf_counter() - started
    equities = {
        (int(t.params["fast"]), int(t.params["slow"])): Decimal(str(t.metrics["final_equity"]))
        for t in results.trials
        if t.completed
    }
    return seconds, equities, results


def comparison(cores: int) -> list[Figure]:
    theirs_s, theirs = reference()
    mine_s, mine, results = ours(cores)
    within = [k for k in theirs if k in mine and abs(mine[k] - theirs[k]) <= EQUITY_TOLERANCE]
    worst = max((abs(mine[k] - theirs[k]) for k in theirs if k in mine), default=Decimal(0))
    best_theirs = max(theirs, key=lambda k: theirs[k])
    best = results.best
    best_mine = (int(best.params["fast"]), int(best.params["slow"])) if best else None
    ratio = theirs_s / mine_s
    return [
        Figure("38-run grid: backtesting.py optimize", theirs_s, "s", note=f"{len(theirs)} runs"),
        Figure("38-run grid: simutrador optimize", mine_s, "s", note=f"{len(mine)} runs"),
        Figure(
            "38-run grid: speed ratio (theirs / ours)",
            ratio,
            "x",
            target=f">= {RATIO_TARGET}",
            ok=ratio >= RATIO_TARGET,
            note=f"{cores} workers each",
        ),
        Figure(
            "38-run grid: final equities within $1",
            len(within),
            "runs",
            target=f"= {RUNS}",
            ok=len(within) == RUNS == len(mine),
            note=f"largest difference ${worst:.2f}",
        ),
        Figure(
            "38-run grid: same best (fast, slow)",
            1.0 if best_mine == best_theirs else 0.0,
            "",
            target="1",
            ok=best_mine == best_theirs,
            note=f"ours {best_mine}, theirs {best_theirs}",
        ),
    ]


def _throughput(make: Callable[[], TrialExecutor], trials: list[Trial], warm: int) -> float:
    """Trials per second of a warm executor (its workers started and holding the bars)."""
    executor = make()
    try:
        list(executor.run(trials[:warm]))
        started = time.perf_counter()
        done = list(executor.run(trials))
        seconds = time.perf_counter() - started
    finally:
        executor.close()
    assert all(o.completed for o in done), [o.error for o in done if not o.completed][:1]
    return len(done) / seconds


def scaling(cores: int) -> list[Figure]:
    from entrypoints.container import read_bar_snapshot, trial_executor
    from entrypoints.sdk.optimize import plan_sweep
    from entrypoints.sdk.trials import LocalTrialRunner
    from entrypoints.settings import Settings

    strategy = load_strategy(INDICATORS)
    first, last = GOOG.index[0].date().isoformat(), GOOG.index[-1].date().isoformat()
    plan = plan_sweep(
        strategy, "GOOG", first, last, CAPITAL, "1d",
        params={"fast": FAST, "slow": SLOW}, constraint="fast < slow", maximize=None,
        minimize=None, method="grid", trials=None, seed=None, warmup_bars=0,
        engine_settings={"commission_pct": str(COMMISSION)},
    )  # fmt: skip
    settings = Settings.from_env()
    environ = {k: v for k, v in os.environ.items() if k.startswith("SIMUTRADOR_")}
    bars = read_bar_snapshot(settings, plan.spec.symbols, plan.spec.timeframe)
    runner = LocalTrialRunner(plan.strategy, plan.spec, environ, bars)
    trials = [Trial(i, p) for i, p in enumerate(plan.request.planned())]
    one = _throughput(lambda: trial_executor(runner, workers=1), trials, 1)
    pool = _throughput(lambda: trial_executor(runner, workers=cores), trials, cores)
    figures = [
        Figure("local pool, 1 worker", one, "trials/s", note=f"{len(trials)} GOOG daily runs"),
        Figure(
            f"local pool, {cores} workers", pool, "trials/s", note=f"x{pool / one:.2f} of 1 worker"
        ),
    ]
    try:
        import ray  # noqa: F401
    except ImportError:
        return [*figures, Figure("ray local head", 0, "trials/s", note="ray not installed")]
    on_ray = _throughput(
        lambda: trial_executor(runner, backend="ray", workers=cores), trials, cores
    )
    overhead_ms = (1 / on_ray - 1 / pool) * cores * 1000
    return [
        *figures,
        Figure(
            f"ray local head, {cores} CPUs",
            on_ray,
            "trials/s",
            note=f"x{on_ray / pool:.2f} of the pool",
        ),
        Figure("ray overhead per trial (vs the pool)", overhead_ms, "ms", note="per worker"),
    ]


def run() -> list[Figure]:
    cores = os.cpu_count() or 1
    with home() as container:
        service = container.market_data_service()
        asyncio.run(service.register_instrument(GOOG_INSTRUMENT))
        asyncio.run(service.import_bars(goog_series(), replace=False))
        container.bar_store().close()
        return comparison(cores) + scaling(cores)
