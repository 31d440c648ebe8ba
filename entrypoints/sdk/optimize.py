"""`optimize(...)`: a parameter sweep of a strategy — grid, seeded random or Bayesian
(Optuna TPE), optionally walk-forward — on local worker processes, a Ray cluster or a
server. `simutrador optimize` is this function behind flags.

    results = optimize(SmaCross, "AAPL", "2015-01-01", "2024-12-31", 10_000,
                       params={"fast": range(5, 31, 5), "slow": [20, 50, 100]},
                       constraint=lambda p: p.fast < p.slow, maximize="sharpe_ratio")
    results.best.params, results.heatmap("fast", "slow"), results.to_json()

The worker processes are spawned: a script calling `optimize` must guard its top level
with `if __name__ == "__main__":`."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from application.sweeps.bars import BarSnapshot
from application.sweeps.folds import Fold, cut_folds
from application.sweeps.model import InvalidSweep, MetricValue, TrialOutcome, plain
from application.sweeps.ports import Sampler, TrialExecutor, TrialRunner
from application.sweeps.ranking import Heatmap, Objective, heatmap
from application.sweeps.space import SearchSpace, compile_constraint, values_of
from application.sweeps.sweep import (
    Method,
    ProgressCallback,
    SweepRequest,
    SweepResult,
    run_sweep,
)
from application.sweeps.walkforward import WalkForwardResult, run_walk_forward
from domain.bars import from_epoch, union_times
from entrypoints.sdk.auth import AuthClient
from entrypoints.sdk.backtest import DateLike, EngineSettingValue, session_request
from entrypoints.sdk.strategy import Strategy
from entrypoints.sdk.trials import (
    LocalTrialRunner,
    RemoteTrialRunner,
    RunSpec,
    StrategyRef,
    metric_names,
    read_params,
)

DEFAULT_METRIC = "sharpe_ratio"
BACKENDS = ("local", "ray")
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")

__all__ = ["InvalidSweep", "OptimizeResults", "TrialOutcome", "optimize"]


@dataclass(frozen=True, slots=True)
class OptimizeResults:
    """A finished (or interrupted) sweep: `.trials` in a stable order, `.best`, the
    best trial's Deflated Sharpe Ratio, `.heatmap(x, y)`, `.to_json()`; with walk-forward,
    `.walk_forward` holds each fold and the stitched out-of-sample equity."""

    objective: Objective
    method: Method
    space: SearchSpace
    sweep: SweepResult | None = None
    walk_forward: WalkForwardResult | None = None

    @property
    def sweeps(self) -> list[SweepResult]:
        if self.walk_forward is not None:
            return [fold.sweep for fold in self.walk_forward.folds]
        return [self.sweep] if self.sweep is not None else []

    @property
    def trials(self) -> list[TrialOutcome]:
        """Every trial in trial-number order (walk-forward: fold by fold)."""
        return [o for sweep in self.sweeps for o in sweep.outcomes]

    @property
    def best(self) -> TrialOutcome | None:
        """The best trial (walk-forward: the last fold's, the parameters to trade next)."""
        sweeps = self.sweeps
        return sweeps[-1].best if sweeps else None

    @property
    def deflated_sharpe_ratio(self) -> float | None:
        sweeps = self.sweeps
        return sweeps[-1].deflated_sharpe if sweeps else None

    @property
    def interrupted(self) -> bool:
        if self.walk_forward is not None:
            return self.walk_forward.interrupted
        return self.sweep is not None and self.sweep.interrupted

    def ranked(self) -> list[TrialOutcome]:
        """Best first (a null metric ranks after every value, a failed trial last)."""
        sweeps = self.sweeps
        return list(sweeps[-1].ranked) if sweeps else []

    def heatmap(self, x: str, y: str) -> Heatmap:
        """The best metric for each (x, y) pair run, over the other parameters."""
        for name in (x, y):
            if name not in self.space.params:
                raise InvalidSweep(
                    f"no parameter {name!r}; the sweep has {', '.join(self.space.names)}"
                )
        sweeps = self.sweeps
        outcomes = list(sweeps[-1].outcomes) if sweeps else []
        return heatmap(outcomes, x, y, self.objective, dict(self.space.params))

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values: every trial (params, metrics, status, error), the best, and
        for walk-forward the folds and the stitched out-of-sample run."""
        trials = []
        for index, sweep in enumerate(self.sweeps):
            for outcome in sweep.outcomes:
                entry = _trial_json(outcome)
                if self.walk_forward is not None:
                    entry["fold"] = index + 1
                trials.append(entry)
        best = self.best
        document: dict[str, Any] = {
            "trials": trials,
            "best": None
            if best is None
            else {
                "params": _params_json(best.params),
                "metrics": _metrics_json(best.metrics),
                "deflated_sharpe_ratio": self.deflated_sharpe_ratio,
            },
            "metric": self.objective.metric,
            "direction": self.objective.direction,
            "method": self.method.value,
            "completed": sum(1 for t in self.trials if t.completed),
            "failed": sum(1 for t in self.trials if not t.completed),
            "interrupted": self.interrupted,
        }
        if self.walk_forward is not None:
            document["walk_forward"] = _walk_forward_json(self.walk_forward)
        result: dict[str, Any] = msgspec.to_builtins(document)
        return result


def _params_json(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: plain(v) for k, v in params.items()}


def _metrics_json(metrics: Mapping[str, MetricValue]) -> dict[str, Any]:
    return {k: plain(v) for k, v in metrics.items()}


def _trial_json(outcome: TrialOutcome) -> dict[str, Any]:
    return {
        "params": _params_json(outcome.params),
        "metrics": _metrics_json(outcome.metrics) if outcome.completed else None,
        "status": outcome.status.value,
        "error": outcome.error,
    }


def _walk_forward_json(result: WalkForwardResult) -> dict[str, Any]:
    folds = []
    for entry in result.folds:
        best = entry.sweep.best
        folds.append(
            {
                "fold": entry.fold.number,
                "train": {"start": entry.fold.train.start, "end": entry.fold.train.end},
                "test": {"start": entry.fold.test.start, "end": entry.fold.test.end},
                "best_params": _params_json(best.params) if best is not None else None,
                "in_sample": _metrics_json(best.metrics) if best is not None else None,
                "out_of_sample": _metrics_json(entry.test.metrics)
                if entry.test is not None and entry.test.completed
                else None,
                "deflated_sharpe_ratio": entry.sweep.deflated_sharpe,
            }
        )
    return {
        "folds": folds,
        "equity_curve": [[day.isoformat(), str(value)] for day, value in result.equity],
        "metrics": _metrics_json(result.metrics),
    }


@dataclass(frozen=True, slots=True)
class _Plan:
    request: SweepRequest
    spec: RunSpec
    strategy: StrategyRef


def plan_sweep(
    strategy: type[Strategy],
    symbols: Sequence[str] | str,
    start: DateLike,
    end: DateLike,
    capital: Decimal | int | str,
    timeframe: str,
    *,
    params: Mapping[str, Iterable[Any] | str],
    constraint: Callable[[Any], bool] | str | None,
    maximize: str | None,
    minimize: str | None,
    method: str,
    trials: int | None,
    seed: int | None,
    warmup_bars: int,
    engine_settings: Mapping[str, EngineSettingValue],
) -> _Plan:
    """Everything checked before anything runs: each problem an `InvalidSweep`."""
    if maximize is not None and minimize is not None:
        raise InvalidSweep("give --maximize or --minimize, not both")
    space_values = {name: values_of(name, values) for name, values in params.items()}
    if not space_values:
        raise InvalidSweep("no parameter to sweep: give at least one --param NAME=SPEC")
    known = read_params(strategy)
    unknown = sorted(set(space_values) - known) if known is not None else []
    if unknown:
        raise InvalidSweep(
            f"unknown parameter(s) {', '.join(unknown)}: {strategy.__name__} reads "
            + (", ".join(sorted(known or ())) or "no parameter"),
            {"unknown": unknown},
        )
    check: Callable[[Any], bool] | None
    if isinstance(constraint, str):
        check = compile_constraint(constraint, tuple(space_values))
    else:
        check = constraint
    try:
        chosen = Method(method)
    except ValueError:
        raise InvalidSweep(
            f"unknown method {method!r}; choose grid, random or bayes", {"method": method}
        ) from None
    objective = Objective(minimize or maximize or DEFAULT_METRIC, maximize=minimize is None)
    request = SweepRequest(SearchSpace(space_values, check), objective, chosen, trials, seed)
    request.validate(metric_names())
    request.space.grid()  # an empty grid (every combination refused) stops here
    universe = tuple([symbols] if isinstance(symbols, str) else symbols)
    spec = RunSpec(
        universe,
        _iso(start),
        _iso(end),
        Decimal(str(capital)),
        timeframe,
        warmup_bars,
        dict(engine_settings),
    )
    try:
        session_request(
            list(universe), spec.start, spec.end, spec.capital, timeframe, spec.engine_settings
        )
    except TypeError as exc:
        raise InvalidSweep(str(exc)) from None
    return _Plan(request, spec, StrategyRef.of(strategy))


def optimize(
    strategy: type[Strategy],
    symbols: Sequence[str] | str,
    start: DateLike,
    end: DateLike,
    capital: Decimal | int | str,
    timeframe: str = "1d",
    *,
    params: Mapping[str, Iterable[Any] | str],
    constraint: Callable[[Any], bool] | str | None = None,
    maximize: str | None = None,
    minimize: str | None = None,
    method: str = "grid",
    trials: int | None = None,
    seed: int | None = None,
    workers: int | None = None,
    backend: str = "local",
    ray_address: str | None = None,
    server: str | None = None,
    api_key: str | None = None,
    auth: AuthClient | None = None,
    walk_forward: int | None = None,
    train_pct: float = 70.0,
    anchored: bool = False,
    study: str | None = None,
    warmup_bars: int = 0,
    on_progress: ProgressCallback | None = None,
    **engine_settings: EngineSettingValue,
) -> OptimizeResults:
    """Run `strategy` once per parameter combination and rank the runs by a metric (any key
    of the run's metrics; default `sharpe_ratio`, maximized).

    `params` maps each parameter to its candidates: any iterable (`range(5, 51, 5)`) or a
    SPEC string (`"5,10,20"`, `"5..50:5"`). `constraint` is a predicate over the
    parameters (`lambda p: p.fast < p.slow`) or an expression (`"fast < slow"`).
    `method`: `grid` (every combination), `random` (`trials` of them, seeded) or `bayes`
    (Optuna TPE; with `study`, kept in SIMUTRADOR_HOME/studies/STUDY.db and resumed).
    The trials run on `workers` local processes (default: the CPU count), on Ray
    (`backend="ray"`, `ray_address` to join a cluster), or as sessions on `server`.
    `walk_forward=K` cuts the range into K folds (`train_pct` % training each,
    `anchored` training from the start). Ctrl-C stops and returns what completed."""
    from entrypoints.settings import Settings

    plan = plan_sweep(
        strategy,
        symbols,
        start,
        end,
        capital,
        timeframe,
        params=params,
        constraint=constraint,
        maximize=maximize,
        minimize=minimize,
        method=method,
        trials=trials,
        seed=seed,
        warmup_bars=warmup_bars,
        engine_settings=engine_settings,
    )
    remote = server is not None or auth is not None
    if backend not in BACKENDS:
        raise InvalidSweep(f"unknown backend {backend!r}; choose local or ray")
    if remote and backend != "local":
        raise InvalidSweep("--server runs the trials on the server: leave --backend out")
    if ray_address is not None and backend != "ray":
        raise InvalidSweep("--ray-address is for --backend ray")
    if workers is not None and workers < 1:
        raise InvalidSweep("--workers must be at least 1")
    if walk_forward is not None and remote:
        raise InvalidSweep("--walk-forward runs locally or on Ray, not with --server")
    if study is not None:
        if plan.request.method is not Method.BAYES:
            raise InvalidSweep("--study is for --method bayes (grid and random are reproducible)")
        if not _STUDY_NAME.match(study):
            raise InvalidSweep(f"--study {study!r}: use letters, digits, '.', '_' or '-'")
    settings = Settings.from_env()

    bars: BarSnapshot | None = None
    if remote:
        executor = _server_executor(plan, server, api_key, auth)
    else:
        from entrypoints.container import read_bar_snapshot, trial_executor

        bars = read_bar_snapshot(settings, plan.spec.symbols, plan.spec.timeframe)
        environ = {k: v for k, v in os.environ.items() if k.startswith("SIMUTRADOR_")}
        environ["SIMUTRADOR_HOME"] = str(settings.home)
        runner: TrialRunner = LocalTrialRunner(plan.strategy, plan.spec, environ, bars)
        executor = trial_executor(runner, backend=backend, workers=workers, ray_address=ray_address)
    try:
        request = plan.request

        def sampler(suffix: str = "") -> Sampler | None:
            if request.method is not Method.BAYES:
                return None
            from entrypoints.container import bayes_sampler

            storage = None
            if study is not None:
                storage = study_path(settings.home, f"{study}{suffix}")
            return bayes_sampler(
                request.space,
                request.objective,
                seed=request.seed,
                storage=storage,
                study_name=f"{study or 'sweep'}{suffix}",
            )

        if walk_forward is not None:
            assert bars is not None
            folds = cut_folds(
                trading_days(bars, plan.spec.start, plan.spec.end),
                walk_forward,
                train_pct,
                anchored=anchored,
            )

            def fold_sampler(fold: Fold) -> Sampler:
                made = sampler(f"-fold{fold.number}")
                assert made is not None
                return made

            result = run_walk_forward(
                request,
                folds,
                executor,
                plan.spec.capital,
                sampler_for=fold_sampler if request.method is Method.BAYES else None,
                on_progress=on_progress,
            )
            return OptimizeResults(
                request.objective, request.method, request.space, walk_forward=result
            )
        sweep = run_sweep(request, executor, sampler=sampler(), on_progress=on_progress)
        return OptimizeResults(request.objective, request.method, request.space, sweep=sweep)
    finally:
        executor.close()


def trading_days(bars: BarSnapshot, start: str, end: str) -> list[date]:
    """The days with a bar of any of the symbols, from `start` to `end` (inclusive). A
    daily bar closing at midnight UTC belongs to the day before."""
    first, last = date.fromisoformat(start), date.fromisoformat(end)
    days = sorted(
        {
            (from_epoch(t) - timedelta(seconds=1)).astimezone(UTC).date()
            for t in union_times(list(bars.series.values()))
        }
    )
    return [d for d in days if first <= d <= last]


def _server_executor(
    plan: _Plan, server: str | None, api_key: str | None, auth: AuthClient | None
) -> TrialExecutor:
    from entrypoints.container import server_executor
    from entrypoints.sdk.client import SessionClient

    client = auth if auth is not None else AuthClient(server, api_key)

    async def limits() -> tuple[Any, int]:
        token = await client.get_token()
        async with SessionClient(client) as session:
            ready = await session.connect()
        plan_limits = ready.limits
        return token, max(
            1,
            min(
                plan_limits.max_running_simulations,
                plan_limits.max_active_sessions,
                plan_limits.max_connections,
            ),
        )

    token, concurrency = asyncio.run(limits())
    runner = RemoteTrialRunner(plan.strategy, plan.spec, client.server_url, token)
    return server_executor(runner, concurrency)


def _iso(value: DateLike) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat()
    return value if isinstance(value, str) else value.isoformat()


def study_path(home: Path, study: str) -> Path:
    return home / "studies" / f"{study}.db"
