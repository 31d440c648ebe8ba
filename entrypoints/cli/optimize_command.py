"""`simutrador optimize FILE.py`: a parameter sweep of a strategy (see
`entrypoints.sdk.optimize`, which this command calls): progress, the top trials, the best
with its Deflated Sharpe Ratio, and optionally JSON, CSV and an HTML report."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from application.sweeps.model import TrialOutcome, plain
from domain.errors import DomainError
from entrypoints.cli.common import (
    USAGE_EXIT,
    ApiKeyOption,
    JsonOption,
    auth_client,
    err,
    fail,
    fail_with,
    key_values,
    out,
    print_json,
)
from entrypoints.cli.run_options import (
    AllowShortOption,
    CapitalOption,
    CommissionMinOption,
    CommissionPctOption,
    CommissionPerShareOption,
    EndOption,
    FileArgument,
    MaxVolumeOption,
    SlippageOption,
    StartOption,
    StrategyOption,
    SymbolsOption,
    TimeframeOption,
    WarmupOption,
    strategy_class,
    symbols_of,
)
from entrypoints.cli.token_cache import TokenCache
from entrypoints.sdk import ServerAddress, SimuTradorError
from entrypoints.sdk.optimize import DEFAULT_METRIC, InvalidSweep, OptimizeResults, optimize
from entrypoints.settings import SettingsError

TOP_SHOWN = 10
SIDE_METRICS = ("sharpe_ratio", "total_return_pct", "max_drawdown_pct", "total_trades")
INTERRUPTED_EXIT = 130


def optimize_command(
    file: FileArgument,
    symbols: SymbolsOption,
    start: StartOption,
    end: EndOption,
    capital: CapitalOption,
    param: Annotated[
        list[str],
        typer.Option(
            "--param",
            "-p",
            metavar="NAME=SPEC",
            help="A parameter to sweep: a list 5,10,20 or a range 5..50:5 (both ends "
            "included); repeat for each.",
        ),
    ],
    constraint: Annotated[
        str | None,
        typer.Option(
            metavar="EXPR", help='Python expression over the parameters, e.g. "fast < slow".'
        ),
    ] = None,
    maximize: Annotated[
        str | None,
        typer.Option(metavar="METRIC", help="Metric to maximize (default sharpe_ratio)."),
    ] = None,
    minimize: Annotated[
        str | None, typer.Option(metavar="METRIC", help="Metric to minimize.")
    ] = None,
    method: Annotated[str, typer.Option(help="grid, random or bayes (Optuna TPE).")] = "grid",
    trials: Annotated[
        int | None, typer.Option(help="Trials for random and bayes (default 100).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of random and bayes.")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Trials at once (default: the CPU count).")
    ] = None,
    backend: Annotated[
        str, typer.Option(help="local (worker processes) or ray (pip install simutrador[ray]).")
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(metavar="ADDR", help="Join this Ray cluster (default: start one here)."),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Run each trial as a session on this server (the strategy stays here).",
            show_default=False,
        ),
    ] = None,
    api_key: ApiKeyOption = None,
    walk_forward: Annotated[
        int | None,
        typer.Option(metavar="K", min=1, help="Walk-forward analysis over K folds."),
    ] = None,
    train_pct: Annotated[
        float, typer.Option(metavar="P", help="Walk-forward: % of each fold that trains.")
    ] = 70.0,
    anchored: Annotated[
        bool, typer.Option(help="Walk-forward: every training window starts at --start.")
    ] = False,
    study: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="bayes: keep the study in SIMUTRADOR_HOME/studies/NAME.db and resume it.",
        ),
    ] = None,
    strategy: StrategyOption = None,
    timeframe: TimeframeOption = "1d",
    commission_per_share: CommissionPerShareOption = None,
    commission_pct: CommissionPctOption = None,
    commission_min: CommissionMinOption = None,
    slippage_bps: SlippageOption = None,
    max_volume_pct: MaxVolumeOption = None,
    allow_short: AllowShortOption = False,
    warmup: WarmupOption = 0,
    report: Annotated[
        Path | None, typer.Option("--report", metavar="FILE.html", help="Write an HTML report.")
    ] = None,
    csv_dir: Annotated[
        Path | None,
        typer.Option("--csv", metavar="DIR", help="Write every trial as a row of DIR/trials.csv."),
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="Trials shown in the table.")] = TOP_SHOWN,
    as_json: JsonOption = False,
) -> None:
    """Sweep a strategy's parameters (grid, random or Bayesian; optionally walk-forward),
    then show the top trials and the best."""
    specs = key_values(param, "--param")
    if report is not None and not report.parent.resolve().is_dir():
        raise typer.BadParameter(f"no folder {report.parent} to write into", param_hint="--report")
    loaded = strategy_class(file, strategy)
    auth = None
    if server is not None:
        try:
            auth = auth_client(ServerAddress.parse(server).http_url, api_key, TokenCache())
        except (SimuTradorError, ValueError) as exc:
            if isinstance(exc, SimuTradorError):
                fail_with(exc)
            raise typer.BadParameter(str(exc), param_hint="--server") from None
    progress = _SweepProgress(minimize or maximize or DEFAULT_METRIC, enabled=not as_json)
    try:
        with progress:
            results = optimize(
                loaded,
                symbols_of(symbols),
                start,
                end,
                capital,
                timeframe,
                params=specs,
                constraint=constraint,
                maximize=maximize,
                minimize=minimize,
                method=method,
                trials=trials,
                seed=seed,
                workers=workers,
                backend=backend,
                ray_address=ray_address,
                auth=auth,
                walk_forward=walk_forward,
                train_pct=train_pct,
                anchored=anchored,
                study=study,
                warmup_bars=warmup,
                on_progress=progress.update,
                commission_per_share=commission_per_share,
                commission_pct=commission_pct,
                commission_min=commission_min,
                slippage_bps=slippage_bps,
                max_volume_pct=max_volume_pct,
                allow_short=allow_short,
            )
    except InvalidSweep as exc:
        fail(exc.code, exc.message, exit_code=USAGE_EXIT)
    except SimuTradorError as exc:
        fail_with(exc)
    except DomainError as exc:
        fail(exc.code, exc.message, exc.details)
    except SettingsError:
        raise
    except RuntimeError as exc:  # e.g. --backend ray without Ray installed
        fail("SWEEP_FAILED", str(exc))
    title = f"{loaded.__name__} on {symbols}"
    if csv_dir is not None:
        _write_csv(results, csv_dir)
    if report is not None:
        from entrypoints.sweep_report import write_sweep_report

        try:
            write_sweep_report(results, report, title)
        except OSError as exc:
            fail("REPORT_NOT_WRITTEN", f"Cannot write {report}: {exc.strerror or exc}")
    if as_json:
        print_json(results.to_json())
    else:
        _print(results, top)
        if report is not None:
            out.print(f"Report written to {escape(str(report))}")
    if results.interrupted:
        raise typer.Exit(INTERRUPTED_EXIT)
    if results.best is None:
        raise typer.Exit(1)


class _SweepProgress:
    """Trials done / planned, the time left and the best so far."""

    def __init__(self, metric: str, *, enabled: bool) -> None:
        self._metric = metric
        self._enabled = enabled
        self._bar = Progress(
            TextColumn("[bold]trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[best]}"),
            console=err,
            transient=True,
        )
        self._task: Any = None

    def __enter__(self) -> _SweepProgress:
        if self._enabled:
            self._bar.start()
            self._task = self._bar.add_task("sweep", total=None, best="")
        return self

    def update(self, done: int, total: int, best: TrialOutcome | None) -> None:
        if not self._enabled:
            return
        shown = ""
        if best is not None:
            params = ", ".join(f"{k}={plain(v)}" for k, v in best.params.items())
            shown = f"best {self._metric} {_value(best.metric(self._metric))} ({params})"
        self._bar.update(self._task, completed=done, total=total, best=escape(shown))

    def __exit__(self, *exc: object) -> None:
        if self._enabled:
            self._bar.stop()


def _value(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.3f}"
    return f"{plain(value)}"


def _print(results: OptimizeResults, top: int) -> None:
    metric = results.objective.metric
    columns = [metric, *[m for m in SIDE_METRICS if m != metric]]
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=f"Top trials by {metric}")
    table.add_column("#", justify="right")
    for name in results.space.names:
        table.add_column(escape(name), justify="right")
    for name in columns:
        table.add_column(escape(name), justify="right")
    for outcome in results.ranked()[:top]:
        cells = [
            str(outcome.number),
            *(escape(_value(outcome.params.get(n))) for n in results.space.names),
        ]
        if outcome.completed:
            cells += [_value(outcome.metric(c)) for c in columns]
        else:
            cells += ["[red]failed[/red]"] + [""] * (len(columns) - 1)
        table.add_row(*cells)
    out.print(table)
    trials = results.trials
    failed = [t for t in trials if not t.completed]
    out.print(
        f"{len(trials)} trials ({results.method.value}), {len(failed)} failed"
        + (
            " — [yellow]interrupted[/yellow]: these are the trials that completed"
            if results.interrupted
            else ""
        )
    )
    for outcome in failed[:3]:
        out.print(f"[red]failed[/red] #{outcome.number}: {escape(outcome.error or '')}")
    best = results.best
    if best is None:
        out.print("[red]No trial completed.[/red]")
        return
    params = ", ".join(f"{k}={plain(v)}" for k, v in best.params.items())
    out.print(
        f"[bold]Best[/bold]: {escape(params)} — {metric} {_value(best.metric(metric))}, "
        f"Sharpe {_value(best.metric('sharpe_ratio'))} "
        f"(deflated over {len(results.ranked())} trials: "
        f"{_value(results.deflated_sharpe_ratio)})"
    )
    wf = results.walk_forward
    if wf is not None:
        _print_folds(results)


def _print_folds(results: OptimizeResults) -> None:
    wf = results.walk_forward
    assert wf is not None
    metric = results.objective.metric
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="Walk-forward folds")
    for column in ("fold", "train", "test", "best params", "in-sample", "out-of-sample"):
        table.add_column(column)
    for entry in wf.folds:
        best, test = entry.sweep.best, entry.test
        table.add_row(
            str(entry.fold.number),
            f"{entry.fold.train.start}..{entry.fold.train.end}",
            f"{entry.fold.test.start}..{entry.fold.test.end}",
            escape(", ".join(f"{k}={plain(v)}" for k, v in best.params.items())) if best else "—",
            _value(best.metric(metric)) if best else "—",
            _value(test.metric(metric)) if test and test.completed else "—",
        )
    out.print(table)
    shown = ", ".join(
        f"{name} {_value(wf.metrics.get(name))}"
        for name in ("total_return_pct", "sharpe_ratio", "max_drawdown_pct", "final_equity")
        if name in wf.metrics
    )
    out.print(f"[bold]Stitched out-of-sample[/bold]: {shown}")


def _write_csv(results: OptimizeResults, folder: Path) -> None:
    """DIR/trials.csv: one row per trial (fold, number, status, params, metrics, error)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "trials.csv"
        document = results.to_json()
        metric_names: list[str] = []
        for entry in document["trials"]:
            for name in entry["metrics"] or {}:
                if name not in metric_names:
                    metric_names.append(name)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(
                ["fold", "number", "status", *results.space.names, *metric_names, "error"]
            )
            for entry, outcome in zip(document["trials"], results.trials, strict=True):
                metrics = entry["metrics"] or {}
                writer.writerow(
                    [
                        entry.get("fold", ""),
                        outcome.number,
                        entry["status"],
                        *(entry["params"].get(n) for n in results.space.names),
                        *("" if metrics.get(m) is None else metrics[m] for m in metric_names),
                        entry["error"] or "",
                    ]
                )
    except OSError as exc:
        fail("CSV_NOT_WRITTEN", f"Cannot write {folder}: {exc.strerror or exc}")
