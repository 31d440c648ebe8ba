"""What `simutrador run` gives back besides the metrics: CSV files, the session's warnings
(synthetic data named as such), refused orders, a strategy's own prints kept out of --json,
one-line errors for a strategy file that fails on import, and a fast, accurate failure when
--server has nothing listening."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from entrypoints.cli.app import app
from entrypoints.server.embedded import EmbeddedServer
from tests.fakes import METRIC_NAMES
from tests.integration.test_run_cli import EXAMPLES, SPAN, RunCli, strategy_file


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory, sample_bars: Path) -> RunCli:
    home = tmp_path_factory.mktemp("run-outputs-home")
    shutil.copyfile(sample_bars, home / "bars.db")
    return RunCli(home)


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_csv_holds_what_json_holds(cli: RunCli, tmp_path: Path) -> None:
    args = [str(EXAMPLES / "sma_cross.py"), "--symbols", "AAPL", *SPAN, "--commission-pct", "0.001"]
    document = cli.json(*args)
    target = tmp_path / "out"  # made by the command
    result = cli(*args, "--csv", str(target))
    assert result.exit_code == 0, result.output
    assert f"CSV files written to {target}" in result.stdout.replace("\n", "")
    assert sorted(p.name for p in target.iterdir()) == [
        "equity.csv",
        "executions.csv",
        "stats.csv",
        "trades.csv",
    ]
    equity = rows(target / "equity.csv")
    assert [(r["date"], r["equity"]) for r in equity] == [
        tuple(p) for p in document["equity_curve"]
    ]
    assert float(equity[0]["drawdown_pct"]) == 0.0
    assert min(float(r["drawdown_pct"]) for r in equity) == pytest.approx(
        document["metrics"]["max_drawdown_pct"]
    )
    trades = rows(target / "trades.csv")
    assert len(trades) == len(document["trades"]) > 2
    for row, trade in zip(trades, document["trades"], strict=True):
        for field in ("entry_time", "exit_time", "entry_price", "exit_price", "pnl"):
            assert row[field] == str(trade[field])
        assert float(row["duration_days"]).is_integer()  # daily bars: whole days
    assert (
        max(float(r["duration_days"]) for r in trades)
        == (document["metrics"]["max_trade_duration_days"])
    )
    fills = rows(target / "executions.csv")
    assert sum(1 for r in fills if Decimal(r["fill_quantity"]) > 0) == document["executions"]
    stats = {r["metric"]: r["value"] for r in rows(target / "stats.csv")}
    assert set(stats) == set(METRIC_NAMES)
    assert Decimal(stats["final_equity"]) == Decimal(document["metrics"]["final_equity"])
    assert float(stats["sharpe_ratio"]) == document["metrics"]["sharpe_ratio"]


def test_a_csv_folder_whose_parent_is_missing_is_refused_before_the_run(
    cli: RunCli, tmp_path: Path
) -> None:
    result = cli(
        str(EXAMPLES / "buy_and_hold.py"),
        "--symbols",
        "AAPL",
        *SPAN,
        "--csv",
        str(tmp_path / "missing" / "out"),
    )
    assert result.exit_code == 2
    assert "--csv" in result.stderr


def test_the_sessions_warnings_and_synthetic_data_are_said(cli: RunCli) -> None:
    args = [str(EXAMPLES / "buy_and_hold.py"), "--symbols", "AAPL"]
    span = ["--start", "2025-06-01", "--end", "2031-01-31", "--capital", "10000"]
    table = cli(*args, *span)
    assert table.exit_code == 0, table.output
    text = table.stdout.replace("\n", " ")
    assert "warning: AAPL has no data after" in text
    assert "synthetic data: AAPL runs on synthetic data" in text
    document = cli.json(*args, *span)
    assert document["synthetic_symbols"] == ["AAPL"]
    assert any("has no data after" in w for w in document["warnings"])


REFUSED = """class Refused(Strategy):
    def on_bar(self, ctx, bars):
        ctx.buy("AAPL", quantity=-1)
        ctx.buy("AAPL", quantity=1, type="limit")
"""


def test_refused_orders_are_counted_by_code_and_listed(cli: RunCli, tmp_path: Path) -> None:
    refused = strategy_file(tmp_path, "refused.py", REFUSED)
    document = cli.json(str(refused), "--symbols", "AAPL", *SPAN)
    assert document["rejections"]
    assert {r["code"] for r in document["rejections"]} == {"INVALID_ORDER"}
    assert len(document["rejections"]) == 2 * document["total_ticks"]
    table = cli(str(refused), "--symbols", "AAPL", *SPAN)
    assert table.exit_code == 0, table.output
    count = len(document["rejections"])
    assert f"{count} orders refused (INVALID_ORDER {count})" in table.stdout
    first = document["rejections"][0]
    assert f"{first['order_id']} INVALID_ORDER: {first['message']}" in table.stdout.replace(
        "\n", " "
    )


PRINTS = """class Prints(Strategy):
    def on_bar(self, ctx, bars):
        print("bar", ctx.time)
