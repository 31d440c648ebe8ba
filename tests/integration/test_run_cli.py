"""`simutrador run FILE.py` in process against a home holding the synthetic sample: JSON in
the protocol's shapes, the HTML report, --param and --strategy, and every way a strategy
file can fail (exit 1, `CODE: message`, never a traceback)."""

from __future__ import annotations

import json
import re
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from entrypoints.cli.app import app
from entrypoints.sdk import run_backtest
from entrypoints.sdk.loading import load_strategy
from tests.fakes import METRIC_NAMES

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SPAN = ["--start", "2021-01-01", "--end", "2023-12-31", "--capital", "10000"]
METRICS = set(METRIC_NAMES)
TRADE_FIELDS = {
    "symbol",
    "side",
    "quantity",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "pnl",
    "return_pct",
    "commission",
}
ISO_INSTANT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


class RunCli:
    """`simutrador run …` in process against one home."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {"SIMUTRADOR_HOME": str(home), "COLUMNS": "120"}
        self.runner = CliRunner()

    def __call__(self, *args: str) -> Result:
        result = self.runner.invoke(app, ["run", *args], env=self.env)
        assert "Traceback" not in result.output
        if result.exception is not None:  # Typer exits via SystemExit; anything else is a bug
            assert isinstance(result.exception, SystemExit), repr(result.exception)
        return result

    def json(self, *args: str) -> Any:
        result = self(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def in_process(self, file: Path, symbols: list[str], **options: Any) -> Any:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SIMUTRADOR_HOME", str(self.home))
            return run_backtest(
                load_strategy(file), symbols, "2021-01-01", "2023-12-31", 10000, **options
            )


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory, sample_bars: Path) -> RunCli:
    home = tmp_path_factory.mktemp("run-home")
    shutil.copyfile(sample_bars, home / "bars.db")
    return RunCli(home)


def strategy_file(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text("from entrypoints.sdk import Strategy\n\n\n" + body)
    return path


# ---------------------------------------------------------------- results


def test_json_output_has_the_protocol_shapes_and_the_in_process_results(cli: RunCli) -> None:
    sma = EXAMPLES / "sma_cross.py"
    out = cli.json(
        str(sma),
        "--symbols",
        "AAPL",
        *SPAN,
        "--param",
        "fast=5",
        "--param",
        "slow=20",
        "--commission-pct",
        "0.001",
    )
    assert set(out) == {
        "session_id",
        "metrics",
        "trades",
        "equity_curve",
        "executions",
        "total_ticks",
        "wall_time_ms",
        "warnings",
        "synthetic_symbols",
        "rejections",
    }
    metrics, trades, curve = out["metrics"], out["trades"], out["equity_curve"]
    assert set(metrics) == METRICS
    assert isinstance(metrics["final_equity"], str)  # money travels as a decimal string
    assert isinstance(metrics["total_commission"], str)
    assert Decimal(metrics["total_commission"]) > 0
    assert metrics["total_trades"] == len(trades) > 2
    for trade in trades:
        assert set(trade) == TRADE_FIELDS
        assert trade["symbol"] == "AAPL"
        assert trade["side"] == "long"
        assert ISO_INSTANT.match(trade["entry_time"])
        assert ISO_INSTANT.match(trade["exit_time"])
        assert trade["entry_time"] < trade["exit_time"]
        pnl = Decimal(trade["pnl"])
        gross = (Decimal(trade["exit_price"]) - Decimal(trade["entry_price"])) * Decimal(
            trade["quantity"]
        )
        assert pnl == gross - Decimal(trade["commission"])
        assert isinstance(trade["return_pct"], float)
    assert len(curve) == out["total_ticks"] > 700
    assert all(re.match(r"^\d{4}-\d\d-\d\d$", day) for day, _ in curve)
    assert [day for day, _ in curve] == sorted(day for day, _ in curve)
    assert curve[0] == ["2021-01-04", "10000.00"]  # the first trading day: the capital
    assert Decimal(curve[-1][1]) == Decimal(metrics["final_equity"])

    same = cli.in_process(sma, ["AAPL"], params={"fast": 5, "slow": 20}, commission_pct="0.001")
    assert [Decimal(t["pnl"]) for t in trades] == [t.pnl for t in same.trades]
    assert Decimal(metrics["final_equity"]) == same.metrics.final_equity
    assert metrics["sharpe_ratio"] == pytest.approx(same.metrics.sharpe_ratio)


def test_json_executions_is_the_number_of_fills(cli: RunCli) -> None:
    bracket = EXAMPLES / "bracket_orders.py"
    out = cli.json(str(bracket), "--symbols", "AAPL", *SPAN)
    same = cli.in_process(bracket, ["AAPL"])
    fills = [r for r in same.executions if r.fill_quantity]
    assert len(fills) < len(same.executions)  # the run has cancels: the counts differ
    assert out["executions"] == len(fills)


def test_the_table_output_shows_the_metrics_and_the_trades(cli: RunCli) -> None:
    result = cli(str(EXAMPLES / "sma_cross.py"), "--symbols", "AAPL", *SPAN)
    assert result.exit_code == 0, result.output
    for label in ("Total return", "Sharpe ratio", "Max drawdown", "Final equity", "Trades"):
        assert label in result.stdout
    assert "Closed trades" in result.stdout
    assert "bars in" in result.stdout


def test_report_writes_one_self_contained_html_file(cli: RunCli, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    result = cli(
        str(EXAMPLES / "bracket_orders.py"),
        "--symbols",
        "AAPL,MSFT",
        *SPAN,
        "--report",
        str(report),
    )
    assert result.exit_code == 0, result.output
    assert f"Report written to {report}" in result.stdout.replace("\n", "")
    page = report.read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert "<html" in page
    for label in ("Total return", "Sharpe ratio", "Max drawdown", "Win rate", "Commission"):
        assert f"<th>{label}</th>" in page
    assert "Breakout on AAPL, MSFT" in page
    assert not re.search(r"<script[^>]*\bsrc\s*=\s*[\"']?(https?:)?//", page, re.IGNORECASE)
    assert "<script" in page
    assert "Plotly.newPlot" in page
    assert len(page) > 1_000_000  # plotly.js itself is inlined


def test_a_report_path_that_cannot_be_written_is_refused_before_the_run(
    cli: RunCli, tmp_path: Path
) -> None:
    report = tmp_path / "missing-dir" / "report.html"
    result = cli(
        str(EXAMPLES / "buy_and_hold.py"), "--symbols", "AAPL", *SPAN, "--report", str(report)
    )
    assert result.exit_code == 2  # a usage error, found before any bar is simulated
    assert "missing-dir" in result.stderr
    assert "--report" in result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------- params and class choice

PARAMS_ECHO = """import json


