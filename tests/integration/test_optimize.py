"""`simutrador optimize` and `optimize(...)` in process against a home holding the synthetic
sample: the JSON shape, trials equal to single runs, the same results whatever the number
of workers, bad input (exit 2, nothing run), failing trials, a worker killed mid-trial,
walk-forward, Bayesian studies that resume, the report and CSV, and trials on a server."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from plotly.offline import get_plotlyjs
from typer.testing import CliRunner, Result

from domain.limits import PLAN_DEFAULTS, Plan
from entrypoints.cli.app import app
from entrypoints.sdk import AuthClient, Context, Strategy, run_backtest
from entrypoints.sdk.loading import load_strategy
from entrypoints.sdk.optimize import InvalidSweep, OptimizeResults, optimize
from entrypoints.sdk.remote import RemoteDriver
from tests.fakes import METRIC_NAMES
from tests.integration.conftest import ServerFactory

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SMA = EXAMPLES / "sma_cross.py"
START, END = "2022-01-01", "2022-12-31"
SPAN = ["--symbols", "AAPL", "--start", START, "--end", END, "--capital", "10000"]
TWO_YEARS = ["--symbols", "AAPL", "--start", "2021-01-01", "--end", END, "--capital", "10000"]
GRID = ["-p", "fast=5..15:5", "-p", "slow=20,40", "--constraint", "fast < slow"]
GRID_ORDER = [
    {"fast": 5, "slow": 20},
    {"fast": 5, "slow": 40},
    {"fast": 10, "slow": 20},
    {"fast": 10, "slow": 40},
    {"fast": 15, "slow": 20},
    {"fast": 15, "slow": 40},
]

LOGGING = """
import os
from pathlib import Path

from entrypoints.sdk import Strategy

LOG = Path(__file__).with_name("ran.log")


class Logged(Strategy):
    def on_start(self, ctx):
        self.n = int(ctx.params.get("n", 1))
        self.m = int(ctx.params.get("m", 1))
        with LOG.open("a") as log:
            log.write(f"{self.n},{self.m}\\n")
        self.bought = False
        self.count = 0
{extra}
    def on_bar(self, ctx, bars):
        self.count += 1
        if not self.bought:
            ctx.buy("AAPL", quantity=self.n * self.m)
            self.bought = True
        elif self.count % (self.n + 3) == 0 and ctx.position("AAPL"):
            ctx.close("AAPL")
            self.bought = False
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, sample_bars: Path) -> Path:
    path = tmp_path_factory.mktemp("optimize-home")
    shutil.copyfile(sample_bars, path / "bars.db")
    return path