"""


def test_a_strategys_prints_go_to_stderr_under_json(cli: RunCli, tmp_path: Path) -> None:
    prints = strategy_file(tmp_path, "prints.py", PRINTS)
    result = cli(str(prints), "--symbols", "AAPL", *SPAN, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # nothing but the JSON
    assert result.stderr.count("bar ") == document["total_ticks"]


@pytest.mark.parametrize(
    ("body", "line", "error"),
    [
        ("import talib_is_not_installed\n", 4, "ModuleNotFoundError: No module named"),
        ("X = 1\nraise RuntimeError('at the top')\n", 5, "RuntimeError: at the top"),
    ],
)
def test_a_file_failing_on_import_is_one_line(
    cli: RunCli, tmp_path: Path, body: str, line: int, error: str
) -> None:
    broken = strategy_file(tmp_path, "broken_import.py", body)
    result = cli(str(broken), "--symbols", "AAPL", *SPAN)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"BAD_STRATEGY_FILE: {broken}:{line}: {error}")


def test_stderr_never_starts_with_a_blank_line(cli: RunCli) -> None:
    ok = cli(str(EXAMPLES / "buy_and_hold.py"), "--symbols", "AAPL", *SPAN)
    assert ok.exit_code == 0
    assert not ok.stderr.startswith("\n")
    refused = cli(str(EXAMPLES / "buy_and_hold.py"), "--symbols", "TSLA", *SPAN)
    assert refused.exit_code == 1
    assert refused.stderr.startswith("DATA_UNAVAILABLE: ")


def test_data_unavailable_says_how_to_get_data(cli: RunCli) -> None:
    result = cli(str(EXAMPLES / "buy_and_hold.py"), "--symbols", "TSLA", *SPAN)
    text = result.stderr.replace("\n", " ")
    assert "simutrador data import" in text
    assert "simutrador data fetch" in text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_run_server_with_nothing_listening_fails_like_session_list(cli: RunCli) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli(
        str(EXAMPLES / "buy_and_hold.py"),
        "--symbols",
        "AAPL",
        *SPAN,
        "--server",
        url,
        "--api-key",
        "sk_test_not_used",
    )
    assert result.exit_code == 1
    err = result.stderr.replace("\n", " ")
    assert err.startswith("SERVER_UNREACHABLE: ")
    assert "gave up after 3 attempts" in err  # as `session list`, not a dozen seconds of them
    assert "--server " in err
    assert "--server-url" not in err  # an option `run` does not have


def test_run_help_fits_80_columns_without_cutting_an_option(cli: RunCli) -> None:
    result = cli.runner.invoke(app, ["run", "--help"], env={**cli.env, "COLUMNS": "80"})
    assert result.exit_code == 0
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    for option in (
        "--commission-per-share",
        "--commission-pct",
        "--commission-min",
        "--max-volume-pct",
        "--allow-short",
        "--warmup",
        "--csv",
        "--report",
    ):
        assert f" {option} " in result.stdout, option


@pytest.mark.parametrize(
    ("script", "symbols", "headline"),
    [
        ("sma_cross.py", ["MSFT"], "SmaCross on MSFT: "),
        ("buy_and_hold.py", ["MSFT", "AAPL"], "BuyAndHold on MSFT, AAPL"),
        ("bracket_orders.py", ["MSFT"], "Breakout on MSFT: "),
    ],
)
def test_examples_take_their_symbols_from_arguments_and_round_figures(
    cli: RunCli, script: str, symbols: list[str], headline: str
) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *symbols],
        env={**os.environ, "SIMUTRADOR_HOME": str(cli.home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(headline)
    figures = re.findall(r"-?[\d,]+\.\d+", done.stdout)
    assert figures, done.stdout
    assert all(len(f.split(".")[1]) == 2 for f in figures), figures  # cents and hundredths


def test_a_remote_run_and_its_session_results_take_away_the_same(
    cli: RunCli, server: EmbeddedServer, tmp_path: Path
) -> None:
    key = server.create_api_key("ann")
    args = [str(EXAMPLES / "sma_cross.py"), "--symbols", "AAPL", *SPAN, "--api-key", key]
    document = cli.json(*args, "--server", server.http_url)
    assert document["synthetic_symbols"] == ["AAPL"]  # said by the server's session too
    target, report = tmp_path / "csv", tmp_path / "report.html"
    shown = cli.runner.invoke(
        app,
        [
            "session",
            "results",
            document["session_id"],
            "--server-url",
            server.http_url,
            "--api-key",
            key,
            "--csv",
            str(target),
            "--report",
            str(report),
        ],
        env=cli.env,
    )
    assert shown.exit_code == 0, shown.output
    assert "synthetic data: AAPL runs on synthetic data" in shown.stdout.replace("\n", " ")
    trades = rows(target / "trades.csv")
    assert [(r["entry_time"], r["pnl"]) for r in trades] == [
        (t["entry_time"], t["pnl"]) for t in document["trades"]
    ]
    assert [r["equity"] for r in rows(target / "equity.csv")] == [
        value for _, value in document["equity_curve"]
    ]
    assert rows(target / "executions.csv") == []  # the server's results keep no fills
    page = report.read_text(encoding="utf-8")
    assert f"Session {document['session_id']} on AAPL" in page
    assert "Synthetic sample:" in page
