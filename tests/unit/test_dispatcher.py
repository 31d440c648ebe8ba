"""The Dispatcher without sockets: every message type, every error path, request_id echo,
timestamps, the per-connection rate limit and the frame-size limit, driven by fakes."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from application.principal import Principal
from application.sessions import SessionService
from domain.errors import (
    AccessDenied,
    DataUnavailable,
    DomainError,
    DuplicateOrderId,
    ExcessiveCapital,
    InsufficientCapital,
    InvalidDateRange,
    InvalidOrder,
    InvalidSequence,
    InvalidState,
    InvalidSymbol,
    MissingSymbols,
    OrderFailed,
    OrderNotFound,
    SessionBusy,
    SessionLimitExceeded,
    SessionNotFound,
    TooManySymbols,
    ValidationFailed,
)
from domain.limits import Plan
from domain.ratelimit import TokenBucket
from entrypoints.protocol import messages as m
from entrypoints.protocol.dispatcher import ConnectionContext, Dispatcher
from tests.fakes import (
    FailingSessionRepository,
    FakeClock,
    limits_for,
    make_service,
    principal,
)

Reply = dict[str, Any]
VERSION = "9.9.9-test"


class Harness:
    """A dispatcher over a real SessionService with fakes, and one open connection."""

    def __init__(
        self,
        clock: FakeClock,
        service: SessionService,
        caller: Principal,
        max_message_bytes: int = 64 * 1024,
    ) -> None:
        self.clock = clock
        self.dispatcher = Dispatcher(
            service, clock, server_version=VERSION, max_message_bytes=max_message_bytes
        )
        self.context = self.dispatcher.open(caller)

    def connect(self, caller: Principal) -> ConnectionContext:
        return self.dispatcher.open(caller)

    async def raw(self, frame: str | bytes, context: ConnectionContext | None = None) -> Reply:
        # A session request (or a refused frame) causes exactly one message.
        (encoded,) = await self.dispatcher.handle_frame(context or self.context, frame)
        reply: Reply = json.loads(encoded)
        # Every server message carries the time it was made, in UTC, from the injected clock.
        assert reply["timestamp"] == self.clock.now().isoformat().replace("+00:00", "Z")
        return reply

    async def send(
        self,
        message_type: str,
        data: dict[str, Any] | None = None,
        request_id: str | None = "req_1",
        context: ConnectionContext | None = None,
    ) -> Reply:
        message: dict[str, Any] = {"type": message_type, "request_id": request_id}
        if data is not None:
            message["data"] = data
        return await self.raw(json.dumps(message), context)

    async def create(self, context: ConnectionContext | None = None, **overrides: Any) -> Reply:
        return await self.send("create_session", create_data(**overrides), context=context)


def create_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "symbols": ["AAPL"],
        "start_date": "2023-01-03",
        "end_date": "2023-06-30",
        "initial_capital": "100000",
    }
    data.update(overrides)
    return data


@pytest.fixture
def harness(clock: FakeClock, service: SessionService) -> Harness:
    return Harness(clock, service, principal(Plan.PROFESSIONAL, "alice"))


def session_error(reply: Reply, code: str) -> dict[str, Any]:
    assert reply["type"] == "session_error", reply
    assert reply["data"]["error_code"] == code, reply
    assert reply["data"]["message"]
    details: dict[str, Any] = reply["data"]["details"]
    return details


def protocol_error(reply: Reply, code: str) -> dict[str, Any]:
    assert reply["type"] == "error", reply
    assert reply["data"]["error_code"] == code, reply
    assert reply["data"]["message"]
    assert isinstance(reply["data"]["recoverable"], bool)
    details: dict[str, Any] = reply["data"]["details"]
    return details


# ---------------------------------------------------------------- connection_ready


def test_connection_ready_describes_the_connection(clock: FakeClock) -> None:
    limits = limits_for(Plan.FREE, messages_per_minute=42)
    harness = Harness(clock, make_service(clock=clock), principal(Plan.FREE, "bob", limits), 2048)

    ready = json.loads(harness.dispatcher.connection_ready(harness.context))

    assert ready["type"] == "connection_ready"
    assert ready["timestamp"] == "2024-01-15T09:30:00Z"
    assert ready["data"] == {
        "user_id": "bob",
        "plan": "free",
        "limits": {
            "max_active_sessions": 1,
            "sessions_per_hour": 5,
            "max_symbols": 5,
            "max_connections": 1,
            "messages_per_minute": 42,
            "max_message_bytes": 2048,
            "max_running_simulations": 1,
        },
        "server_version": VERSION,
        "protocol_version": 2,
        "session_timeout_minutes": 60.0,
        "max_window": 4096,
    }


# ---------------------------------------------------------------- happy paths


async def test_create_session(harness: Harness) -> None:
    reply = await harness.create(
        symbols=["aapl", "eurusd"], initial_capital=2500.5, metadata={"k": [1, 2]}
    )

    assert reply["type"] == "session_created"
    assert reply["request_id"] == "req_1"
    data = reply["data"]
    assert data["session_id"] == "sess_0001"
    assert data["state"] == "ready"
    assert data["symbols"] == ["AAPL", "EUR/USD"]
    assert data["start_date"] == "2023-01-03T00:00:00Z"
    assert data["end_date"] == "2023-06-30T00:00:00Z"
    assert data["initial_capital"] == "2500.50"
    assert data["created_at"] == data["updated_at"] == "2024-01-15T09:30:00Z"
    assert data["expires_at"] == "2024-01-15T10:30:00Z"
    assert data["metadata"] == {"k": [1, 2]}
    assert data["timeframe"] == "1d"
    # Jan 3 .. Jun 30 2023: AAPL trades 124 days (six NYSE holidays), EUR/USD 129 weekdays;
    # their daily closes (16:00 and 17:00 New York) never coincide.
    assert data["estimated_trading_days"] == 129
    assert data["total_bars"] == 124 + 129
    assert data["warnings"] == ["eurusd is written EUR/USD here (its canonical form)"]
    assert data["currency"] == "USD"
    assert data["asset_class"] == "mixed"  # a stock and a forex pair
    assert data["commission_per_share"] == "0"
    assert data["commission_pct"] == "0"
    assert data["commission_min"] == "0"
    assert data["slippage_bps"] == "0"
    assert data["max_volume_pct"] is None
    assert data["allow_short"] is False


async def test_create_session_with_engine_settings(harness: Harness) -> None:
    reply = await harness.create(
        commission_per_share="0.005",
        slippage_bps=2.5,
        commission_pct="0.001",
        commission_min=1,
        max_volume_pct="0.25",
        allow_short=True,
    )
    data = reply["data"]
    assert data["commission_per_share"] == "0.005"
    assert data["slippage_bps"] == "2.5"
    assert data["commission_pct"] == "0.001"
    assert data["commission_min"] == "1"
    assert data["max_volume_pct"] == "0.25"
    assert data["allow_short"] is True
    info = await harness.send("get_session", {"session_id": data["session_id"]})
    assert info["data"] == data  # the clock stands still: the same session, field for field


async def test_get_session_touches_it(harness: Harness) -> None:
    session_id = (await harness.create())["data"]["session_id"]
    harness.clock.advance(minutes=10)

    reply = await harness.send("get_session", {"session_id": session_id}, "get-7")

    assert reply["type"] == "session_info"
    assert reply["request_id"] == "get-7"
    assert reply["data"]["session_id"] == session_id
    assert reply["data"]["created_at"] == "2024-01-15T09:30:00Z"
    assert reply["data"]["updated_at"] == "2024-01-15T09:40:00Z"
    assert reply["data"]["expires_at"] == "2024-01-15T10:40:00Z"


async def test_list_sessions_with_and_without_filter(harness: Harness) -> None:
    first = (await harness.create())["data"]["session_id"]
    second = (await harness.create())["data"]["session_id"]

    for data in (None, {}, {"state": None}, {"state": "ready"}, {"state": "Ready"}):
        reply = await harness.send("list_sessions", data, "list-1")
        assert reply["type"] == "session_list"
        assert reply["request_id"] == "list-1"
        assert [s["session_id"] for s in reply["data"]["sessions"]] == [first, second]
    for state in ("running", "paused", "completed", "error", "initializing"):
        reply = await harness.send("list_sessions", {"state": state})
        assert reply["data"]["sessions"] == []


async def test_list_shows_only_the_callers_sessions(harness: Harness) -> None:
    mine = (await harness.create())["data"]["session_id"]
    bob = harness.connect(principal(Plan.PROFESSIONAL, "bob"))
    await harness.create(context=bob)

    listed = await harness.send("list_sessions")
    assert [s["session_id"] for s in listed["data"]["sessions"]] == [mine]


async def test_delete_session(harness: Harness) -> None:
    session_id = (await harness.create())["data"]["session_id"]

    reply = await harness.send("delete_session", {"session_id": session_id}, "del-1")

    assert reply == {
        "type": "session_deleted",
        "data": {"session_id": session_id, "deleted": True},
        "request_id": "del-1",
        "timestamp": "2024-01-15T09:30:00Z",
    }
    session_error(
        await harness.send("get_session", {"session_id": session_id}), "SESSION_NOT_FOUND"
    )


async def test_request_id_is_optional(harness: Harness) -> None:
    reply = await harness.raw('{"type": "list_sessions"}')
    assert reply["type"] == "session_list"
    assert reply["request_id"] is None


async def test_request_id_is_echoed_verbatim(harness: Harness) -> None:
    odd = "ünïcode 🚀 \" ' <>&" + "x" * 100
    reply = await harness.send("list_sessions", request_id=odd)
    assert reply["request_id"] == odd


# ---------------------------------------------------------------- session errors


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"symbols": []}, "MISSING_SYMBOLS"),
        ({"symbols": ["AAPL", "NOPE"]}, "INVALID_SYMBOL"),
        ({"symbols": ["AAPL", "MSFT", "JPM", "GC", "EUR/USD", "GBP/USD"]}, "TOO_MANY_SYMBOLS"),
        ({"start_date": "2023-06-30", "end_date": "2023-01-03"}, "INVALID_DATE_RANGE"),
        ({"start_date": "03/01/2023"}, "INVALID_DATE_RANGE"),
        ({"symbols": ["OLD"], "start_date": "2021-01-04"}, "INVALID_DATE_RANGE"),
        ({"start_date": "2023-07-01", "end_date": "2023-07-02"}, "INVALID_DATE_RANGE"),
        ({"symbols": ["AAPL", "NODATA"]}, "DATA_UNAVAILABLE"),
        ({"timeframe": "1h"}, "DATA_UNAVAILABLE"),
        ({"timeframe": "2h"}, "VALIDATION_FAILED"),
        ({"commission_pct": "1.5"}, "VALIDATION_FAILED"),
        ({"commission_min": "-0.01"}, "VALIDATION_FAILED"),
        ({"max_volume_pct": "0"}, "VALIDATION_FAILED"),
        ({"start_date": "1900-01-02", "end_date": "2023-01-03"}, "INVALID_DATE_RANGE"),
        ({"initial_capital": "999.99"}, "INSUFFICIENT_CAPITAL"),
        ({"initial_capital": "10000000.01"}, "EXCESSIVE_CAPITAL"),
        ({"initial_capital": "1000.001"}, "VALIDATION_FAILED"),
        ({"initial_capital": "NaN"}, "VALIDATION_FAILED"),
        ({"symbols": ["AAPL", "aapl"]}, "VALIDATION_FAILED"),
        ({"slippage_bps": "-1"}, "VALIDATION_FAILED"),
        ({"metadata": {"blob": "x" * 5000}}, "VALIDATION_FAILED"),
    ],
)
async def test_create_session_errors(
    clock: FakeClock, service: SessionService, overrides: dict[str, Any], code: str
) -> None:
    harness = Harness(clock, service, principal(Plan.FREE, "carol"))
    reply = await harness.create(**overrides)
    assert reply["request_id"] == "req_1"
    session_error(reply, code)
    assert (await harness.send("list_sessions"))["data"]["sessions"] == []


async def test_invalid_symbol_details(harness: Harness) -> None:
    details = session_error(await harness.create(symbols=["AAPL", "ZZZZ", "!!"]), "INVALID_SYMBOL")
    assert details["invalid_symbols"] == ["ZZZZ", "!!"]
    assert details["supported_markets"]


async def test_session_limit(clock: FakeClock, service: SessionService) -> None:
    harness = Harness(clock, service, principal(Plan.FREE, "dave"))
    assert (await harness.create())["type"] == "session_created"
    details = session_error(await harness.create(), "SESSION_LIMIT_EXCEEDED")
    assert details["limit"] == "active_sessions"


async def test_sessions_per_hour(clock: FakeClock, service: SessionService) -> None:
    harness = Harness(clock, service, principal(Plan.FREE, "erin"))
    for _ in range(5):
        created = await harness.create()
        await harness.send("delete_session", {"session_id": created["data"]["session_id"]})
        clock.advance(minutes=1)

    details = session_error(await harness.create(), "SESSION_LIMIT_EXCEEDED")

    assert details["limit"] == "sessions_per_hour"
    assert details["max"] == 5
    # The first slot frees an hour after it was taken, 5 minutes ago.
    assert details["retry_after_ms"] == 55 * 60 * 1000 + 1
    clock.advance(minutes=55)
    assert (await harness.create())["type"] == "session_created"


@pytest.mark.parametrize("message_type", ["get_session", "delete_session"])
async def test_not_found_and_access_denied(harness: Harness, message_type: str) -> None:
    details = session_error(
        await harness.send(message_type, {"session_id": "sess_nope"}), "SESSION_NOT_FOUND"
    )
    assert details == {"session_id": "sess_nope"}

    bob = harness.connect(principal(Plan.PROFESSIONAL, "bob"))
    bobs = (await harness.create(context=bob))["data"]["session_id"]
    details = session_error(await harness.send(message_type, {"session_id": bobs}), "ACCESS_DENIED")
    assert details == {"session_id": bobs}
    info = await harness.send("get_session", {"session_id": bobs}, context=bob)
    assert info["type"] == "session_info"


async def test_expired_session_is_not_found(harness: Harness) -> None:
    session_id = (await harness.create())["data"]["session_id"]
    harness.clock.advance(minutes=60)
    session_error(
        await harness.send("get_session", {"session_id": session_id}), "SESSION_NOT_FOUND"
    )
    assert (await harness.send("list_sessions"))["data"]["sessions"] == []


async def test_bad_state_filter(harness: Harness) -> None:
    details = session_error(
        await harness.send("list_sessions", {"state": "asleep"}), "VALIDATION_FAILED"
    )
    assert details["field"] == "state"
    assert details["allowed"] == [
        "initializing",
        "ready",
        "running",
        "paused",
        "completed",
        "error",
    ]


# Every domain rejection is injected here through the repository, to show the mapping to
# `session_error` is by code for all of them (the engine's codes included: its messages reach
# the same table).
EVERY_DOMAIN_ERROR: list[DomainError] = [
    MissingSymbols(),
    InvalidSymbol(["X"], ["NYSE"]),
    TooManySymbols(6, 5),
    InvalidDateRange("bad range", {"field": "start_date"}),
    DataUnavailable("NVDA", "1h"),
    InsufficientCapital("1", "1000"),
    ExcessiveCapital("1e9", "1e7"),
    SessionLimitExceeded("too many", {"limit": "active_sessions"}),
    SessionNotFound("sess_x"),
    AccessDenied("sess_x"),
    InvalidState("sess_x", "completed", "start", ["ready"]),
    ValidationFailed("field_x", "bad field"),
    InvalidOrder("quantity", "quantity must be above 0", value="0"),
    DuplicateOrderId("o1"),
    OrderNotFound("o1"),
    InvalidSequence(3, 2),
    SessionBusy("sess_x"),
    OrderFailed("o1"),
]


def _subclasses(cls: type[DomainError]) -> Iterator[type[DomainError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


AUTH_ONLY = {"INVALID_API_KEY", "INVALID_TOKEN"}
"""Refused at the door (REST or the WebSocket upgrade), before any frame is dispatched."""
DATA_IMPORT_ONLY = {"DATA_CONFLICT", "INVALID_BARS"}
"""Raised by `simutrador data import` (MarketDataService) on the server's machine; no wire
message writes bars."""


def test_every_session_error_code_is_exercised() -> None:
    codes = {c.code for c in _subclasses(DomainError)}
    left_out = AUTH_ONLY | DATA_IMPORT_ONLY
    assert left_out <= codes  # every exclusion names a real code
    assert codes - left_out == {e.code for e in EVERY_DOMAIN_ERROR}


@pytest.mark.parametrize("error", EVERY_DOMAIN_ERROR, ids=lambda e: e.code)
async def test_domain_errors_map_to_session_error_by_code(
    clock: FakeClock, error: DomainError
) -> None:
    harness = Harness(
        clock,
        make_service(clock=clock, repository=FailingSessionRepository(error)),
        principal(),
    )
    reply = await harness.send("get_session", {"session_id": "sess_x"}, "rid-9")
    assert reply["request_id"] == "rid-9"
    details = session_error(reply, error.code)
    assert details == error.details
    assert reply["data"]["message"] == error.message


async def test_invalid_state_reply(clock: FakeClock) -> None:
    error = InvalidState("sess_x", "completed", "start", ["ready"])
    harness = Harness(
        clock,
        make_service(clock=clock, repository=FailingSessionRepository(error)),
        principal(),
    )
    details = session_error(
        await harness.send("delete_session", {"session_id": "sess_x"}), "INVALID_STATE"
    )
    assert details == {
        "session_id": "sess_x",
        "state": "completed",
        "action": "start",
        "allowed": ["ready"],
        "allowed_from": ["ready"],
    }


# ---------------------------------------------------------------- internal errors


@pytest.mark.parametrize(
    ("message_type", "data"),
    [
        ("create_session", create_data()),
        ("get_session", {"session_id": "sess_x"}),
        ("list_sessions", {}),
        ("delete_session", {"session_id": "sess_x"}),
    ],
)
async def test_internal_error_is_generic_and_logged(
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    message_type: str,
    data: dict[str, Any],
) -> None:
    repository = FailingSessionRepository(RuntimeError("db password is hunter2"))
    harness = Harness(clock, make_service(clock=clock, repository=repository), principal())

    with caplog.at_level(logging.ERROR, logger="simutrador.protocol"):
        (encoded,) = await harness.dispatcher.handle_frame(
            harness.context,
            json.dumps({"type": message_type, "data": data, "request_id": "boom-1"}),
        )

    reply = json.loads(encoded)
    details = protocol_error(reply, "INTERNAL_ERROR")
    assert details == {}
    assert reply["request_id"] == "boom-1"
    for leak in (b"hunter2", b"Traceback", b"RuntimeError", b".py"):
        assert leak not in encoded
    [record] = [r for r in caplog.records if r.name == "simutrador.protocol"]
    assert record.levelno == logging.ERROR
    assert "boom-1" in record.getMessage()
    assert "user_1" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)

    # The failure was one request's; the connection goes on.
    repository.failure = None
    assert (await harness.send("list_sessions"))["type"] == "session_list"


# ---------------------------------------------------------------- protocol errors


@pytest.mark.parametrize(
    "frame", ["not json", "{", "", "[1, 2", '{"type": "list_sessions"} trailing']
)
async def test_not_json(harness: Harness, frame: str) -> None:
    reply = await harness.raw(frame)
    protocol_error(reply, "INVALID_MESSAGE")
    assert reply["request_id"] is None


@pytest.mark.parametrize(
    "frame", ['[{"type": "list_sessions", "request_id": "r"}]', "7", '"hi"', "null", "false"]
)
async def test_not_an_object(harness: Harness, frame: str) -> None:
    reply = await harness.raw(frame)
    assert protocol_error(reply, "INVALID_MESSAGE") == {"path": "$"}
    assert reply["request_id"] is None


@pytest.mark.parametrize(
    ("message", "path"),
    [
        ({"type": "create_session", "data": create_data(symbols="AAPL")}, "$.data.symbols"),
        ({"type": "create_session", "data": create_data(symbols=[1])}, "$.data.symbols[0]"),
        ({"type": "create_session", "data": create_data(start_date=20230103)}, "$.data.start_date"),
        (
            {"type": "create_session", "data": create_data(initial_capital=True)},
            "$.data.initial_capital",
        ),
        (
            {"type": "create_session", "data": create_data(initial_capital="lots")},
            "$.data.initial_capital",
        ),
        ({"type": "create_session", "data": create_data(metadata=[])}, "$.data.metadata"),
        ({"type": "create_session", "data": create_data(extra=1)}, "$.data"),
        ({"type": "get_session", "data": {"session_id": None}}, "$.data.session_id"),
        ({"type": "get_session", "data": {}}, "$.data"),
        ({"type": "delete_session", "data": []}, "$.data"),
        ({"type": "list_sessions", "data": {"state": 1}}, "$.data.state"),
        ({"type": None}, "$.type"),
        ({"type": ["list_sessions"]}, "$.type"),
        ({}, "$.type"),
    ],
)
async def test_wrong_field_types_name_the_path_and_keep_the_request_id(
    harness: Harness, message: dict[str, Any], path: str
) -> None:
    reply = await harness.raw(json.dumps({**message, "request_id": "salvaged"}))
    details = protocol_error(reply, "INVALID_MESSAGE")
    assert details["path"] == path
    assert reply["request_id"] == "salvaged"


@pytest.mark.parametrize("request_id", [7, 1.5, ["r"], {"r": 1}, True, "r" * 129])
async def test_unusable_request_id_is_refused_and_not_echoed(
    harness: Harness, request_id: object
) -> None:
    reply = await harness.raw(json.dumps({"type": "list_sessions", "request_id": request_id}))
    assert protocol_error(reply, "INVALID_MESSAGE")["path"] == "$.request_id"
    assert reply["request_id"] is None


async def test_request_id_of_the_maximum_length_is_accepted(harness: Harness) -> None:
    reply = await harness.send("list_sessions", request_id="r" * 128)
    assert reply["type"] == "session_list"


async def test_unknown_message_type(harness: Harness) -> None:
    reply = await harness.send("make_coffee", {}, "rid-u")
    details = protocol_error(reply, "UNKNOWN_MESSAGE_TYPE")
    assert reply["request_id"] == "rid-u"
    assert details == {"type": "make_coffee", "supported_types": list(m.CLIENT_MESSAGE_TYPES)}


async def test_unknown_type_is_truncated_in_the_reply(harness: Harness) -> None:
    reply = await harness.send("x" * 10_000)
    details = protocol_error(reply, "UNKNOWN_MESSAGE_TYPE")
    assert len(details["type"]) == 64
    assert len(reply["data"]["message"]) < 200


# The client → server names of PROTOCOL.md §2.1 and §4.3.
SESSION_REQUESTS = ["create_session", "get_session", "list_sessions", "delete_session"]
SIMULATION_REQUESTS = [
    "start_simulation",
    "tick_ack",
    "order_batch",
    "cancel_order",
    "pause_simulation",
    "resume_simulation",
    "query_positions",
    "get_results",
    "resume_session",
]


def test_client_types_are_the_protocols_requests() -> None:
    assert sorted(m.CLIENT_MESSAGE_TYPES) == sorted(SESSION_REQUESTS + SIMULATION_REQUESTS)


@pytest.mark.parametrize("message_type", SIMULATION_REQUESTS)
async def test_simulation_requests_need_the_engine(harness: Harness, message_type: str) -> None:
    # This harness's dispatcher has no SimulationService: the request is well-formed and
    # known, but nothing here can serve it (the engine's own tests drive it over the wire).
    reply = await harness.send(message_type, SIMULATION_DATA[message_type], "rid-r")
    details = protocol_error(reply, "UNKNOWN_MESSAGE_TYPE")
    assert details == {"supported_types": list(m.CLIENT_MESSAGE_TYPES)}
    assert "simulation engine" in reply["data"]["message"]
    assert reply["request_id"] == "rid-r"


SIMULATION_DATA: dict[str, dict[str, Any]] = {
    "start_simulation": {"session_id": "sess_x"},
    "tick_ack": {"session_id": "sess_x", "sequence_id": 1},
    "order_batch": {"session_id": "sess_x", "batch_id": "b1", "orders": []},
    "cancel_order": {"session_id": "sess_x", "order_id": "o1"},
    "pause_simulation": {"session_id": "sess_x"},
    "resume_simulation": {"session_id": "sess_x"},
    "query_positions": {"session_id": "sess_x"},
    "get_results": {"session_id": "sess_x"},
    "resume_session": {"session_id": "sess_x", "last_sequence_id": 0},
}


@pytest.mark.parametrize(
    "frame", [b"", b"\x00\xff", b'{"type": "list_sessions", "request_id": "rid-b"}']
)
async def test_binary_frames_are_refused(harness: Harness, frame: bytes) -> None:
    reply = await harness.raw(frame)
    assert protocol_error(reply, "INVALID_MESSAGE") == {"frame": "binary"}
    assert reply["request_id"] is None


def frame_of(size: int, request_id: str = "rid-s") -> str:
    """A valid list_sessions frame of exactly `size` UTF-8 bytes (whitespace padding)."""
    head, tail = json.dumps({"type": "list_sessions", "request_id": request_id})[:-1], "}"
    return head + " " * (size - len(head) - len(tail)) + tail


async def test_frame_size_limit(clock: FakeClock, service: SessionService) -> None:
    harness = Harness(clock, service, principal(), max_message_bytes=256)

    assert (await harness.raw(frame_of(256)))["type"] == "session_list"
    reply = await harness.raw(frame_of(257))
    assert protocol_error(reply, "MESSAGE_TOO_LARGE") == {"size": 257, "max_bytes": 256}
    assert reply["request_id"] == "rid-s"  # echoed: the envelope is still read
    assert (await harness.raw(frame_of(256)))["type"] == "session_list"


async def test_frame_size_counts_utf8_bytes(clock: FakeClock, service: SessionService) -> None:
    harness = Harness(clock, service, principal(), max_message_bytes=256)
    # 100 characters, 300 bytes: the character count alone would let it through.
    frame = json.dumps({"type": "list_sessions", "request_id": "€" * 85}, ensure_ascii=False)
    assert len(frame) < 256 < len(frame.encode())
    protocol_error(await harness.raw(frame), "MESSAGE_TOO_LARGE")


async def test_text_that_is_not_valid_unicode_is_refused(harness: Harness) -> None:
    """A transport that hands over a lone surrogate gets an error frame, not an exception."""
    reply = await harness.raw('{"type": "list_sessions", "request_id": "\ud800"}')
    protocol_error(reply, "INVALID_MESSAGE")
    assert reply["request_id"] is None


@pytest.mark.parametrize(
    "frame",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"type": "create_session", "data": ' + '{"a": ' * 5000 + "1" + "}" * 5001,
        '{"type": "create_session", "data": '
        + json.dumps(create_data(initial_capital=1e308))
        + "}",
        '{"type": "list_sessions", "request_id": "\\ud800"}',
        '{"type": "list_sessions", "type": "get_session"}',
    ],
    ids=["deep-array", "deep-object", "huge-number", "escaped-surrogate", "duplicate-key"],
)
async def test_hostile_frames_get_one_reply(
    clock: FakeClock, service: SessionService, frame: str
) -> None:
    harness = Harness(clock, service, principal(), max_message_bytes=1 << 20)
    reply = await harness.raw(frame)
    assert reply["type"] in {"error", "session_error", "session_list"}


# ---------------------------------------------------------------- rate limit


async def test_rate_limit_per_connection(clock: FakeClock, service: SessionService) -> None:
    caller = principal(Plan.FREE, "fast", limits_for(Plan.FREE, messages_per_minute=3))
    harness = Harness(clock, service, caller)

    for _ in range(3):
        assert (await harness.send("list_sessions"))["type"] == "session_list"
    reply = await harness.create()

    details = protocol_error(reply, "RATE_LIMIT_EXCEEDED")
    # 3 per minute: the next message is allowed 20 s after the bucket ran dry.
    assert details == {"retry_after_ms": 20_001, "limit": "messages_per_minute", "max": 3}
    assert reply["data"]["recoverable"] is True

    # Another connection of the same user has its own budget.
    other = harness.connect(caller)
    listed = await harness.send("list_sessions", context=other)
    assert listed["data"]["sessions"] == []  # the rate-limited create did nothing

    clock.advance(19.9)
    protocol_error(await harness.send("list_sessions"), "RATE_LIMIT_EXCEEDED")
    clock.advance(0.2)
    assert (await harness.send("list_sessions"))["type"] == "session_list"


async def test_bad_frames_spend_the_budget_too(clock: FakeClock, service: SessionService) -> None:
    caller = principal(Plan.FREE, "noisy", limits_for(Plan.FREE, messages_per_minute=2))
    harness = Harness(clock, service, caller)
    for frame in (b"\x00", "not json"):
        protocol_error(await harness.raw(frame), "INVALID_MESSAGE")
    protocol_error(await harness.raw(b"\x00"), "RATE_LIMIT_EXCEEDED")
    assert harness.context.messages == 3


async def test_budget_refills_continuously(clock: FakeClock, service: SessionService) -> None:
    caller = principal(Plan.FREE, "steady", limits_for(Plan.FREE, messages_per_minute=60))
    harness = Harness(clock, service, caller)
    for _ in range(60):
        await harness.send("list_sessions")
    protocol_error(await harness.send("list_sessions"), "RATE_LIMIT_EXCEEDED")
    # One message per second is the sustained rate.
    for _ in range(5):
        clock.advance(1)
        assert (await harness.send("list_sessions"))["type"] == "session_list"
        protocol_error(await harness.send("list_sessions"), "RATE_LIMIT_EXCEEDED")


# ---------------------------------------------------------------- timestamps


async def test_every_reply_is_stamped_with_the_clock(harness: Harness) -> None:
    harness.clock.advance(hours=3, seconds=0.25)
    replies = [
        await harness.create(),
        await harness.send("list_sessions"),
        await harness.send("get_session", {"session_id": "sess_nope"}),
        await harness.raw("nope"),
        await harness.raw(b"\x00"),
    ]
    assert {r["timestamp"] for r in replies} == {"2024-01-15T12:30:00.250000Z"}


class BrokenBucket(TokenBucket):
    """A rate limiter with a bug: the frame-level path must still answer, not raise."""

    def take(self, now: float) -> float:
        raise RuntimeError("bucket bug")


async def test_a_bug_before_dispatch_is_an_internal_error_and_the_connection_goes_on(
    clock: FakeClock, service: SessionService, caplog: pytest.LogCaptureFixture
) -> None:
    harness = Harness(clock, service, principal())
    harness.context.bucket = BrokenBucket(10.0, 60.0)
    with caplog.at_level(logging.ERROR, logger="simutrador.protocol"):
        reply = await harness.raw(json.dumps({"type": "list_sessions", "request_id": "b1"}))
    assert reply["type"] == "error"
    assert reply["data"]["error_code"] == "INTERNAL_ERROR"
    assert "bucket bug" not in json.dumps(reply)
    assert any(r.exc_info is not None for r in caplog.records)

    harness.context.bucket = TokenBucket(10.0, 60.0)
    assert (await harness.raw(json.dumps({"type": "list_sessions"})))["type"] == "session_list"
