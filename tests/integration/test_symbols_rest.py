"""Market data on a real server: `GET /symbols` and `simutrador symbols`, sessions on the
synthetic sample, timeframes without bars, and bars imported by another process being seen
by the very next request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from adapters.bars.sqlite_store import SqliteBarStore
from application.bars import SAMPLE_SYMBOLS
from domain.bars import Coverage, DataSource
from domain.dates import format_instant
from entrypoints.cli.app import app
from entrypoints.server.embedded import EmbeddedServer
from tests.fakes import daily_series
from tests.integration.conftest import (
    build_container,
    issue_token,
    start_server,
)
from tests.integration.wsclient import WsClient, error_code

Body = dict[str, Any]


def get_symbols(server: EmbeddedServer, token: str | None, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(f"{server.http_url}/symbols", headers=headers, params=params, timeout=10)


def stored_coverage(server: EmbeddedServer) -> dict[str, Coverage]:
    coverage = server.call(server.container.bar_store().coverage())
    return {c.symbol: c for c in coverage}


@pytest.fixture(scope="module")
def token(shared_server: EmbeddedServer) -> str:
    return issue_token(shared_server, "sym-reader")


@pytest.fixture
async def client(server: EmbeddedServer) -> AsyncIterator[WsClient]:
    async with await WsClient.connect(server, issue_token(server, "trader")) as connected:
        yield connected


# --- GET /symbols ----------------------------------------------------------------------------


def test_symbols_lists_the_catalog_with_what_is_stored(
    shared_server: EmbeddedServer, token: str
) -> None:
    response = get_symbols(shared_server, token)
    assert response.status_code == 200
    listed = {s["symbol"]: s for s in response.json()["symbols"]}
    catalog = shared_server.container.catalog()
    assert list(listed) == [i.symbol.ticker for i in catalog.instruments()]

    coverage = stored_coverage(shared_server)
    assert set(coverage) == set(SAMPLE_SYMBOLS)
    aapl = listed["AAPL"]
    assert {k: v for k, v in aapl.items() if k != "data"} == {
        "symbol": "AAPL",
        "name": "Apple Inc.",
        "exchange": "NASDAQ",
        "asset_class": "stock",
        "currency": "USD",
        "lot_size": "1",
        "tick_size": "0.01",
    }
    (data,) = aapl["data"]
    assert data == {
        "timeframe": "1d",
        "first": format_instant(coverage["AAPL"].first),
        "last": format_instant(coverage["AAPL"].last),
        "bars": coverage["AAPL"].bars,
        "source": "synthetic",
    }
    assert data["first"] == "2000-01-03T21:00:00Z"  # the sample's start, at the 16:00 close
    assert listed["NVDA"]["data"] == []  # in the catalog, no bars


def test_symbols_filtered_by_asset_class(shared_server: EmbeddedServer, token: str) -> None:
    response = get_symbols(shared_server, token, asset_class="Crypto")
    assert response.status_code == 200
    crypto = response.json()["symbols"]
    assert {s["asset_class"] for s in crypto} == {"crypto"}
    assert [s["symbol"] for s in crypto][:2] == ["BTC-USD", "ETH-USD"]
    with_data = {s["symbol"]: s["data"] for s in crypto if s["data"]}
    assert list(with_data) == ["BTC-USD"]
    assert [d["source"] for d in with_data["BTC-USD"]] == ["synthetic"]
    assert with_data["BTC-USD"][0]["first"] == "2014-09-18T00:00:00Z"  # listed 2014-09-17
    assert crypto[0]["lot_size"] == "0.00001"


def test_an_unknown_asset_class_is_a_400(shared_server: EmbeddedServer, token: str) -> None:
    response = get_symbols(shared_server, token, asset_class="bonds")
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "VALIDATION_FAILED"
    assert "bonds" in body["message"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not.a.jwt"},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
    ids=["none", "garbage", "empty", "basic"],
)
def test_symbols_needs_a_valid_token(
    shared_server: EmbeddedServer, headers: dict[str, str]
) -> None:
    response = httpx.get(f"{shared_server.http_url}/symbols", headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.json()["error_code"] == "INVALID_TOKEN"
    assert "symbols" not in response.json()


def test_an_api_key_is_not_a_token(shared_server: EmbeddedServer) -> None:
    key = shared_server.create_api_key("keyholder")
    response = httpx.get(f"{shared_server.http_url}/symbols", headers={"X-API-Key": key})
    assert response.status_code == 401


# --- `simutrador symbols` ----------------------------------------------------------------------


def test_the_cli_lists_symbols_as_json(shared_server: EmbeddedServer, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {
        "SIMUTRADOR_SERVER_URL": shared_server.http_url,
        "SIMUTRADOR_API_KEY": shared_server.create_api_key("cli-user"),
        "SIMUTRADOR_HOME": str(tmp_path / "client-home"),
        "SIMUTRADOR_TIMEOUT": None,
    }
    result = runner.invoke(app, ["symbols", "--json", "--asset-class", "forex"], env=env)
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert {s["asset_class"] for s in listed} == {"forex"}
    eurusd = next(s for s in listed if s["symbol"] == "EUR/USD")
    assert (eurusd["lot_size"], eurusd["tick_size"]) == ("1000", "0.00001")
    (data,) = eurusd["data"]
    coverage = stored_coverage(shared_server)["EUR/USD"]
    assert (data["source"], data["bars"]) == ("synthetic", coverage.bars)
    assert datetime.fromisoformat(data["last"]) == coverage.last
    assert all(s["data"] == [] for s in listed if s["symbol"] != "EUR/USD")

    everything = json.loads(runner.invoke(app, ["symbols", "--json"], env=env).stdout)
    assert len(everything) == len(shared_server.container.catalog().instruments())

    table = runner.invoke(app, ["symbols", "--asset-class", "crypto"], env=env)
    assert table.exit_code == 0
    assert "BTC-USD" in table.stdout
    assert "synthetic" in table.stdout

    wrong = runner.invoke(app, ["symbols", "--asset-class", "bonds"], env=env)
    assert wrong.exit_code == 2
    assert "Traceback" not in wrong.output


# --- sessions on what is stored ----------------------------------------------------------------


async def test_a_session_on_the_sample_says_it_is_synthetic(client: WsClient) -> None:
    reply = await client.create_session(symbols=["MSFT", "JPM"])
    assert reply["type"] == "session_created", reply
    data = reply["data"]
    assert data["warnings"] == [
        f"{t} runs on synthetic data (a seeded random walk, not market prices); import real "
        "bars with `simutrador data import`"
        for t in ("MSFT", "JPM")
    ]
    # Jan 3 .. Jun 30 2023: 124 NYSE trading days; both close at 16:00 New York.
    assert (data["estimated_trading_days"], data["total_bars"]) == (124, 124)


@pytest.mark.parametrize("timeframe", ["1h", "5m", "1m"])
async def test_a_timeframe_the_sample_lacks_is_data_unavailable(
    client: WsClient, timeframe: str
) -> None:
    reply = await client.create_session(symbols=["AAPL"], timeframe=timeframe)
    assert reply["type"] == "session_error"
    assert error_code(reply) == "DATA_UNAVAILABLE"
    assert reply["data"]["details"] == {"symbol": "AAPL", "timeframe": timeframe}


async def test_bars_imported_by_another_process_are_seen_by_the_next_request(
    server: EmbeddedServer, client: WsClient
) -> None:
    request = {"symbols": ["AAPL"], "start_date": "2023-01-03", "end_date": "2023-06-30"}
    before = await client.create_session(**request)
    assert before["type"] == "session_created"
    assert any("synthetic" in w for w in before["data"]["warnings"])  # now in the cache
    refused = await client.create_session(symbols=["NVDA"])
    assert refused["data"]["details"] == {"symbol": "NVDA", "timeframe": "1d"}

    # `simutrador data import` in another process: its own store on the server's file.
    catalog = server.container.catalog()
    aapl, nvda = catalog.lookup("AAPL"), catalog.lookup("NVDA")
    assert aapl is not None
    assert nvda is not None
    importer = SqliteBarStore(server.container.settings().bars_path)
    try:
        await importer.write(
            daily_series(aapl, date(2022, 1, 3), date(2023, 12, 29), "150.25"),
            DataSource.IMPORTED,
            replace=False,
        )
        await importer.write(
            daily_series(nvda, date(2023, 1, 3), date(2023, 12, 29), "400.5"),
            DataSource.IMPORTED,
            replace=False,
        )
    finally:
        importer.close()

    after = await client.create_session(**request)  # same request: not the cached answer
    assert after["type"] == "session_created"
    assert after["data"]["warnings"] == []
    assert after["data"]["total_bars"] == 124
    # The session starts on NVDA's first bar and ends on its last: nothing to warn about.
    nvda_session = await client.create_session(
        symbols=["NVDA"], start_date="2023-01-03", end_date="2023-12-29"
    )
    assert nvda_session["type"] == "session_created", nvda_session
    assert nvda_session["data"]["warnings"] == []
    assert nvda_session["data"]["total_bars"] == 250

    token = issue_token(server, "after-import")
    listed = {s["symbol"]: s["data"] for s in get_symbols(server, token).json()["symbols"]}
    assert [(d["source"], d["first"][:10]) for d in listed["AAPL"]] == [("imported", "2022-01-03")]
    assert [(d["source"], d["bars"]) for d in listed["NVDA"]] == [("imported", 250)]


# --- the sample at start-up ----------------------------------------------------------------------


def test_a_server_on_an_empty_home_writes_the_sample(tmp_path: Path) -> None:
    # Without the suite's copied sample: the server seeds its own home before serving.
    server = start_server(tmp_path / "home")
    try:
        coverage = stored_coverage(server)
        assert list(coverage) == sorted(SAMPLE_SYMBOLS)
        assert {c.source for c in coverage.values()} == {DataSource.SYNTHETIC}
    finally:
        server.stop()


async def test_a_server_started_without_the_sample_has_no_bars(tmp_path: Path) -> None:
    server = EmbeddedServer(build_container(tmp_path / "home"), sample=False).start()
    try:
        assert stored_coverage(server) == {}
        async with await WsClient.connect(server, issue_token(server, "bare")) as bare:
            reply = await bare.create_session()
            assert error_code(reply) == "DATA_UNAVAILABLE"
            assert reply["data"]["details"] == {"symbol": "AAPL", "timeframe": "1d"}
    finally:
        server.stop()