@pytest.fixture
def env(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SIMUTRADOR_HOME", str(home))
    return home


def cli(home: Path, *args: str) -> Result:
    result = CliRunner().invoke(
        app, ["optimize", *args], env={"SIMUTRADOR_HOME": str(home), "COLUMNS": "160"}
    )
    assert "Traceback" not in result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def strategy_file(folder: Path, extra: str = "") -> Path:
    path = folder / "logged.py"
    path.write_text(LOGGING.replace("{extra}", extra))
    return path


def ran(path: Path) -> list[str]:
    log = path.with_name("ran.log")
    return log.read_text().splitlines() if log.exists() else []


def sweep(strategy: Any, **options: Any) -> OptimizeResults:
    options.setdefault("params", {"n": "1..3", "m": "1,2"})
    options.setdefault("workers", 2)
    return optimize(strategy, "AAPL", START, END, 10_000, **options)


# ---------------------------------------------------------------- results


def test_json_lists_every_trial_in_grid_order_and_the_best(home: Path) -> None:
    result = cli(home, str(SMA), *SPAN, *GRID, "--workers", "2", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [t["params"] for t in out["trials"]] == GRID_ORDER
    for trial in out["trials"]:
        assert set(trial) == {"params", "metrics", "status", "error"}
        assert trial["status"] == "completed"
        assert trial["error"] is None
        assert set(trial["metrics"]) == set(METRIC_NAMES)
    sharpes = [t["metrics"]["sharpe_ratio"] for t in out["trials"]]
    top = out["trials"][sharpes.index(max(sharpes))]
    assert out["best"]["params"] == top["params"]
    assert out["best"]["metrics"] == top["metrics"]
    assert 0 <= out["best"]["deflated_sharpe_ratio"] <= 1
    assert (out["metric"], out["direction"], out["completed"], out["failed"]) == (
        "sharpe_ratio",
        "maximize",
        6,
        0,
    )


def test_each_trial_is_the_single_run_of_its_parameters(env: Path) -> None:
    results = sweep(
        load_strategy(SMA),
        params={"fast": [5, 10], "slow": [30]},
        minimize="max_drawdown_pct",
        commission_pct="0.001",
    )
    for trial in results.trials:
        alone = run_backtest(
            load_strategy(SMA),
            "AAPL",
            START,
            END,
            10_000,
            params=dict(trial.params),
            commission_pct="0.001",
        )
        assert trial.metrics["final_equity"] == alone.metrics.final_equity
        assert trial.metrics["sharpe_ratio"] == alone.metrics.sharpe_ratio
        assert list(trial.equity) == alone.equity_curve
    drawdowns = [t.metrics["max_drawdown_pct"] for t in results.trials]
    assert results.best is not None
    assert results.best.metrics["max_drawdown_pct"] == min(d for d in drawdowns if d is not None)


def test_the_results_do_not_depend_on_the_number_of_workers(env: Path, tmp_path: Path) -> None:
    strategy = load_strategy(strategy_file(tmp_path))
    one = sweep(strategy, workers=1, maximize="final_equity")
    three = sweep(strategy, workers=3, maximize="final_equity")
    assert one.to_json() == three.to_json()
    assert [t.equity for t in one.trials] == [t.equity for t in three.trials]
    grid = one.heatmap("n", "m")  # one trial per cell here: each cell is its trial's value
    assert (grid.xs, grid.ys) == ((1, 2, 3), (1, 2))
    for trial in one.trials:
        column, row = grid.xs.index(trial.params["n"]), grid.ys.index(trial.params["m"])
        assert grid.values[row][column] == float(trial.metrics["final_equity"])  # type: ignore[arg-type]
    with pytest.raises(InvalidSweep):
        one.heatmap("n", "q")


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["-p", "n=1,2", "-p", "q=1..3"], "unknown parameter(s) q"),
        (["-p", "n=1,2", "--constraint", "n < k"], "unknown name(s) k"),
        (["-p", "n=1,2", "--constraint", "n > 5"], "removes all 2"),
        (["-p", "n=1,2", "--maximize", "sharpe"], "unknown metric 'sharpe'"),
        (["-p", "n=1,2", "--trials", "5"], "--trials is for"),
        (["-p", "n=3..1"], "ends before it starts"),
        (["-p", "n=1,2", "--method", "genetic"], "unknown method"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_runs(
    home: Path, tmp_path: Path, args: list[str], says: str
) -> None:
    path = strategy_file(tmp_path)
    result = cli(home, str(path), *SPAN, *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("INVALID_SWEEP: ")
    assert says in lines[0]
    assert ran(path) == []


# ---------------------------------------------------------------- faults


def test_a_failing_trial_is_failed_with_its_line_and_the_sweep_goes_on(
    home: Path, tmp_path: Path
) -> None:
    extra = """
    def on_finish(self, ctx, results):
        if self.n == 2:
            raise ZeroDivisionError("two is right out")
"""
    path = strategy_file(tmp_path, extra)
    line = (
        path.read_text()
        .splitlines()
        .index('            raise ZeroDivisionError("two is right out")')
        + 1
    )
    result = cli(home, str(path), *SPAN, "-p", "n=1..3", "--json", "--workers", "2")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [t["status"] for t in out["trials"]] == ["completed", "failed", "completed"]
    failed = out["trials"][1]
    assert failed["metrics"] is None
    assert failed["error"] == f"{path.resolve()}:{line}: ZeroDivisionError: two is right out"
    assert out["failed"] == 1
    assert out["best"]["params"]["n"] in (1, 3)


def test_a_worker_killed_mid_trial_costs_that_trial_one_retry(env: Path, tmp_path: Path) -> None:
    extra = """
    def on_finish(self, ctx, results):
        marker = LOG.with_name("killed")
        if self.n == 2 and self.m == 2 and not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), 9)
"""
    path = strategy_file(tmp_path, extra)
    results = sweep(load_strategy(path))
    assert (tmp_path / "killed").exists()
    assert [t.status.value for t in results.trials] == ["completed"] * 6
    attempts = {(t.params["n"], t.params["m"]): t.attempts for t in results.trials}
    assert attempts.pop((2, 2)) == 2
    assert set(attempts.values()) == {1}
    assert sorted(ran(path)).count("2,2") == 2
    again = tmp_path / "again"
    again.mkdir()
    clean = sweep(load_strategy(strategy_file(again)))
    assert clean.to_json()["trials"] == results.to_json()["trials"]


def test_an_interrupt_keeps_the_trials_that_completed(env: Path, tmp_path: Path) -> None:
    def interrupt(done: int, total: int, best: Any) -> None:
        if done == 2:
            raise KeyboardInterrupt

    results = sweep(load_strategy(strategy_file(tmp_path)), workers=1, on_progress=interrupt)
    assert results.interrupted
    assert [t.number for t in results.trials] == [0, 1]
    assert results.to_json()["interrupted"] is True


# ---------------------------------------------------------------- walk-forward


def test_walk_forward_runs_each_folds_best_out_of_sample_and_stitches_them(
    home: Path,
) -> None:
    result = cli(
        home, str(SMA), *TWO_YEARS, "-p", "fast=5,10", "-p", "slow=20,30",
        "--walk-forward", "3", "--json", "--workers", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    folds = out["walk_forward"]["folds"]
    assert [f["fold"] for f in folds] == [1, 2, 3]
    assert len(out["trials"]) == 12
    assert {t["fold"] for t in out["trials"]} == {1, 2, 3}
    for previous, fold in itertools.pairwise(folds):
        assert previous["test"]["end"] < fold["train"]["start"]
    for fold in folds:
        assert fold["train"]["end"] < fold["test"]["start"]
        mine = [t for t in out["trials"] if t["fold"] == fold["fold"]]
        sharpes = [t["metrics"]["sharpe_ratio"] for t in mine]
        assert fold["best_params"] == mine[sharpes.index(max(sharpes))]["params"]
        assert fold["out_of_sample"] is not None
    curve = out["walk_forward"]["equity_curve"]
    assert Decimal(curve[0][1]) == 10_000
    assert curve[0][0] == folds[0]["test"]["start"]
    assert [d for d, _ in curve] == sorted({d for d, _ in curve})
    growth = Decimal(1)
    for fold in folds:
        growth *= Decimal(fold["out_of_sample"]["final_equity"]) / Decimal(10_000)
    stitched = Decimal(out["walk_forward"]["metrics"]["final_equity"])
    assert stitched == pytest.approx(Decimal(10_000) * growth, abs=Decimal("0.01"))
    assert Decimal(curve[-1][1]) == stitched


# ---------------------------------------------------------------- Bayesian


def test_a_bayes_study_is_seeded_and_resumes_without_rerunning(env: Path, tmp_path: Path) -> None:
    path = strategy_file(tmp_path)
    space = {"n": "1..6", "m": "1..4"}
    first = sweep(
        load_strategy(path), params=space, method="bayes", trials=5, seed=11, study="resume-me"
    )
    assert (env / "studies" / "resume-me.db").exists()
    assert len(ran(path)) == 5
    again = sweep(
        load_strategy(path), params=space, method="bayes", trials=8, seed=11, study="resume-me"
    )
    best = again.best
    assert best is not None
    rerun = 1 if best.number < 5 else 0  # a resumed best runs once more for its equity curve
    assert len(ran(path)) == 5 + 3 + rerun
    assert best.equity
    assert [t.params for t in again.trials][:5] == [t.params for t in first.trials]
    assert len({tuple(sorted(t.params.items())) for t in again.trials}) == 8
    other = sweep(load_strategy(path), params=space, method="bayes", trials=5, seed=11, workers=1)
    assert [t.params for t in other.trials] == [t.params for t in first.trials]


# ---------------------------------------------------------------- report and CSV


def test_report_and_csv_hold_every_trial(home: Path, tmp_path: Path) -> None:
    report, folder = tmp_path / "sweep.html", tmp_path / "csv"
    result = cli(
        home, str(strategy_file(tmp_path)), *SPAN, "-p", "n=1..3", "-p", "m=1,2", "-p", "k=1,2",
        "--report", str(report), "--csv", str(folder), "--workers", "2",
    )  # fmt: skip
    assert result.exit_code == 2, result.output  # k is not a parameter the strategy reads
    result = cli(
        home, str(strategy_file(tmp_path)), *SPAN, "-p", "n=1..3", "-p", "m=1,2",
        "--report", str(report), "--csv", str(folder), "--workers", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Best: " in result.stdout
    assert "deflated over 6 trials" in result.stdout
    page = report.read_text()
    assert get_plotlyjs()[:500] in page  # offline: the library itself is in the page
    assert page.count("Plotly.newPlot") == 2  # the heatmap, the best equity curve
    assert "Top trials" in page
    assert "Equity of the best trial" in page
    rows = (folder / "trials.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert header[:5] == ["fold", "number", "status", "n", "m"]
    assert set(METRIC_NAMES) <= set(header)
    assert len(rows) == 7


# ---------------------------------------------------------------- on a server


@pytest.fixture
def server_key(server_factory: ServerFactory) -> tuple[str, str]:
    server = server_factory()
    return server.http_url, server.create_api_key("sweeper", Plan.PROFESSIONAL)


def test_trials_on_a_server_equal_the_local_ones(env: Path, server_key: tuple[str, str]) -> None:
    url, key = server_key
    strategy = load_strategy(SMA)
    params = {"fast": [5, 10], "slow": [20, 30]}
    remote = sweep(strategy, params=params, server=url, api_key=key, workers=None)
    local = sweep(strategy, params=params)
    assert remote.to_json() == local.to_json()
    assert [t.equity for t in remote.trials] == [t.equity for t in local.trials]


def test_a_trial_at_the_servers_running_limit_waits_instead_of_failing(
    env: Path, server_factory: ServerFactory
) -> None:
    """One running simulation allowed, and another session holds it as the sweep starts:
    the sweep's trial cannot run until that one is deleted, and then completes."""
    one = dataclasses.replace(PLAN_DEFAULTS[Plan.PROFESSIONAL], max_running_simulations=1)
    server = server_factory(plan_limits={**PLAN_DEFAULTS, Plan.PROFESSIONAL: one})
    key = server.create_api_key("sweeper", Plan.PROFESSIONAL)
    holding, released = threading.Event(), threading.Event()

    async def hold() -> None:
        auth = AuthClient(server.http_url, key, use_cached_login=False)
        driver = RemoteDriver(auth, ["AAPL"], START, END, Decimal(10_000))
        started, _ = await driver.start()
        holding.set()
        await asyncio.sleep(2.0)
        await driver.client.delete_session(started.session_id)
        released.set()
        await driver.close()

    holder = threading.Thread(target=lambda: asyncio.run(hold()))
    holder.start()
    assert holding.wait(60)
    results = sweep(
        load_strategy(SMA), params={"fast": [5], "slow": [20]}, server=server.http_url, api_key=key
    )
    holder.join(60)
    assert released.is_set()
    assert [t.status.value for t in results.trials] == ["completed"]


def test_ctrl_c_stops_the_command_and_prints_what_completed(home: Path, tmp_path: Path) -> None:
    extra = """
    def on_finish(self, ctx, results):
        if self.n > 1:
            import time
            time.sleep(120)
"""
    path = strategy_file(tmp_path, extra)
    command = [
        str(Path(sys.executable).with_name("simutrador")), "optimize", str(path), *SPAN,
        "-p", "n=1..3", "--workers", "1", "--json",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        env={**os.environ, "SIMUTRADOR_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(line.startswith("2,") for line in ran(path)):
            assert time.monotonic() < deadline, "the second trial never started"
            assert process.poll() is None, process.communicate()
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    out = json.loads(stdout)
    assert out["interrupted"] is True
    assert [(t["params"], t["status"]) for t in out["trials"]] == [({"n": 1}, "completed")]


def test_a_strategy_defined_inside_a_function_is_refused_before_anything_runs(env: Path) -> None:
    class Local(Strategy):
        def on_start(self, ctx: Context) -> None:
            self.n = ctx.params.get("n")

    with pytest.raises(InvalidSweep, match="inside a function"):
        sweep(Local, params={"n": [1, 2]})
