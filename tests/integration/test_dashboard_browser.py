"""The dashboard in a real browser: Debian's chromium, headless, driven by Playwright,
against a real server on loopback. One browser for the module, a fresh context (cookie
jar) per user. Every page must load without a script error or a CSP violation."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Dialog,
    Request,
    Response,
    expect,
    sync_playwright,
)

from application.auth import NewApiKey
from domain.limits import Plan
from entrypoints.sdk import AuthClient, BacktestResults, SessionClient
from entrypoints.server.embedded import EmbeddedServer
from tests.integration.webclient import (
    END,
    START,
    BackgroundLoop,
    SteppedRun,
    completed_run,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 15_000
"""Longest wait for something the page shows (it refreshes every 1-2 s)."""
MARKUP = "<img src=x onerror=alert(1)>"

expect.set_options(timeout=WAIT_MS)

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason="needs Debian's chromium (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def loop() -> Iterator[BackgroundLoop]:
    background = BackgroundLoop()
    yield background
    background.close()


class Watched:
    """A page in a context of its own, with every script error and console error seen."""

    def __init__(self, browser: Browser, server: EmbeddedServer) -> None:
        self.context = browser.new_context(base_url=server.http_url, accept_downloads=True)
        self.context.set_default_timeout(WAIT_MS)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        self.page.on("console", self._console)
        self.page.on("response", self._response)
        self.page.on("requestfailed", self._failed)

    def _console(self, message: ConsoleMessage) -> None:
        # Chromium also logs each HTTP error status as a console error; pages answered
        # 401/404 on purpose are not script errors (`_response` checks everything else).
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(f"console: {message.text}")

    def _failed(self, request: Request) -> None:
        # A load cut short by the page navigating away (a form submitted) is no failure.
        if request.failure != "net::ERR_ABORTED":
            self.errors.append(f"failed: {request.url} ({request.failure})")

    def _response(self, response: Response) -> None:
        if response.status >= 400 and response.request.resource_type != "document":
            self.errors.append(f"HTTP {response.status}: {response.url}")

    def sign_in(self, key: str) -> None:
        page = self.page
        page.goto("/")
        expect(page).to_have_url(re.compile(r"/sign-in$"))
        page.get_by_label("API key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Sessions")).to_be_visible()

    def assert_no_script_errors(self) -> None:
        assert self.errors == []

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def user(browser: Browser, shared_server: EmbeddedServer) -> Iterator[Watched]:
    watched = Watched(browser, shared_server)
    yield watched
    watched.close()


def sdk_session(
    loop: BackgroundLoop, server: EmbeddedServer, key: str, metadata: dict[str, str] | None = None
) -> str:
    """A session created through the SDK (on the background loop: Playwright's sync API
    keeps an event loop of its own on this thread)."""

    async def create() -> str:
        async with SessionClient(AuthClient(server.http_url, key)) as client:
            created = await client.create_session(["AAPL"], START, END, 100_000, metadata)
            return created.session_id

    return loop.run(create())


def backtest(server: EmbeddedServer, key: str) -> BacktestResults:
    """A whole SDK backtest, run in a thread of its own (it runs its own event loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(completed_run, server, key).result(60)


def test_sign_in_wrong_key_then_right_key_then_sign_out(
    user: Watched, shared_server: EmbeddedServer
) -> None:
    key = shared_server.create_api_key("browser-signer")
    page = user.page
    page.goto("/sign-in")
    page.get_by_label("API key").fill("sk_this_is_not_a_key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not accepted")
    expect(page).to_have_url(re.compile(r"/sign-in$"))

    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Sessions")).to_be_visible()
    expect(page.locator(".who")).to_have_text("browser-signer")
    assert "token" not in page.url
    # The token is out of reach of the page's scripts and of its storage.
    assert "simutrador_token" not in page.evaluate("document.cookie")
    assert page.evaluate("window.localStorage.length + window.sessionStorage.length") == 0
    cookie = next(c for c in user.context.cookies() if c["name"] == "simutrador_token")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/sign-in$"))
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/sign-in$"))
    user.assert_no_script_errors()


def test_an_sdk_session_appears_and_a_running_simulations_progress_moves(
    user: Watched, shared_server: EmbeddedServer, loop: BackgroundLoop
) -> None:
    key = shared_server.create_api_key("browser-watcher")
    user.sign_in(key)
    page = user.page
    page.evaluate("window.notReloaded = true")

    created = sdk_session(loop, shared_server, key)
    row = page.locator(f'tr[data-session="{created}"]')
    expect(row).to_be_visible()  # appears without a reload
    expect(row.locator(".state")).to_have_text("ready")

    run = SteppedRun(loop, shared_server, "browser-watcher")
    try:
        running = run.start()
        total = run.total_ticks
        done = run.step(3)
        running_row = page.locator(f'tr[data-session="{running}"]')
        expect(running_row.locator(".state")).to_have_text("running")
        expect(running_row.locator(".ticks")).to_have_text(f"{done} / {total}")
        assert page.evaluate("window.notReloaded") is True

        page.goto(f"/sessions/{running}")
        page.evaluate("window.notReloaded = true")
        live = page.locator("#live .ticks")
        expect(live).to_have_text(f"{done} / {total}")
        later = run.step(10)
        expect(live).to_have_text(f"{later} / {total}")
        progress = page.locator("#live progress")
        assert progress.get_attribute("value") == str(later)
        assert page.evaluate("window.notReloaded") is True
    finally:
        run.close()
    # Its connection gone, the simulation pauses; the page says so by itself.
    expect(page.locator("#live .state")).to_have_text("paused")
    user.assert_no_script_errors()


def test_a_completed_session_shows_metrics_charts_trades_and_downloads_its_csv(
    user: Watched, shared_server: EmbeddedServer, tmp_path: Path
) -> None:
    key = shared_server.create_api_key("browser-results")
    results = backtest(shared_server, key)
    user.sign_in(key)
    page = user.page
    page.locator(f'tr[data-session="{results.session_id}"] a').click()
    expect(page.get_by_role("heading", name=re.compile("Session"))).to_contain_text(
        results.session_id
    )
    metrics = page.locator("table.metrics")
    expect(metrics).to_contain_text("Sharpe ratio")
    expect(metrics).to_contain_text(f"{results.metrics.final_equity:,}")
    expect(page.locator("table.trades tbody tr")).to_have_count(len(results.trades))
    charts = page.locator('#charts[data-drawn="true"]')
    expect(charts).to_be_visible()
    assert page.locator("#charts .main-svg").count() > 0  # Plotly drew its SVG

    with page.expect_download() as started:
        page.get_by_role("link", name="Trades (CSV)").click()
    download = started.value
    assert download.suggested_filename == f"{results.session_id}-trades.csv"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    lines = saved.read_text().splitlines()
    assert lines[0].startswith("symbol,side,quantity")
    assert len(lines) == len(results.trades) + 1
    user.assert_no_script_errors()


def test_another_users_session_is_not_reachable_by_url(
    browser: Browser, shared_server: EmbeddedServer, loop: BackgroundLoop
) -> None:
    alice_key = shared_server.create_api_key("browser-alice")
    theirs = sdk_session(loop, shared_server, alice_key, {"secret_plan": "alice-only"})
    bob = Watched(browser, shared_server)
    try:
        bob.sign_in(shared_server.create_api_key("browser-bob"))
        response = bob.page.goto(f"/sessions/{theirs}")
        assert response is not None
        assert response.status == 404
        expect(bob.page.get_by_role("heading", name="Not found")).to_be_visible()
        body = bob.page.content()
        assert "alice-only" not in body
        assert "AAPL" not in body
        bob.page.goto("/")
        expect(bob.page.locator(f'tr[data-session="{theirs}"]')).to_have_count(0)
        bob.assert_no_script_errors()
    finally:
        bob.close()


def test_markup_in_metadata_shows_as_text(
    user: Watched, shared_server: EmbeddedServer, loop: BackgroundLoop
) -> None:
    key = shared_server.create_api_key("browser-markup")
    session_id = sdk_session(loop, shared_server, key, {"note": MARKUP})
    user.sign_in(key)
    page = user.page
    page.on("dialog", lambda dialog: user.dialogs.append(dialog.message))
    page.goto(f"/sessions/{session_id}")
    expect(page.locator("pre.metadata")).to_contain_text(MARKUP)
    assert page.locator("img").count() == 0
    assert user.dialogs == []
    user.assert_no_script_errors()


def test_delete_asks_first_and_then_removes_the_session(
    user: Watched, shared_server: EmbeddedServer, loop: BackgroundLoop
) -> None:
    key = shared_server.create_api_key("browser-deleter")
    session_id = sdk_session(loop, shared_server, key)
    user.sign_in(key)
    page = user.page
    page.goto(f"/sessions/{session_id}")
    answers = iter([False, True])

    def answer(dialog: Dialog) -> None:
        user.dialogs.append(dialog.message)
        if next(answers):
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", answer)
    page.get_by_role("button", name="Delete session").click()
    expect(page).to_have_url(re.compile(f"/sessions/{session_id}$"))  # dismissed: kept
    page.get_by_role("button", name="Delete session").click()
    expect(page.get_by_role("status")).to_have_text(f"Session {session_id} was deleted.")
    assert len(user.dialogs) == 2
    assert session_id in user.dialogs[0]
    expect(page.locator(f'tr[data-session="{session_id}"]')).to_have_count(0)
    user.assert_no_script_errors()


def test_market_data_marks_synthetic_symbols(user: Watched, shared_server: EmbeddedServer) -> None:
    user.sign_in(shared_server.create_api_key("browser-market"))
    page = user.page
    page.get_by_role("link", name="Market data").click()
    row = page.locator('tr[data-symbol="AAPL"]')
    expect(row).to_contain_text("synthetic")
    page.get_by_role("link", name="Sessions").click()
    page.locator("#state").select_option("completed")  # the filter submits by itself
    expect(page).to_have_url(re.compile(r"\?state=completed$"))
    user.assert_no_script_errors()


def test_a_revoked_key_sends_an_open_page_back_to_sign_in(
    user: Watched, shared_server: EmbeddedServer
) -> None:
    auth = shared_server.container.auth_service()
    created: NewApiKey = shared_server.call(auth.create_api_key("browser-revoked", Plan.FREE))
    user.sign_in(created.secret)
    shared_server.call(auth.revoke_key(created.record.key_id))
    page = user.page
    # The list's next refresh is refused (401): the page goes to sign in by itself.
    expect(page).to_have_url(re.compile(r"/sign-in\?expired=1$"))
    expect(page.get_by_role("alert")).to_contain_text("expired or its key was revoked")
    refused = [e for e in user.errors if "/fragments/sessions" in e]
    assert refused
    assert all(e.startswith("HTTP 401") for e in refused)
    assert [e for e in user.errors if e not in refused] == []
