"""A tiny typed WebSocket test client that speaks PROTOCOL.md frames to a real server, plus
polling and server-start helpers for the integration tests. Deliberately not an SDK: it
checks the wire as raw JSON, so the tests see exactly what a foreign client would."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Protocol

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from entrypoints.server.embedded import EmbeddedServer

Message = dict[str, Any]


class Reachable(Protocol):
    """A server to connect to: an `EmbeddedServer`, or a `simutrador serve` process."""

    @property
    def ws_url(self) -> str: ...


RECV_TIMEOUT = 5.0
"""No reply in this long means the server lost the request: fail instead of hanging."""


def check_server_message(message: object) -> Message:
    """Every server frame is a JSON object with a string `type`, an object `data` and a UTC
    ISO 8601 `timestamp` (PROTOCOL.md §2); return it typed."""
    assert isinstance(message, dict), f"server frame is not a JSON object: {message!r}"
    assert isinstance(message.get("type"), str), f"server frame without a type: {message!r}"
    assert isinstance(message.get("data"), dict), f"server frame without data: {message!r}"
    stamp = message.get("timestamp")
    assert isinstance(stamp, str), f"server frame without a timestamp: {message!r}"
    parsed = datetime.fromisoformat(stamp)
    assert parsed.utcoffset() == timedelta(0), f"timestamp {stamp!r} is not UTC"
    return message


def session_request(
    symbols: Iterable[str] = ("AAPL",),
    start_date: str = "2023-01-03",
    end_date: str = "2023-06-30",
    initial_capital: str | int | float = "100000",
    **extra: Any,
) -> Message:
    """`create_session` data that every plan and the shipped catalog accept."""
    return {
        "symbols": list(symbols),
        "start_date": start_date,
        "end_date": end_date,
        "initial_capital": initial_capital,
        **extra,
    }


def error_code(reply: Mapping[str, Any]) -> str:
    code = reply["data"]["error_code"]
    assert isinstance(code, str)
    return code


class WsClient:
    """One open, admitted connection: `async with await WsClient.connect(server, token) as ws`."""

    def __init__(self, connection: ClientConnection, ready: Message) -> None:
        self.connection = connection
        self.ready = ready
        self._request_ids = itertools.count(1)

    @classmethod
    async def connect(cls, server: Reachable, token: str, **options: Any) -> WsClient:
        """Connect with `token` and read the `connection_ready` the server must send first.
        `options` go to `websockets.connect` (e.g. a longer `open_timeout` under load)."""
        options.setdefault("open_timeout", 5)
        connection = await connect(token_url(server, token), proxy=None, **options)
        client = cls(connection, {})
        try:
            ready = await client.recv()
            assert ready["type"] == "connection_ready", f"first frame was {ready!r}"
        except BaseException:
            await connection.close()
            raise
        client.ready = ready
        return client

    async def __aenter__(self) -> WsClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self.connection.close()

    def next_request_id(self) -> str:
        return f"req_{next(self._request_ids)}"

    async def send_raw(self, frame: str | bytes) -> None:
        """Send one frame as is: text for `str`, binary for `bytes`."""
        await self.connection.send(frame)

    async def send(self, message: Mapping[str, Any]) -> None:
        await self.send_raw(json.dumps(message))

    async def recv(self) -> Message:
        """The next server frame, checked to be a well-formed text JSON message."""
        async with asyncio.timeout(RECV_TIMEOUT):
            raw = await self.connection.recv()
        assert isinstance(raw, str), "the server must answer with text frames"
        return check_server_message(json.loads(raw))

    async def request(
        self,
        message_type: str,
        data: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> Message:
        """Send one request and return its reply, checking that `request_id` was echoed."""
        rid = request_id if request_id is not None else self.next_request_id()
        await self.send(frame(message_type, data, rid))
        reply = await self.recv()
        assert reply.get("request_id") == rid, f"request_id {rid!r} not echoed: {reply!r}"
        return reply

    async def create_session(self, **overrides: Any) -> Message:
        return await self.request("create_session", session_request(**overrides))

    async def pipeline(self, messages: Iterable[Mapping[str, Any] | str | bytes]) -> list[Message]:
        """Send every frame without waiting, then read one reply per frame, in order."""
        frames = list(messages)
        for item in frames:
            if isinstance(item, str | bytes):
                await self.send_raw(item)
            else:
                await self.send(item)
        return [await self.recv() for _ in frames]


def frame(
    message_type: str, data: Mapping[str, Any] | None = None, request_id: str | None = None
) -> Message:
    """One client message; `data` and `request_id` are left out when None."""
    message: Message = {"type": message_type}
    if data is not None:
        message["data"] = dict(data)
    if request_id is not None:
        message["request_id"] = request_id
    return message


def token_url(server: Reachable, token: str) -> str:
    return f"{server.ws_url}?token={token}"


async def expect_refused(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    send_first: str | None = None,
) -> Close:
    """Connect and expect the server to close before sending any message; return the close
    frame it sent. `send_first` is sent straight after the handshake, to show that even a
    request already in flight is not processed."""
    async with connect(url, proxy=None, open_timeout=5, additional_headers=headers) as ws:
        if send_first is not None:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(send_first)
        try:
            async with asyncio.timeout(RECV_TIMEOUT):
                message = await ws.recv()
        except ConnectionClosed as exc:
            close = exc.rcvd
        else:
            raise AssertionError(f"the server sent {message!r} instead of closing")
    if close is None:
        raise AssertionError("the connection dropped without a close frame")
    return close


async def health(server: EmbeddedServer) -> Message:
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.get(f"{server.http_url}/health")
    response.raise_for_status()
    body: Message = response.json()
    return body


async def wait_for(
    condition: Callable[[], Awaitable[bool]],
    within: float = 5.0,
    interval: float = 0.02,
    what: str = "condition",
) -> float:
    """Poll `condition` until it holds; seconds waited. Fails after `within` s, never hangs."""
    started = time.monotonic()
    deadline = started + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {within} s")
        await asyncio.sleep(interval)
    return time.monotonic() - started


async def wait_for_health(
    server: EmbeddedServer, field: str, value: int, within: float = 5.0
) -> float:
    """Poll /health until `field` (active_sessions / active_connections) equals `value`."""

    async def reached() -> bool:
        return bool((await health(server))[field] == value)

    return await wait_for(reached, within, what=f"/health {field} == {value}")


# ---------------------------------------------------------------- servers outside the fixture


# ---------------------------------------------------------------- simulation (PROTOCOL.md §4)

SIM_STEP_END = frozenset({"tick", "simulation_complete"})
"""What ends the messages one simulation step causes: the next tick, or the end of the run."""
REFUSALS = frozenset({"error", "session_error"})
"""A refusal always ends what a request causes (it is its one reply)."""


async def recv_frame(client: WsClient) -> tuple[str, Message]:
    """The next server frame as its raw text and parsed, checked like `recv`; JSON numbers
    with a fraction become exact `Decimal`s (bar prices are JSON numbers on the wire)."""
    from decimal import Decimal

    async with asyncio.timeout(RECV_TIMEOUT):
        raw = await client.connection.recv()
    assert isinstance(raw, str), "the server must answer with text frames"
    return raw, check_server_message(json.loads(raw, parse_float=Decimal))


async def recv_until(
    client: WsClient, last: Iterable[str] = SIM_STEP_END
) -> list[tuple[str, Message]]:
    """Every frame (raw text, parsed) up to and including the first whose type is in
    `last` or is a refusal."""
    ends = REFUSALS | frozenset(last)
    frames: list[tuple[str, Message]] = []
    while True:
        raw, message = await recv_frame(client)
        frames.append((raw, message))
        if message["type"] in ends:
            return frames


async def sim_request(
    client: WsClient,
    message_type: str,
    data: Mapping[str, Any],
    last: Iterable[str] = SIM_STEP_END,
    request_id: str | None = None,
) -> list[Message]:
    """Send one simulation request and return every message it causes, in order, up to
    the first of a type in `last` (or a refusal); each must echo the request_id."""
    rid = request_id if request_id is not None else client.next_request_id()
    await client.send(frame(message_type, data, rid))
    messages = [message for _, message in await recv_until(client, last)]
    for message in messages:
        assert message.get("request_id") == rid, f"request_id {rid!r} not echoed: {message!r}"
    return messages
