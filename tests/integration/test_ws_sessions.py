"""Session management over a real WebSocket: every happy path, every session error code a
request can provoke today, and isolation between users.

INVALID_STATE comes from the simulation messages, not from these; tests/unit/test_dispatcher.py
covers its mapping.

Each server starts on a home holding the synthetic daily sample (AAPL, MSFT, GOOGL, JPM,
EUR/USD, BTC-USD up to the end of last year); other catalog symbols have no bars."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from domain.limits import Plan
from entrypoints.server.embedded import EmbeddedServer
from tests.integration.conftest import issue_token
from tests.integration.wsclient import (
    Message,
    WsClient,
    error_code,
    session_request,
)

_users = itertools.count(1)


async def connect_new_user(server: EmbeddedServer, plan: Plan = Plan.PROFESSIONAL) -> WsClient:
    """A fresh user per test, so tests sharing one server never share limits."""
    return await WsClient.connect(server, issue_token(server, f"user{next(_users)}", plan))


@pytest.fixture
async def pro(shared_server: EmbeddedServer) -> AsyncIterator[WsClient]:
    async with await connect_new_user(shared_server) as client:
        yield client


@pytest.fixture
async def free(shared_server: EmbeddedServer) -> AsyncIterator[WsClient]:
    async with await connect_new_user(shared_server, Plan.FREE) as client:
        yield client


def assert_session_error(reply: Message, code: str) -> dict[str, Any]:
    assert reply["type"] == "session_error", reply
    assert error_code(reply) == code, reply
    assert isinstance(reply["data"]["message"], str)
    assert reply["data"]["message"]
    details: dict[str, Any] = reply["data"]["details"]
    return details


# ---------------------------------------------------------------- happy paths


async def test_connection_ready_describes_the_user_and_plan(free: WsClient) -> None:
    data = free.ready["data"]
    assert data["plan"] == "free"
    assert data["user_id"].startswith("user")
    assert data["limits"]["max_active_sessions"] == 1
    assert data["limits"]["max_symbols"] == 5
    assert data["limits"]["max_message_bytes"] == 64 * 1024


async def test_create_session_returns_the_full_session(pro: WsClient) -> None:
    reply = await pro.request(
        "create_session",
        session_request(
            symbols=[" aapl", "eurusd", "btc/usd"],
            start_date="2023-01-03",
            end_date="2023-03-31T21:00:00Z",
            initial_capital=250000,
            metadata={"strategy": "momentum", "params": {"lookback": 20}},
        ),
        request_id="create-1",
    )

    assert reply["type"] == "session_created"
    assert reply["request_id"] == "create-1"
    data = reply["data"]
    assert re.fullmatch(r"sess_[A-Za-z0-9_-]{16,}", data["session_id"])
    assert data["state"] == "ready"
    assert data["symbols"] == ["AAPL", "EUR/USD", "BTC-USD"]
    assert datetime.fromisoformat(data["start_date"]) == datetime.fromisoformat(
        "2023-01-03T00:00:00+00:00"
    )
    assert datetime.fromisoformat(data["end_date"]) == datetime.fromisoformat(
        "2023-03-31T21:00:00+00:00"
    )
    assert data["initial_capital"] == "250000.00"
    assert data["metadata"] == {"strategy": "momentum", "params": {"lookback": 20}}
    assert data["timeframe"] == "1d"
    assert data["estimated_trading_days"] == 88  # BTC-USD trades every day: Jan 3..Mar 31
    # AAPL trades 62 days (MLK and Presidents' Day closed), EUR/USD 64 weekdays, BTC-USD 88;
    # their daily closes (16:00, 17:00 New York; 00:00 UTC) never coincide.
    assert data["total_bars"] == 62 + 64 + 88
    renamed, synthetic = data["warnings"][:2], data["warnings"][2:]
    # Aliases are accepted, and the warnings say what each became.
    assert renamed == [
        "eurusd is written EUR/USD here (its canonical form)",
        "btc/usd is written BTC-USD here (its canonical form)",
    ]
    for ticker, warning in zip(["AAPL", "EUR/USD", "BTC-USD"], synthetic, strict=True):
        assert warning.startswith(f"{ticker} runs on synthetic data")
    assert data["currency"] == "USD"
    assert data["asset_class"] == "mixed"
    assert data["commission_per_share"] == "0"
    assert data["allow_short"] is False
    created = datetime.fromisoformat(data["created_at"])
    assert datetime.fromisoformat(data["updated_at"]) == created
    assert datetime.fromisoformat(data["expires_at"]) > created


async def test_a_one_day_session(pro: WsClient) -> None:
    # The end date is the last day included: the same date twice is that one day.
    reply = await pro.create_session(
        symbols=["AAPL"], start_date="2023-06-30", end_date="2023-06-30"
    )
    assert reply["type"] == "session_created", reply
    assert (reply["data"]["estimated_trading_days"], reply["data"]["total_bars"]) == (1, 1)


async def test_a_range_without_a_trading_day_says_so(pro: WsClient) -> None:
    reply = await pro.create_session(
        symbols=["AAPL", "MSFT"], start_date="2023-07-01", end_date="2023-07-02"
    )
    details = assert_session_error(reply, "INVALID_DATE_RANGE")
    assert details["reason"] == "no_trading_day"
    assert "holds no trading day of AAPL, MSFT" in reply["data"]["message"]


async def test_a_range_before_the_data_names_both_dates(pro: WsClient) -> None:
    reply = await pro.create_session(
        symbols=["GOOGL"], start_date="2003-01-02", end_date="2003-12-31"
    )
    details = assert_session_error(reply, "INVALID_DATE_RANGE")
    assert details["fields"] == ["start_date", "end_date"]
    assert details["reason"] == "before_data"
    assert "both start_date and end_date are outside the data" in reply["data"]["message"]


async def test_session_ids_are_unique_and_unguessable(pro: WsClient) -> None:
    first = await pro.create_session()
    second = await pro.create_session()
    assert first["data"]["session_id"] != second["data"]["session_id"]


async def test_create_session_warns_about_a_range_before_the_data(pro: WsClient) -> None:
    # GOOGL's sample starts at its listing, 2004-08-19: an earlier start runs, with a warning.
    reply = await pro.create_session(
        symbols=["GOOGL"], start_date="2004-01-02", end_date="2004-12-31"
    )
    assert reply["type"] == "session_created"
    assert reply["data"]["warnings"] == [
        "GOOGL has no data before 2004-08-19; the session starts 2004-01-02",
        "GOOGL runs on synthetic data (a seeded random walk, not market prices); import real "
        "bars with `simutrador data import`",
    ]
    # Aug 19 .. Dec 31 2004: 97 weekdays, less Labor Day, Thanksgiving and Christmas Eve
    # (Christmas fell on a Saturday and was observed on Friday the 24th).
    assert reply["data"]["estimated_trading_days"] == 94


async def test_get_list_and_delete_a_session(pro: WsClient) -> None:
    created = (await pro.create_session())["data"]
    session_id = created["session_id"]

    info = await pro.request("get_session", {"session_id": session_id}, request_id="get-1")
    assert info["type"] == "session_info"
    assert info["request_id"] == "get-1"
    assert info["data"]["session_id"] == session_id
    assert info["data"]["symbols"] == created["symbols"]
    # A get counts as activity: the idle clock restarts.
    touched = datetime.fromisoformat(info["data"]["updated_at"])
    assert touched >= datetime.fromisoformat(created["updated_at"])
    assert datetime.fromisoformat(info["data"]["expires_at"]) > touched

    listed = await pro.request("list_sessions", {}, request_id="list-1")
    assert listed["type"] == "session_list"
    assert listed["request_id"] == "list-1"
    assert [s["session_id"] for s in listed["data"]["sessions"]] == [session_id]

    deleted = await pro.request("delete_session", {"session_id": session_id}, request_id="del-1")
    assert deleted["type"] == "session_deleted"
    assert deleted["request_id"] == "del-1"
    assert deleted["data"] == {"session_id": session_id, "deleted": True}

    gone = await pro.request("get_session", {"session_id": session_id})
    assert_session_error(gone, "SESSION_NOT_FOUND")
    assert (await pro.request("list_sessions"))["data"]["sessions"] == []


async def test_list_sessions_filters_by_state(pro: WsClient) -> None:
    first = (await pro.create_session())["data"]["session_id"]
    second = (await pro.create_session())["data"]["session_id"]

    ready = await pro.request("list_sessions", {"state": "ready"})
    assert [s["session_id"] for s in ready["data"]["sessions"]] == [first, second]
    upper = await pro.request("list_sessions", {"state": "READY"})
    assert len(upper["data"]["sessions"]) == 2
    running = await pro.request("list_sessions", {"state": "running"})
    assert running["data"]["sessions"] == []


async def test_request_without_request_id_gets_a_null_one(pro: WsClient) -> None:
    await pro.send({"type": "list_sessions"})
    reply = await pro.recv()
    assert reply["type"] == "session_list"
    assert reply.get("request_id") is None


# ---------------------------------------------------------------- session errors


@pytest.mark.parametrize(
    ("data", "code"),
    [
        pytest.param({"symbols": []}, "MISSING_SYMBOLS", id="empty-symbols"),
        pytest.param({"initial_capital": "999.99"}, "INSUFFICIENT_CAPITAL", id="capital-low"),
        pytest.param({"initial_capital": "10000000.01"}, "EXCESSIVE_CAPITAL", id="capital-high"),
        pytest.param(
            {"start_date": "2023-06-30", "end_date": "2023-01-03"},
            "INVALID_DATE_RANGE",
            id="start-after-end",
        ),
        pytest.param(
            {"start_date": "2023-07-01", "end_date": "2023-07-02"},
            "INVALID_DATE_RANGE",
            id="a-weekend",
        ),
        pytest.param({"start_date": "2023-13-45"}, "INVALID_DATE_RANGE", id="unparsable-start"),
        pytest.param({"end_date": "next friday"}, "INVALID_DATE_RANGE", id="unparsable-end"),
        pytest.param({"commission_per_share": "-1"}, "VALIDATION_FAILED", id="negative-fee"),
    ],
)
async def test_session_error_codes(pro: WsClient, data: dict[str, Any], code: str) -> None:
    reply = await pro.request("create_session", session_request(**data), request_id="bad-1")
    assert reply["request_id"] == "bad-1"
    assert_session_error(reply, code)
    # Nothing was created, and the connection still serves requests.
    assert (await pro.request("list_sessions"))["data"]["sessions"] == []


async def test_missing_symbols_field(pro: WsClient) -> None:
    data = session_request()
    del data["symbols"]
    assert_session_error(await pro.request("create_session", data), "MISSING_SYMBOLS")


async def test_invalid_symbols_are_each_listed(pro: WsClient) -> None:
    reply = await pro.create_session(symbols=["AAPL", "XXXX", "??!", "MSFT"])
    details = assert_session_error(reply, "INVALID_SYMBOL")
    assert details["invalid_symbols"] == ["XXXX", "??!"]
    assert "NASDAQ" in details["supported_markets"]


async def test_too_many_symbols_for_the_free_plan(free: WsClient) -> None:
    symbols = ["AAPL", "MSFT", "GOOGL", "JPM", "EUR/USD", "BTC-USD"]
    details = assert_session_error(await free.create_session(symbols=symbols), "TOO_MANY_SYMBOLS")
    assert details["requested"] == 6
    assert details["max_symbols"] == 5
    # Five is allowed.
    assert (await free.create_session(symbols=symbols[:5]))["type"] == "session_created"


async def test_date_range_outside_a_symbols_data(pro: WsClient) -> None:
    # GOOGL's bars start on 2004-08-19: a range that ends before them holds none.
    reply = await pro.create_session(
        symbols=["AAPL", "GOOGL"], start_date="2003-01-02", end_date="2003-12-31"
    )
    details = assert_session_error(reply, "INVALID_DATE_RANGE")
    assert details["field"] == "end_date"
    assert details["symbol"] == "GOOGL"
    assert details["timeframe"] == "1d"
    assert details["available_from"] == "2004-08-19"
    # The sample runs to the end of last year (the server's clock).
    assert date.fromisoformat(details["available_to"]).year == datetime.now(UTC).year - 1


@pytest.mark.parametrize("symbol", ["NVDA", "SNOW", "GC"])
async def test_a_catalog_symbol_without_bars_is_data_unavailable(
    pro: WsClient, symbol: str
) -> None:
    reply = await pro.create_session(symbols=["AAPL", symbol])
    details = assert_session_error(reply, "DATA_UNAVAILABLE")
    assert details == {"symbol": symbol, "timeframe": "1d"}
    assert (await pro.request("list_sessions"))["data"]["sessions"] == []


async def test_a_timeframe_without_bars_is_data_unavailable(pro: WsClient) -> None:
    reply = await pro.create_session(timeframe="5m")
    assert assert_session_error(reply, "DATA_UNAVAILABLE") == {"symbol": "AAPL", "timeframe": "5m"}
    reply = await pro.create_session(timeframe="1w")
    assert assert_session_error(reply, "VALIDATION_FAILED")["field"] == "timeframe"


async def test_date_range_past_the_end_of_the_data(pro: WsClient) -> None:
    reply = await pro.create_session(start_date="2030-01-02", end_date="2030-06-28")
    details = assert_session_error(reply, "INVALID_DATE_RANGE")
    assert details["symbol"] == "AAPL"


async def test_duplicate_symbols_fail_validation(pro: WsClient) -> None:
    reply = await pro.create_session(symbols=["AAPL", "MSFT", "aapl"])
    details = assert_session_error(reply, "VALIDATION_FAILED")
    assert details["field"] == "symbols"
    assert details["duplicates"] == ["aapl"]


async def test_bad_state_filter_fails_validation(pro: WsClient) -> None:
    details = assert_session_error(
        await pro.request("list_sessions", {"state": "sleeping"}), "VALIDATION_FAILED"
    )
    assert details["field"] == "state"
    assert "ready" in details["allowed"]


async def test_active_session_limit(free: WsClient) -> None:
    assert (await free.create_session())["type"] == "session_created"
    details = assert_session_error(await free.create_session(), "SESSION_LIMIT_EXCEEDED")
    assert details["limit"] == "active_sessions"
    assert details["max"] == 1
    assert len((await free.request("list_sessions"))["data"]["sessions"]) == 1


@pytest.mark.parametrize("message_type", ["get_session", "delete_session"])
async def test_unknown_session_is_not_found(pro: WsClient, message_type: str) -> None:
    reply = await pro.request(message_type, {"session_id": "sess_doesNotExist0000"})
    details = assert_session_error(reply, "SESSION_NOT_FOUND")
    assert details["session_id"] == "sess_doesNotExist0000"


async def test_session_deleted_twice_is_not_found(pro: WsClient) -> None:
    session_id = (await pro.create_session())["data"]["session_id"]
    assert (await pro.request("delete_session", {"session_id": session_id}))["type"] == (
        "session_deleted"
    )
    reply = await pro.request("delete_session", {"session_id": session_id})
    assert_session_error(reply, "SESSION_NOT_FOUND")


# ---------------------------------------------------------------- isolation


async def test_users_cannot_see_or_touch_each_others_sessions(
    shared_server: EmbeddedServer,
) -> None:
    async with (
        await connect_new_user(shared_server) as alice,
        await connect_new_user(shared_server) as bob,
    ):
        alice_session = (await alice.create_session(metadata={"owner": "alice"}))["data"]
        session_id = alice_session["session_id"]
        bob_session = (await bob.create_session())["data"]["session_id"]

        for message_type in ("get_session", "delete_session"):
            reply = await bob.request(message_type, {"session_id": session_id})
            details = assert_session_error(reply, "ACCESS_DENIED")
            assert details == {"session_id": session_id}
            # The refusal leaks nothing of the session itself.
            assert "alice" not in str(reply)

        for query in ({}, {"state": "ready"}):
            listed = await bob.request("list_sessions", query)
            assert [s["session_id"] for s in listed["data"]["sessions"]] == [bob_session]

        info = await alice.request("get_session", {"session_id": session_id})
        assert info["type"] == "session_info"
        assert info["data"]["state"] == "ready"
        assert info["data"]["metadata"] == {"owner": "alice"}
        listed = await alice.request("list_sessions")
        assert [s["session_id"] for s in listed["data"]["sessions"]] == [session_id]
