"""Helpers for the dashboard tests: signing in over HTTP the way a browser does (the CSRF
token from the form, the token cookie back), a strategy that trades, and a simulation the
test steps itself over a real WebSocket from a loop in a background thread."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

import httpx

from domain.limits import Plan
from entrypoints.sdk import BacktestResults, Bar, Context, Strategy, run_backtest
from entrypoints.server.embedded import EmbeddedServer
from entrypoints.web.routes import TOKEN_COOKIE
from tests.integration.conftest import issue_token
from tests.integration.wsclient import WsClient, session_request, sim_request

T = TypeVar("T")

START, END = "2023-01-03", "2023-06-30"
_CSRF_FIELD = re.compile(r'name="_csrf_token" value="([^"]+)"')


def csrf_token(page: str) -> str:
    """The CSRF token a dashboard form carries."""
    found = _CSRF_FIELD.search(page)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


def sign_in(server: EmbeddedServer, key: str) -> httpx.Client:
    """A client signed in to the dashboard with `key`, as a browser is after the form."""
    client = httpx.Client(base_url=server.http_url, trust_env=False)
    form = client.get("/sign-in")
    response = client.post("/sign-in", data={"api_key": key, "_csrf_token": csrf_token(form.text)})
    assert response.status_code == 303, response.text
    assert client.cookies.get(TOKEN_COOKIE)
    return client


def sign_in_as(server: EmbeddedServer, user: str, plan: Plan = Plan.PROFESSIONAL) -> httpx.Client:
    return sign_in(server, server.create_api_key(user, plan))


class Trader(Strategy):
    """Buys 10 shares every 10th bar while flat and closes the position 5 bars later:
    a known number of closed trades."""

    def on_start(self, ctx: Context) -> None:
        self.bars = 0

    def on_bar(self, ctx: Context, bars: Mapping[str, Bar]) -> None:
        self.bars += 1
        for symbol in bars:
            if self.bars % 10 == 0 and not ctx.position(symbol):
                ctx.buy(symbol, 10)
            elif self.bars % 10 == 5 and ctx.position(symbol):
                ctx.close(symbol)


def completed_run(server: EmbeddedServer, key: str, symbol: str = "AAPL") -> BacktestResults:
    """A whole backtest of `Trader` on the server, through the SDK."""
    return run_backtest(Trader, [symbol], START, END, 100_000, server=server.http_url, api_key=key)


class BackgroundLoop:
    """An event loop in a thread, for async clients in tests that drive a browser with
    Playwright's synchronous API (which must not run inside an event loop)."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 15.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


class SteppedRun:
    """A simulation the test advances tick by tick over its own WebSocket connection."""

    def __init__(self, loop: BackgroundLoop, server: EmbeddedServer, user: str) -> None:
        self._loop = loop
        self._ws = loop.run(WsClient.connect(server, issue_token(server, user)))
        self.session_id = ""
        self.sequence_id = 0
        self.total_ticks = 0

    def start(self, **session: Any) -> str:
        """Create a session and start its simulation: its first tick is out."""
        created = self._loop.run(self._ws.request("create_session", session_request(**session)))
        self.session_id = created["data"]["session_id"]
        messages = self._loop.run(
            sim_request(self._ws, "start_simulation", {"session_id": self.session_id})
        )
        started = next(m for m in messages if m["type"] == "simulation_started")
        self.total_ticks = started["data"]["total_ticks"]
        self.sequence_id = messages[-1]["data"]["sequence_id"]
        return self.session_id

    def step(self, ticks: int) -> int:
        """Acknowledge `ticks` ticks; the number delivered so far."""
        for _ in range(ticks):
            messages = self._loop.run(
                sim_request(
                    self._ws,
                    "tick_ack",
                    {"session_id": self.session_id, "sequence_id": self.sequence_id},
                )
            )
            self.sequence_id = messages[-1]["data"]["sequence_id"]
        return self.sequence_id

    def close(self) -> None:
        self._loop.run(self._ws.close())