class Echo(Strategy):
    def on_start(self, ctx):
        out = ctx.params.pop("out")
        typed = {k: f"{type(v).__name__}:{v}" for k, v in ctx.params.items()}
        with open(out, "w") as f:
            json.dump(typed, f)
"""


def test_params_reach_the_strategy_typed(cli: RunCli, tmp_path: Path) -> None:
    echo = strategy_file(tmp_path, "echo.py", PARAMS_ECHO)
    seen = tmp_path / "params.json"
    result = cli(
        str(echo),
        "--symbols",
        "AAPL",
        *SPAN,
        "-p",
        f"out={seen}",
        "--param",
        "n=3",
        "--param",
        "ratio=0.25",
        "--param",
        " name = abc ",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(seen.read_text()) == {
        "n": "int:3",
        "ratio": "Decimal:0.25",
        "name": "str:abc",
    }


def test_a_param_without_a_value_is_a_usage_error(cli: RunCli) -> None:
    result = cli(str(EXAMPLES / "sma_cross.py"), "--symbols", "AAPL", *SPAN, "--param", "fast")
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.output


TWO_STRATEGIES = """class First(Strategy):
    pass


class Second(Strategy):
    def on_bar(self, ctx, bars):
        if not ctx.position("AAPL"):
            ctx.buy("AAPL", 1)
