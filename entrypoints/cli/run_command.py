"""`simutrador run FILE.py`: run a strategy file over historical bars and show the results."""

from __future__ import annotations

import contextlib
import sys
import time
import traceback
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from domain.errors import DomainError
from entrypoints.cli.common import (
    ApiKeyOption,
    JsonOption,
    auth_client,
    err,
    fail,
    fail_with,
    key_values,
    print_json,
)
from entrypoints.cli.results_view import (
    CsvOption,
    ReportOption,
    check_output_paths,
    print_outputs,
    print_results,
    results_document,
    write_outputs,
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
    symbols_of,
)
from entrypoints.cli.run_options import strategy_class as load_strategy_class
from entrypoints.cli.token_cache import TokenCache
from entrypoints.protocol.messages import MAX_WINDOW
from entrypoints.sdk import ServerAddress, SimuTradorError, run_backtest
from entrypoints.sdk.driver import DEFAULT_WINDOW
from entrypoints.settings import SettingsError


def _param_value(text: str) -> Any:
    """`--param k=v`: an int, else a decimal, else the text as given."""
    for parse in (int, Decimal):
        try:
            return parse(text)
        except (ValueError, InvalidOperation):
            continue
    return text


def _params(pairs: list[str]) -> dict[str, Any]:
    return {k: _param_value(v.strip()) for k, v in key_values(pairs, "--param").items()}


def run(
    file: FileArgument,
    symbols: SymbolsOption,
    start: StartOption,
    end: EndOption,
    capital: CapitalOption,
    strategy: StrategyOption = None,
    timeframe: TimeframeOption = "1d",
    commission_per_share: CommissionPerShareOption = None,
    commission_pct: CommissionPctOption = None,
    commission_min: CommissionMinOption = None,
    slippage_bps: SlippageOption = None,
    max_volume_pct: MaxVolumeOption = None,
    allow_short: AllowShortOption = False,
    warmup: WarmupOption = 0,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", metavar="KEY=VALUE", help="Strategy parameter; repeat."),
    ] = None,
    report: ReportOption = None,
    csv_dir: CsvOption = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            metavar="URL",
            help="Run on this server (the strategy stays here; only orders travel). "
            "Default: in this process, on the local bar store.",
            show_default=False,
        ),
    ] = None,
    window: Annotated[
        int,
        typer.Option(
            "--window",
            min=1,
            max=MAX_WINDOW,
            metavar="BARS",
            help="With --server: bars the server may send at once; only the bars on which "
            "the strategy places or cancels orders cost a round trip. 1: one bar at a time.",
        ),
    ] = DEFAULT_WINDOW,
    api_key: ApiKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run a strategy over historical bars, then print metrics and trades."""
    params = _params(param or [])
    strategy_class = load_strategy_class(file, strategy)
    universe = symbols_of(symbols)
    check_output_paths(report, csv_dir)
    auth = None
    if server is not None:
        try:
            auth = auth_client(ServerAddress.parse(server).http_url, api_key, TokenCache())
        except (SimuTradorError, ValueError) as exc:
            if isinstance(exc, SimuTradorError):
                fail_with(exc, "--server")
            raise typer.BadParameter(str(exc), param_hint="--server") from None
    # Under --json, stdout is the JSON alone: what the strategy prints goes to stderr.
    quiet = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    try:
        with quiet, _progress(enabled=not as_json and err.is_terminal) as on_progress:
            results = run_backtest(
                strategy_class,
                universe,
                start,
                end,
                capital,
                timeframe,
                params=params,
                auth=auth,
                warmup_bars=warmup,
                on_progress=on_progress,
                window=window,
                commission_per_share=commission_per_share,
                commission_pct=commission_pct,
                commission_min=commission_min,
                slippage_bps=slippage_bps,
                max_volume_pct=max_volume_pct,
                allow_short=allow_short,
            )
    except SimuTradorError as exc:
        fail_with(exc, "--server")
    except DomainError as exc:
        fail(exc.code, exc.message, exc.details)
    except SettingsError:
        raise  # a bad SIMUTRADOR_* setting, reported by the root command (exit 2)
    except Exception as exc:  # the user's strategy raised: show where, in their file
        _strategy_failed(exc, file)
    write_outputs(results, report, csv_dir)
    if as_json:
        print_json(results_document(results))
        return
    print_results(results)
    print_outputs(report, csv_dir)


class _progress:
    """A rich progress bar fed by the runner's progress callback (simulated date, bars/s)."""

    def __init__(self, *, enabled: bool) -> None:
        self._enabled = enabled
        self._bar = Progress(
            TextColumn("[bold]{task.fields[day]}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]} bars/s"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        )
        self._task: Any = None
        self._began = time.perf_counter()

    def __enter__(self) -> Any:
        if not self._enabled:
            return None
        self._bar.start()
        self._task = self._bar.add_task("run", total=None, day="", rate="—")
        return self._update

    def _update(self, done: int, total: int, sim_time: datetime) -> None:
        elapsed = max(time.perf_counter() - self._began, 1e-9)
        self._bar.update(
            self._task,
            completed=done,
            total=total,
            day=sim_time.astimezone(UTC).date().isoformat(),
            rate=f"{done / elapsed:,.0f}",
        )

    def __exit__(self, *exc: object) -> None:
        if self._enabled:
            self._bar.stop()


def _strategy_failed(exc: Exception, file: Path) -> None:
    target = str(file.resolve())
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == target]
    err.print(f"[bold red]STRATEGY_ERROR[/bold red]: {escape(type(exc).__name__)}: {exc}")
    for frame in frames:
        err.print(f"  {escape(frame.filename)}:{frame.lineno} in {escape(frame.name)}")
        if frame.line:
            err.print(f"    {escape(frame.line)}")
    raise typer.Exit(1)
