"""Random and mutated frames against a real server: it never crashes, never closes the
connection, answers every frame with a typed reply, and still serves valid requests after.

Each test drives ONE connection with a blocking client (the server runs in its own thread),
so hypothesis stays synchronous. A frame that kills the connection fails its example and the
client reconnects, so shrinking works on a fresh connection."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from domain.limits import Plan
from entrypoints.protocol import messages as m
from entrypoints.server.embedded import EmbeddedServer
from tests.reliability.conftest import ServerFactory, create_data, issue_token, raised_limits

REPLY_TYPES = {"session_created", "session_info", "session_list", "session_deleted"}
ERROR_TYPES = {"error", "session_error"}
RECV_TIMEOUT = 10.0


def fuzz_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


class FuzzClient:
    """Sends one frame, checks the one reply, then proves the connection still works."""

    def __init__(self, server: EmbeddedServer, token: str) -> None:
        self._url = f"{server.ws_url}?token={token}"
        self.frames = 0
        self.replies: dict[str, int] = {}
        self._ws = self._connect()

    def _connect(self) -> ClientConnection:
        ws = connect(self._url, max_size=None, open_timeout=20, legacy=True)
        ready = json.loads(ws.recv(timeout=RECV_TIMEOUT))
        assert ready["type"] == "connection_ready"
        return ws

    def send(self, frame: str | bytes) -> dict[str, Any]:
        """The reply to `frame`, checked to be a well-formed typed server message."""
        self.frames += 1
        try:
            self._ws.send(frame)
            raw = self._ws.recv(timeout=RECV_TIMEOUT)
        except (ConnectionClosed, TimeoutError) as exc:
            self._ws.close()
            self._ws = self._connect()  # the next example gets a live connection
            raise AssertionError(f"connection lost after {frame[:200]!r}: {exc!r}") from exc
        assert isinstance(raw, str), "server replies are text frames"
        m.server_decoder.decode(raw)  # every reply fits the wire contract exactly
        reply: dict[str, Any] = json.loads(raw)
        kind = reply["type"]
        self.replies[kind] = self.replies.get(kind, 0) + 1
        assert kind in REPLY_TYPES | ERROR_TYPES, reply
        if kind in ERROR_TYPES:
            code = reply["data"]["error_code"]
            assert isinstance(code, str), reply
            assert code, reply
            assert code != "INTERNAL_ERROR", f"{frame[:200]!r} → {reply}"
            assert "Traceback" not in reply["data"]["message"]
        return reply

    def probe(self) -> None:
        """A valid request right after the fuzzed one is still answered normally."""
        reply = self.send(json.dumps({"type": "list_sessions", "request_id": "probe"}))
        assert reply["type"] == "session_list", reply
        assert reply["request_id"] == "probe"

    def exchange(self, frame: str | bytes) -> dict[str, Any]:
        reply = self.send(frame)
        self.probe()
        return reply

    def close(self) -> None:
        self._ws.close()


@pytest.fixture
def fuzz(server_factory: ServerFactory) -> Iterator[FuzzClient]:
    """One server and one connection for a whole test function (every example)."""
    server = server_factory(
        plan_limits=raised_limits(
            messages_per_minute=1_000_000, max_active_sessions=10_000, sessions_per_hour=100_000
        )
    )
    client = FuzzClient(server, issue_token(server, "fuzzer", Plan.ENTERPRISE))
    yield client
    # The connection survived every frame: a full create → get → delete still works.
    created = client.send(json.dumps({"type": "create_session", "data": create_data()}))
    assert created["type"] == "session_created", created
    session_id = created["data"]["session_id"]
    ref = {"session_id": session_id}
    assert client.send(json.dumps({"type": "get_session", "data": ref}))["type"] == "session_info"
    deleted = client.send(json.dumps({"type": "delete_session", "data": ref}))
    assert deleted["type"] == "session_deleted"
    client.close()
    print(f"\nfuzz: {client.frames} frames, replies {dict(sorted(client.replies.items()))}")


# ------------------------------------------------------------------------------ strategies

text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
"""Any unicode a client can encode (lone surrogates cannot travel as UTF-8)."""

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats()
    | text
    | st.sampled_from(
        ["", "AAPL", "EUR/USD", "BTC-USD", "2023-01-03", "2023-01-03T10:00:00Z", "1e999", "-0"]
    )
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=16,
)

VALID_FRAMES: list[dict[str, Any]] = [
    {"type": "create_session", "request_id": "c", "data": create_data()},
    {"type": "get_session", "request_id": "g", "data": {"session_id": "sess_missing"}},
    {"type": "list_sessions", "request_id": "l", "data": {"state": "ready"}},
    {"type": "delete_session", "request_id": "d", "data": {"session_id": "sess_missing"}},
]
MESSAGE_TYPES = [*m.CLIENT_MESSAGE_TYPES, "", "CREATE_SESSION", "make_coffee"]


def encode(value: Any, ascii_only: bool) -> str:
    # allow_nan: NaN and Infinity are not JSON, so they make useful malformed frames too.
    return json.dumps(value, ensure_ascii=ascii_only)


def is_json(value: Any) -> bool:
    """Whether `value` encodes as standard JSON (no NaN or Infinity)."""
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        return False
    return True


@st.composite
def message_shaped(draw: st.DrawFn) -> dict[str, Any]:
    """An object with the envelope's keys, each present or not, each of any type."""
    message: dict[str, Any] = {}
    if draw(st.booleans()):
        message["type"] = draw(st.sampled_from(MESSAGE_TYPES) | json_values)
    if draw(st.booleans()):
        message["data"] = draw(json_values)
    if draw(st.booleans()):
        message["request_id"] = draw(text | json_values)
    return message


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A valid frame with fields dropped, retyped or added, at the top or inside `data`."""
    message: dict[str, Any] = json.loads(json.dumps(draw(st.sampled_from(VALID_FRAMES))))
    for _ in range(draw(st.integers(1, 3))):
        data = message.get("data")
        target = data if isinstance(data, dict) and draw(st.booleans()) else message
        key = draw(st.sampled_from([*target.keys(), "extra", "metadata", "symbols"]))
        action = draw(st.sampled_from(["drop", "retype", "retype"]))
        if action == "drop":
            target.pop(key, None)
        else:
            target[key] = draw(json_values)
    return message


@st.composite
def text_mutation(draw: st.DrawFn) -> str:
    """A valid frame's text cut short, or with characters inserted or replaced."""
    frame = json.dumps(draw(st.sampled_from(VALID_FRAMES)))
    at = draw(st.integers(0, len(frame)))
    match draw(st.sampled_from(["truncate", "insert", "replace"])):
        case "truncate":
            return frame[:at]
        case "insert":
            return frame[:at] + draw(text) + frame[at:]
        case _:
            return frame[:at] + draw(text) + frame[at + 1 :]