"""


def test_a_file_with_two_strategies_needs_strategy(cli: RunCli, tmp_path: Path) -> None:
    two = strategy_file(tmp_path, "two.py", TWO_STRATEGIES)
    result = cli(str(two), "--symbols", "AAPL", *SPAN)
    assert result.exit_code == 1
    assert "BAD_STRATEGY_FILE" in result.stderr
    assert "First, Second" in result.stderr
    assert "--strategy" in result.stderr
    chosen = cli.json(str(two), "--symbols", "AAPL", *SPAN, "--strategy", "Second")
    assert chosen["executions"] == 1  # Second bought once and held
    wrong = cli(str(two), "--symbols", "AAPL", *SPAN, "--strategy", "Third")
    assert wrong.exit_code == 1
    assert "Third" in wrong.stderr
    assert "First, Second" in wrong.stderr


# ---------------------------------------------------------------- failures


def test_a_missing_file_is_a_clean_error(cli: RunCli, tmp_path: Path) -> None:
    missing = tmp_path / "nope.py"
    result = cli(str(missing), "--symbols", "AAPL", *SPAN)
    assert result.exit_code == 1
    assert "BAD_STRATEGY_FILE" in result.stderr
    assert "no such file" in result.stderr


def test_a_syntax_error_names_the_line(cli: RunCli, tmp_path: Path) -> None:
    broken = strategy_file(tmp_path, "broken.py", "class Broken(Strategy)\n    pass\n")
    result = cli(str(broken), "--symbols", "AAPL", *SPAN)
    assert result.exit_code == 1
    assert "BAD_STRATEGY_FILE" in result.stderr
    assert f"{broken}:4: syntax error" in result.stderr.replace("\n", "")


def test_a_file_without_a_strategy_is_a_clean_error(cli: RunCli, tmp_path: Path) -> None:
    empty = strategy_file(tmp_path, "empty.py", "X = 1\n")
    result = cli(str(empty), "--symbols", "AAPL", *SPAN)
    assert result.exit_code == 1
    assert "defines 0 Strategy subclasses" in result.stderr


CRASHES = """class Crashes(Strategy):
    def on_bar(self, ctx, bars):
        if len(ctx.history("AAPL", 3)) == 3:
            ratio = 1 / 0
"""


def test_a_strategy_that_raises_shows_where_in_the_users_file(cli: RunCli, tmp_path: Path) -> None:
    crashes = strategy_file(tmp_path, "crashes.py", CRASHES)
    result = cli(str(crashes), "--symbols", "AAPL", *SPAN)
    assert result.exit_code == 1
    err = result.stderr
    assert "STRATEGY_ERROR" in err
    assert "ZeroDivisionError: division by zero" in err
    assert f"{crashes}:7 in on_bar" in err.replace("\n", "")
    assert "ratio = 1 / 0" in err
    assert "Traceback" not in err
    assert "backtest.py" not in err  # only the user's frames


@pytest.mark.parametrize(
    ("symbols", "code"),
    [("TSLA", "DATA_UNAVAILABLE"), ("AAPL,TSLA", "DATA_UNAVAILABLE"), ("NOPE", "INVALID_SYMBOL")],
)
def test_symbols_the_home_cannot_serve_are_refused(cli: RunCli, symbols: str, code: str) -> None:
    result = cli(str(EXAMPLES / "buy_and_hold.py"), "--symbols", symbols, *SPAN)
    assert result.exit_code == 1
    assert result.stderr.strip().startswith(f"{code}: ")
    assert result.stdout == ""
