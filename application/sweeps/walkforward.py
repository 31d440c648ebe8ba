"""Walk-forward analysis: the sweep on each fold's training window, its best parameters on
the test window that follows, and the test windows' equity stitched into one out-of-sample
series with its §4.6 metrics."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from application.sweeps.folds import Fold, stitch
from application.sweeps.model import EquityCurve, MetricValue, Trial, TrialOutcome
from application.sweeps.ports import Sampler, TrialExecutor
from application.sweeps.sweep import ProgressCallback, SweepRequest, SweepResult, run_sweep
from domain.metrics import compute_metrics

SUMMED = ("total_trades", "winning_trades", "total_commission", "total_slippage")
"""Trade counts and costs of the stitched run: the folds' own, added up."""


@dataclass(frozen=True, slots=True)
class FoldResult:
    fold: Fold
    sweep: SweepResult
    test: TrialOutcome | None
    """The training window's best parameters run on the test window (None: no best)."""


@dataclass(frozen=True, slots=True)
class WalkForwardResult:
    folds: tuple[FoldResult, ...]
    equity: EquityCurve
    """The test windows' daily equity, chained from the initial capital."""
    metrics: Mapping[str, MetricValue]
    interrupted: bool = False


def run_walk_forward(
    request: SweepRequest,
    folds: Sequence[Fold],
    executor: TrialExecutor,
    capital: Decimal,
    *,
    sampler_for: Callable[[Fold], Sampler] | None = None,
    on_progress: ProgressCallback | None = None,
) -> WalkForwardResult:
    results: list[FoldResult] = []
    interrupted = False
    progress = _Progress(len(folds), on_progress)
    for fold in folds:
        sweep = run_sweep(
            replace(request, window=fold.train),
            executor,
            sampler=sampler_for(fold) if sampler_for is not None else None,
            on_progress=progress.trial,
        )
        test = None
        if sweep.interrupted:
            interrupted = True
        elif sweep.best is not None:
            try:
                ran = list(executor.run([Trial(fold.number, sweep.best.params, fold.test)]))
            except KeyboardInterrupt:
                interrupted = True
                ran = []
            test = ran[0] if ran else None
        results.append(FoldResult(fold, sweep, test))
        progress.fold_done(sweep.best)
        if interrupted:
            break
    tests = [r.test for r in results if r.test is not None and r.test.completed]
    equity = stitch([t.equity for t in tests], capital)
    return WalkForwardResult(tuple(results), equity, stitched_metrics(equity, tests), interrupted)


class _Progress:
    """Trials done over all folds (each fold's sweep plus its test run)."""

    def __init__(self, folds: int, report: ProgressCallback | None) -> None:
        self.folds = folds
        self.report = report
        self.before = 0
        self.per_fold = 0

    def trial(self, done: int, total: int, top: TrialOutcome | None) -> None:
        self.per_fold = total + 1
        if self.report is not None:
            self.report(self.before + done, self.per_fold * self.folds, top)

    def fold_done(self, top: TrialOutcome | None) -> None:
        self.before += self.per_fold
        if self.report is not None:
            self.report(self.before, self.per_fold * self.folds, top)


def stitched_metrics(
    equity: EquityCurve, tests: Sequence[TrialOutcome]
) -> Mapping[str, MetricValue]:
    """§4.6 of the stitched daily series; trade counts and costs summed over the folds;
    the per-trade figures (win rate aside) are each fold's own, not recomputed here."""
    if not equity:
        return {}
    computed = compute_metrics(
        [value for _, value in equity],
        (),
        bars_total=0,
        bars_with_position=0,
        total_commission=Decimal(0),
        total_slippage=Decimal(0),
    )
    metrics: dict[str, MetricValue] = dataclasses.asdict(computed)
    for name in SUMMED:
        values = [t.metric(name) for t in tests]
        numbers = [v for v in values if isinstance(v, int | Decimal)]
        metrics[name] = sum(numbers) if numbers else metrics.get(name)
    trades, wins = metrics.get("total_trades"), metrics.get("winning_trades")
    if isinstance(trades, int) and isinstance(wins, int):
        metrics["win_rate_pct"] = wins / trades * 100.0 if trades else None
    return metrics