# ------------------------------------------------------------------------------ tests


def test_random_json_values(fuzz: FuzzClient) -> None:
    @fuzz_settings(60)
    @given(json_values, st.booleans())
    def check(value: Any, ascii_only: bool) -> None:
        reply = fuzz.exchange(encode(value, ascii_only))
        assert reply["type"] == "error"

    check()


def test_message_shaped_objects(fuzz: FuzzClient) -> None:
    @fuzz_settings(80)
    @given(message_shaped(), st.booleans())
    def check(message: dict[str, Any], ascii_only: bool) -> None:
        reply = fuzz.exchange(encode(message, ascii_only))
        # A failed request that is still a JSON object gets its request_id echoed.
        request_id = message.get("request_id")
        echoable = isinstance(request_id, str) and len(request_id) <= 128 and is_json(message)
        if reply["type"] in ERROR_TYPES and echoable:
            assert reply["request_id"] == request_id, (message, reply)

    check()


def test_mutated_valid_frames(fuzz: FuzzClient) -> None:
    @fuzz_settings(80)
    @given(mutated() | text_mutation(), st.booleans())
    def check(message: dict[str, Any] | str, ascii_only: bool) -> None:
        frame = message if isinstance(message, str) else encode(message, ascii_only)
        fuzz.exchange(frame)

    check()


def test_raw_strings_and_binary_frames(fuzz: FuzzClient) -> None:
    @fuzz_settings(40)
    @given(
        st.text(st.characters(exclude_categories=["Cs"]), max_size=300) | st.binary(max_size=300)
    )
    @example("")
    @example(b"")
    @example(b'{"type": "list_sessions"}')  # valid JSON, but binary frames are refused
    @example("\x00" * 64)
    @example("\ufeff" + json.dumps(VALID_FRAMES[2]))  # a byte-order mark is not JSON
    def check(frame: str | bytes) -> None:
        reply = fuzz.exchange(frame)
        assert reply["type"] == "error"
        assert reply["data"]["error_code"] == "INVALID_MESSAGE"

    check()


