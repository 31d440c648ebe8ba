"""Protocol errors over a real WebSocket: each bad frame gets one typed `error` reply, and
the same connection still serves a valid request afterwards."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from domain.limits import PLAN_DEFAULTS, Plan
from entrypoints.server.embedded import EmbeddedServer
from tests.integration.conftest import ServerFactory, issue_token
from tests.integration.wsclient import (
    RECV_TIMEOUT,
    Message,
    WsClient,
    error_code,
    frame,
    session_request,
)

MAX_BYTES = 64 * 1024
SUPPORTED = [
    "create_session",
    "get_session",
    "list_sessions",
    "delete_session",
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
"""PROTOCOL.md §2.1 and §4.3, in the order the server lists them."""
_users = itertools.count(1)


@pytest.fixture
async def client(shared_server: EmbeddedServer) -> AsyncIterator[WsClient]:
    token = issue_token(shared_server, f"proto{next(_users)}")
    async with await WsClient.connect(shared_server, token) as ws:
        yield ws


def assert_protocol_error(reply: Message, code: str) -> dict[str, Any]:
    assert reply["type"] == "error", reply
    assert error_code(reply) == code, reply
    assert isinstance(reply["data"]["message"], str)
    assert reply["data"]["message"]
    assert reply["data"]["recoverable"] is True
    details: dict[str, Any] = reply["data"]["details"]
    return details


async def assert_still_serves(client: WsClient) -> None:
    """The connection survived the bad frame: a valid request is answered normally."""
    reply = await client.request("list_sessions", {}, request_id="after-error")
    assert reply["type"] == "session_list"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("this is not json", id="text"),
        pytest.param('{"type": "list_sessions", ', id="truncated"),
        pytest.param("", id="empty"),
    ],
)
async def test_not_json(client: WsClient, raw: str) -> None:
    await client.send_raw(raw)
    reply = await client.recv()
    assert_protocol_error(reply, "INVALID_MESSAGE")
    assert reply["request_id"] is None
    await assert_still_serves(client)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param('[{"type": "list_sessions", "request_id": "r"}]', id="array"),
        pytest.param("42", id="number"),
        pytest.param('"list_sessions"', id="string"),
        pytest.param("null", id="null"),
        pytest.param("true", id="bool"),
    ],
)
async def test_json_that_is_not_an_object(client: WsClient, raw: str) -> None:
    await client.send_raw(raw)
    reply = await client.recv()
    details = assert_protocol_error(reply, "INVALID_MESSAGE")
    assert details["path"] == "$"
    assert reply["request_id"] is None
    await assert_still_serves(client)


@pytest.mark.parametrize(
    ("message", "path"),
    [
        pytest.param(
            frame("create_session", {**session_request(), "symbols": "AAPL"}, "r-types"),
            "$.data.symbols",
            id="symbols-not-a-list",
        ),
        pytest.param(
            frame("create_session", {**session_request(), "symbols": ["AAPL", 7]}, "r-types"),
            "$.data.symbols[1]",
            id="symbol-not-a-string",
        ),
        pytest.param(
            frame("create_session", {**session_request(), "initial_capital": [1000]}, "r-types"),
            "$.data.initial_capital",
            id="capital-not-a-number",
        ),
        pytest.param(
            frame("create_session", {**session_request(), "metadata": "notes"}, "r-types"),
            "$.data.metadata",
            id="metadata-not-an-object",
        ),
        pytest.param(
            frame("create_session", session_request(colour="blue"), "r-types"),
            "$.data",
            id="unknown-field",
        ),
        pytest.param(
            frame("get_session", {"session_id": 5}, "r-types"),
            "$.data.session_id",
            id="session-id-not-a-string",
        ),
        pytest.param(
            {"type": "get_session", "data": "sess_x", "request_id": "r-types"},
            "$.data",
            id="data-not-an-object",
        ),
        pytest.param(
            {"type": "list_sessions", "data": {"state": 3}, "request_id": "r-types"},
            "$.data.state",
            id="state-not-a-string",
        ),
        pytest.param({"type": 5, "request_id": "r-types"}, "$.type", id="type-not-a-string"),
        pytest.param({"data": {}, "request_id": "r-types"}, "$.type", id="type-missing"),
    ],
)
async def test_wrong_field_types_name_the_path(
    client: WsClient, message: dict[str, Any], path: str
) -> None:
    await client.send(message)
    reply = await client.recv()
    details = assert_protocol_error(reply, "INVALID_MESSAGE")
    assert details["path"] == path
    # The request_id is salvaged from a frame that failed to decode.
    assert reply["request_id"] == "r-types"
    await assert_still_serves(client)


@pytest.mark.parametrize(
    "request_id",
    [pytest.param(7, id="not-a-string"), pytest.param("r" * 129, id="too-long")],
)
async def test_unusable_request_id(client: WsClient, request_id: object) -> None:
    await client.send({"type": "list_sessions", "request_id": request_id})
    reply = await client.recv()
    details = assert_protocol_error(reply, "INVALID_MESSAGE")
    assert details["path"] == "$.request_id"
    assert reply["request_id"] is None  # never echo something that is not a valid id
    await assert_still_serves(client)


@pytest.mark.parametrize("message_type", ["make_coffee", "session_created", "LIST_SESSIONS"])
async def test_unknown_message_type(client: WsClient, message_type: str) -> None:
    reply = await client.request(message_type, {}, request_id="r-unknown")
    details = assert_protocol_error(reply, "UNKNOWN_MESSAGE_TYPE")
    assert details["type"] == message_type
    assert details["supported_types"] == SUPPORTED
    await assert_still_serves(client)


@pytest.mark.parametrize(
    ("message_type", "data"),
    [
        ("start_simulation", {"session_id": "sess_x"}),
        ("tick_ack", {"session_id": "sess_x", "sequence_id": 1}),
        ("order_batch", {"session_id": "sess_x", "batch_id": "b1", "orders": []}),
        ("cancel_order", {"session_id": "sess_x", "order_id": "o1"}),
        ("pause_simulation", {"session_id": "sess_x"}),
        ("resume_simulation", {"session_id": "sess_x"}),
        ("query_positions", {"session_id": "sess_x"}),
        ("get_results", {"session_id": "sess_x"}),
        ("resume_session", {"session_id": "sess_x", "last_sequence_id": 0}),
    ],
)
async def test_simulation_requests_on_an_unknown_session(
    client: WsClient, message_type: str, data: dict[str, Any]
) -> None:
    # Served since the engine is wired: refused as a session error, not as an unknown type.
    reply = await client.request(message_type, data, request_id="r-sim")
    assert reply["type"] == "session_error", reply
    assert error_code(reply) == "SESSION_NOT_FOUND"
    assert reply["data"]["details"] == {"session_id": "sess_x"}
    assert reply["request_id"] == "r-sim"
    await assert_still_serves(client)


def padded_list_sessions(size: int) -> str:
    """A valid `list_sessions` frame of exactly `size` bytes (JSON whitespace as padding)."""
    head, tail = '{"type": "list_sessions", "request_id": "r-size"', "}"
    padding = size - len(head) - len(tail)
    assert padding >= 0
    return head + " " * padding + tail


async def test_frame_at_the_size_limit_is_served(client: WsClient) -> None:
    await client.send_raw(padded_list_sessions(MAX_BYTES))
    reply = await client.recv()
    assert reply["type"] == "session_list"
    assert reply["request_id"] == "r-size"


@pytest.mark.parametrize("size", [MAX_BYTES + 1, 4 * MAX_BYTES])
async def test_oversized_frame(client: WsClient, size: int) -> None:
    await client.send_raw(padded_list_sessions(size))
    reply = await client.recv()
    details = assert_protocol_error(reply, "MESSAGE_TOO_LARGE")
    assert details == {"size": size, "max_bytes": MAX_BYTES}
    await assert_still_serves(client)


async def test_oversize_is_counted_in_utf8_bytes(client: WsClient) -> None:
    # 22 000 characters, but 66 000 bytes in UTF-8: over the limit.
    message = json.dumps(
        frame("create_session", session_request(metadata={"note": "€" * 22_000})),
        ensure_ascii=False,
    )
    assert len(message) < MAX_BYTES < len(message.encode())
    await client.send_raw(message)
    assert_protocol_error(await client.recv(), "MESSAGE_TOO_LARGE")
    await assert_still_serves(client)


async def test_frame_beyond_the_transport_ceiling_closes_with_1009(client: WsClient) -> None:
    """Past 1 MiB the WebSocket layer itself refuses the frame (message too big)."""
    await client.send_raw(padded_list_sessions(2 * 1024 * 1024))
    with pytest.raises(ConnectionClosed) as closed:
        await client.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"\x00\x01\x02", id="bytes"),
        pytest.param(b'{"type": "list_sessions", "request_id": "r-bin"}', id="json-as-binary"),
    ],
)
async def test_binary_frame(client: WsClient, payload: bytes) -> None:
    await client.send_raw(payload)
    reply = await client.recv()
    details = assert_protocol_error(reply, "INVALID_MESSAGE")
    assert details == {"frame": "binary"}
    await assert_still_serves(client)


async def test_each_bad_frame_gets_exactly_one_reply_in_order(client: WsClient) -> None:
    """Pipelined good and bad frames: one reply each, in order, the connection kept."""
    replies = await client.pipeline(
        [
            "not json",
            frame("list_sessions", None, "p1"),
            b"\xff",
            frame("make_coffee", {}, "p2"),
            frame("get_session", {"session_id": "sess_missing"}, "p3"),
            padded_list_sessions(MAX_BYTES + 10),
            frame("list_sessions", {}, "p4"),
        ]
    )
    assert [(r["type"], r["data"].get("error_code")) for r in replies] == [
        ("error", "INVALID_MESSAGE"),
        ("session_list", None),
        ("error", "INVALID_MESSAGE"),
        ("error", "UNKNOWN_MESSAGE_TYPE"),
        ("session_error", "SESSION_NOT_FOUND"),
        ("error", "MESSAGE_TOO_LARGE"),
        ("session_list", None),
    ]
    assert [r["request_id"] for r in replies] == [None, "p1", None, "p2", "p3", "r-size", "p4"]


async def test_message_rate_limit(server_factory: ServerFactory) -> None:
    per_minute = 120  # a bucket of 120 that refills 2 per second: retry within 0.5 s
    limits = dict(PLAN_DEFAULTS)
    limits[Plan.PROFESSIONAL] = dataclasses.replace(
        PLAN_DEFAULTS[Plan.PROFESSIONAL], messages_per_minute=per_minute
    )
    server = server_factory(plan_limits=limits)
    async with await WsClient.connect(server, issue_token(server, "chatty")) as client:
        assert client.ready["data"]["limits"]["messages_per_minute"] == per_minute
        burst = [frame("list_sessions", {}, f"l{i}") for i in range(per_minute)]
        burst += [frame("create_session", session_request(), f"c{i}") for i in range(10)]

        replies = await client.pipeline(burst)

        assert all(r["type"] == "session_list" for r in replies[:per_minute])
        tail = replies[per_minute:]
        limited = [r for r in tail if r["type"] == "error"]
        created = [r for r in tail if r["type"] == "session_created"]
        assert len(limited) + len(created) == len(tail)
        assert len(limited) >= 8  # at most a token or two refill during the burst
        for reply in limited:
            details = assert_protocol_error(reply, "RATE_LIMIT_EXCEEDED")
            assert 0 < details["retry_after_ms"] <= 501
        # A refused create did nothing.
        listed = await wait_then_list(client, limited[-1]["data"]["details"]["retry_after_ms"])
        assert listed["type"] == "session_list"
        assert len(listed["data"]["sessions"]) == len(created)


async def wait_then_list(client: WsClient, retry_after_ms: int) -> Message:
    """Honour `retry_after_ms`, then the next request must be served."""
    assert retry_after_ms / 1000 < RECV_TIMEOUT
    await asyncio.sleep(retry_after_ms / 1000)
    return await client.request("list_sessions", {}, request_id="after-wait")
