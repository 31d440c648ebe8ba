"""The HTML report in a real browser (Debian's headless chromium, driven by Playwright): its
scripts run without an error, offline, and draw every chart: candles per symbol, the
strategy's plotted averages over them, and the equity."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from entrypoints.report import write_report
from entrypoints.sdk import run_backtest
from entrypoints.sdk.loading import load_strategy

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium (.ci/run installs it)"
)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, sample_bars: Path) -> Path:
    """sma_cross (which plots its averages) over two symbols of the synthetic sample."""
    home = tmp_path_factory.mktemp("report-home")
    shutil.copyfile(sample_bars, home / "bars.db")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIMUTRADOR_HOME", str(home))
        results = run_backtest(
            load_strategy(EXAMPLES / "sma_cross.py"),
            ["AAPL", "MSFT"],
            "2021-01-01",
            "2023-12-31",
            10_000,
            commission_pct="0.001",
        )
    assert results.trades, "the report should have trades to draw"
    path = home / "report.html"
    write_report(results, path)
    return path


@pytest.fixture(scope="module")
def browser(report: Path) -> Iterator[Browser]:
    """Started after the run: Playwright's sync API keeps an event loop running."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


def test_the_report_opens_without_a_script_error(browser: Browser, report: Path) -> None:
    page = browser.new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("request", lambda request: requests.append(request.url))
    page.goto(report.as_uri())
    page.wait_for_selector(".plotly .main-svg")
    drawn = page.evaluate(
        """() => {
            const plot = document.querySelector('.js-plotly-plot');
            return plot.data.map(t => [t.type || 'scatter', t.name]);
        }"""
    )
    page.close()
    assert errors == []
    assert [url for url in requests if not url.startswith("file:")] == []  # offline
    types = [kind for kind, _ in drawn]
    names = [name for _, name in drawn]
    assert types.count("candlestick") == 2
    assert types.count("bar") == 2  # a volume panel per symbol
    for name in ("Equity", "Buy & hold (equal-weighted)", "AAPL sma(10)", "MSFT sma(20)"):
        assert name in names
    assert "Synthetic sample:" in report.read_text(encoding="utf-8")