def _deep(open_: str, close: str, depth: int, inner: str = "1") -> str:
    return open_ * depth + inner + close * depth


def _create_with(**fields: Any) -> str:
    return json.dumps({"type": "create_session", "request_id": "x", "data": create_data(**fields)})


EDGE_CASES: dict[str, str] = {
    "deep-array": _deep("[", "]", 100_000, ""),
    "deep-object": _deep('{"a":', "}", 50_000),
    "deep-type": '{"type":' + _deep("[", "]", 5_000) + "}",
    "deep-request-id": '{"type":"list_sessions","request_id":' + _deep("[", "]", 5_000) + "}",
    "deep-data": '{"type":"list_sessions","data":' + _deep('{"a":', "}", 5_000) + "}",
    "deep-metadata": _create_with(metadata="@").replace('"@"', _deep('{"a":', "}", 5_000)),
    "metadata-9-levels": _create_with(metadata=json.loads(_deep('{"a":', "}", 9))),
    "huge-int-capital": _create_with(initial_capital=int("9" * 4000)),
    "huge-exponent-capital": _create_with(initial_capital="@").replace('"@"', "1e999999999"),
    "tiny-exponent-capital": _create_with(initial_capital="@").replace('"@"', "1e-999999999"),
    "huge-string-capital": _create_with(initial_capital="9" * 5000),
    "nan-capital": _create_with(initial_capital="NaN"),
    "snan-capital": _create_with(initial_capital="sNaN"),
    "infinity-capital": _create_with(initial_capital="@").replace('"@"', "Infinity"),
    "negative-zero-capital": _create_with(initial_capital=-0.0),
    "huge-commission": _create_with(commission_per_share="1e999999"),
    "huge-slippage": _create_with(slippage_bps=int("9" * 1000)),
    "bool-capital": _create_with(initial_capital=True),
    "year-0-date": _create_with(start_date="0000-01-01"),
    "year-9999-date": _create_with(end_date="9999-12-31T23:59:59.999999+14:00"),
    "before-year-1-in-utc": _create_with(start_date="0001-01-01T00:00:00+23:59"),
    "after-year-9999-in-utc": _create_with(end_date="9999-12-31T23:59:59-14:00"),
    "fullwidth-symbols": _create_with(symbols=["\uff21\uff21\uff30\uff2c"]),  # full-width AAPL
    "rtl-and-zero-width": _create_with(symbols=["\u202eLPAA", "AA\u200bPL"]),
    "nul-in-symbol": _create_with(symbols=["AAPL\x00"]),
    "thousand-symbols": _create_with(symbols=[f"S{i}" for i in range(1000)]),
    "duplicate-symbols": _create_with(symbols=["AAPL", "aapl", "AAPL"]),
    "symbols-not-strings": _create_with(symbols=[1, None, {"a": 1}]),
    "long-request-id": json.dumps({"type": "list_sessions", "request_id": "r" * 129}),
    "emoji-request-id": json.dumps(
        {"type": "get_session", "request_id": "🚀" * 20, "data": {"session_id": "sess_🚀"}}
    ),
    "duplicate-keys": '{"type":"list_sessions","type":"get_session","data":{}}',
    "over-protocol-limit": json.dumps({"type": "list_sessions", "pad": "x" * 70_000}),
    "over-limit-multibyte": json.dumps(
        {"type": "list_sessions", "pad": "€" * 30_000}, ensure_ascii=False
    ),
    "utf8-bom": "\ufeff{}",
    "trailing-garbage": '{"type":"list_sessions"} {}',
    "numbers-as-type": '{"type": 1e400}',
    "session-id-huge": json.dumps({"type": "get_session", "data": {"session_id": "s" * 60_000}}),
}


def test_edge_case_frames(fuzz: FuzzClient) -> None:
    """Hand-picked hostile frames, all on one connection; every failure is reported."""
    failures: list[str] = []
    for name, frame in EDGE_CASES.items():
        try:
            reply = fuzz.exchange(frame)
            assert reply["type"] in ERROR_TYPES, reply
        except AssertionError as exc:
            failures.append(f"{name}: {str(exc)[:300]}")
    assert not failures, "\n".join(failures)
