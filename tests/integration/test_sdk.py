"""The client SDK against a real server on loopback: lifecycle, every error class,
concurrency on one connection, dropped connections, token renewal and timeouts."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import httpx
import msgspec
import pytest

from domain.limits import PLAN_DEFAULTS, Plan
from domain.session import SessionState as DomainSessionState
from entrypoints.protocol import messages as m
from entrypoints.sdk import (
    ERROR_CLASSES,
    AccessDeniedError,
    AuthClient,
    AuthenticationError,
    ClientClosedError,
    ConnectionLostError,
    DataUnavailableError,
    ExcessiveCapitalError,
    InsufficientCapitalError,
    InvalidDateRangeError,
    InvalidMessageError,
    InvalidSymbolError,
    MessageTooLargeError,
    MissingSymbolsError,
    ProtocolError,
    RateLimitExceededError,
    RequestTimeoutError,
    ServerAddress,
    ServerUnreachableError,
    SessionClient,
    SessionData,
    SessionDeletedData,
    SessionError,
    SessionLimitExceededError,
    SessionNotFoundError,
    SessionState,
    Token,
    TooManyConnectionsError,
    TooManySymbolsError,
    UnknownMessageTypeError,
    ValidationFailedError,
)
from entrypoints.sdk.auth import jwt_expiry
from entrypoints.sdk.errors import error_from_reply
from entrypoints.server.embedded import EmbeddedServer
from tests.integration.conftest import ServerFactory

START, END = "2023-01-03", "2023-06-30"


def make_client(
    server: EmbeddedServer,
    user: str = "alice",
    plan: Plan = Plan.PROFESSIONAL,
    **options: Any,
) -> SessionClient:
    return SessionClient(AuthClient(server.http_url, server.create_api_key(user, plan)), **options)


@pytest.fixture
async def client(server: EmbeddedServer) -> AsyncIterator[SessionClient]:
    async with make_client(server) as connected:
        yield connected


def drop(client: SessionClient) -> None:
    """Kill the TCP connection under the client without a closing handshake (a network drop)."""
    ws = client._ws
    assert ws is not None
    ws.transport.abort()


class CountingHttp:
    """An httpx client that counts the token requests an AuthClient makes."""

    def __init__(self) -> None:
        self.posts = 0
        self.client = httpx.AsyncClient(event_hooks={"request": [self._count]})

    async def _count(self, request: httpx.Request) -> None:
        if request.method == "POST":
            self.posts += 1


# ---------------------------------------------------------------- lifecycle


async def test_lifecycle_returns_protocol_structs(client: SessionClient) -> None:
    assert client.ready.user_id == "alice"
    assert client.ready.plan == "professional"
    assert client.ready.limits.max_active_sessions == 10

    created = await client.create_session(
        ["aapl", " MSFT "],
        date(2023, 1, 3),
        datetime(2023, 6, 30, tzinfo=UTC),
        Decimal("100000"),
        metadata={"strategy": "momentum", "run": 7},
        commission_per_share="0.005",
        slippage_bps=2,
        commission_pct="0.0005",
        commission_min=1,
        max_volume_pct=Decimal("0.1"),
        allow_short=True,
    )
    assert isinstance(created, SessionData)
    assert created.session_id.startswith("sess_")
    assert created.state == SessionState.READY
    assert created.symbols == ["AAPL", "MSFT"]
    assert created.start_date == datetime(2023, 1, 3, tzinfo=UTC)
    assert created.initial_capital == Decimal("100000")
    assert created.metadata == {"strategy": "momentum", "run": 7}
    assert created.commission_per_share == Decimal("0.005")
    assert created.slippage_bps == Decimal(2)
    assert (created.commission_pct, created.commission_min) == (Decimal("0.0005"), Decimal(1))
    assert (created.max_volume_pct, created.allow_short) == (Decimal("0.1"), True)
    assert created.timeframe == "1d"
    # Jan 3 .. Jun 30 2023: 124 NYSE trading days, AAPL and MSFT closing at the same instant.
    assert (created.estimated_trading_days, created.total_bars) == (124, 124)
    assert [w.split(" ", 1)[0] for w in created.warnings] == ["AAPL", "MSFT"]
    assert all("synthetic data" in w for w in created.warnings)

    fetched = await client.get_session(created.session_id)
    assert fetched.session_id == created.session_id
    assert fetched.updated_at >= created.updated_at

    assert [s.session_id for s in await client.list_sessions()] == [created.session_id]
    assert [s.session_id for s in await client.list_sessions(SessionState.READY)] == [
        created.session_id
    ]
    assert await client.list_sessions("running") == []

    deleted = await client.delete_session(created.session_id)
    assert deleted == SessionDeletedData(session_id=created.session_id, deleted=True)
    with pytest.raises(SessionNotFoundError):
        await client.get_session(created.session_id)
    assert await client.list_sessions() == []
    assert client.connections_opened == 1


async def test_calls_connect_lazily_and_close_refuses_further_calls(
    server: EmbeddedServer,
) -> None:
    client = make_client(server)
    assert not client.connected
    with pytest.raises(ClientClosedError):
        _ = client.ready
    assert await client.list_sessions() == []  # first call connects
    assert client.connected
    await client.close()
    with pytest.raises(ClientClosedError):
        await client.list_sessions()
    await client.connect()  # explicitly reopened
    assert await client.list_sessions() == []
    await client.close()


def test_sdk_imports_nothing_from_the_server_side() -> None:
    # Since the strategy API shares `domain.bars.Bar` with the engine (entrypoints/sdk/
    # strategy.py), and checks orders against the engine's own bounds (`domain.money`), the
    # SDK loads those two pure modules and the errors they raise; nothing else of the domain,
    # and nothing of the application, the adapters or the server.
    probe = (
        "import sys, entrypoints.sdk; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'domain', 'application', 'adapters', 'litestar', 'uvicorn'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "['domain', 'domain.bars', 'domain.errors', 'domain.money']"


def test_sdk_states_match_the_server() -> None:
    assert [s.value for s in SessionState] == [s.value for s in DomainSessionState]


def test_server_url_gives_both_endpoints() -> None:
    assert ServerAddress.parse("http://127.0.0.1:8000") == ServerAddress(
        "http://127.0.0.1:8000", "ws://127.0.0.1:8000/ws/simulate"
    )
    assert ServerAddress.parse("https://sim.example.com/api/") == ServerAddress(
        "https://sim.example.com/api", "wss://sim.example.com/api/ws/simulate"
    )
    assert ServerAddress.parse("ws://localhost:9/ws/simulate").http_url == "http://localhost:9"
    assert ServerAddress.parse("localhost:9").ws_url == "ws://localhost:9/ws/simulate"
    with pytest.raises(ValueError, match="must look like"):
        ServerAddress.parse("ftp://host")


# ---------------------------------------------------------------- refused requests


@pytest.mark.parametrize(
    ("kwargs", "error_class", "code"),
    [
        ({"symbols": []}, MissingSymbolsError, "MISSING_SYMBOLS"),
        ({"symbols": ["AAPL", "XXXX1"]}, InvalidSymbolError, "INVALID_SYMBOL"),
        ({"symbols": [f"S{i}" for i in range(51)]}, TooManySymbolsError, "TOO_MANY_SYMBOLS"),
        ({"start_date": END, "end_date": START}, InvalidDateRangeError, "INVALID_DATE_RANGE"),
        ({"start_date": "2023-13-45"}, InvalidDateRangeError, "INVALID_DATE_RANGE"),
        # NVDA is in the shipped catalog, but the server's synthetic sample has no bars of it.
        ({"symbols": ["AAPL", "NVDA"]}, DataUnavailableError, "DATA_UNAVAILABLE"),
        ({"timeframe": "1h"}, DataUnavailableError, "DATA_UNAVAILABLE"),
        ({"initial_capital": 10}, InsufficientCapitalError, "INSUFFICIENT_CAPITAL"),
        ({"initial_capital": "1e12"}, ExcessiveCapitalError, "EXCESSIVE_CAPITAL"),
        ({"metadata": {"x": "y" * 5000}}, ValidationFailedError, "VALIDATION_FAILED"),
    ],
)
async def test_each_refusal_is_its_own_error_class(
    client: SessionClient, kwargs: dict[str, Any], error_class: type[SessionError], code: str
) -> None:
    request: dict[str, Any] = {
        "symbols": ["AAPL"],
        "start_date": START,
        "end_date": END,
        "initial_capital": 100_000,
        **kwargs,
    }
    with pytest.raises(error_class) as caught:
        await client.create_session(**request)
    error = caught.value
    assert error.code == code
    assert error.message
    assert error.request_id is not None
    assert str(error).startswith(f"{code}: ")
    assert await client.list_sessions() == []  # the connection is still good


async def test_invalid_symbol_lists_each_bad_symbol(client: SessionClient) -> None:
    with pytest.raises(InvalidSymbolError) as caught:
        await client.create_session(["AAPL", "XXXX1", "NOPE2"], START, END, 100_000)
    assert caught.value.invalid_symbols == ["XXXX1", "NOPE2"]
    assert "NASDAQ" in caught.value.supported_markets


async def test_bad_state_filter_names_the_field(client: SessionClient) -> None:
    with pytest.raises(ValidationFailedError) as caught:
        await client.list_sessions("sleeping")
    assert caught.value.field == "state"


async def test_float_or_garbage_capital_is_refused_before_sending(client: SessionClient) -> None:
    with pytest.raises(ValidationFailedError, match="not a float"):
        await client.create_session(["AAPL"], START, END, cast(Any, 100000.0))
    with pytest.raises(ValidationFailedError, match="not a decimal"):
        await client.create_session(["AAPL"], START, END, "lots")


async def test_another_users_session_is_access_denied(server: EmbeddedServer) -> None:
    async with make_client(server, "alice") as alice, make_client(server, "bob") as bob:
        session = await alice.create_session(["AAPL"], START, END, 100_000)
        with pytest.raises(AccessDeniedError):
            await bob.get_session(session.session_id)
        with pytest.raises(AccessDeniedError):
            await bob.delete_session(session.session_id)
        with pytest.raises(SessionNotFoundError):
            await bob.get_session("sess_doesnotexist")
        assert await bob.list_sessions() == []


async def test_session_limit_and_connection_limit_of_the_free_plan(
    server: EmbeddedServer,
) -> None:
    key = server.create_api_key("frank", Plan.FREE)
    async with SessionClient(AuthClient(server.http_url, key)) as client:
        await client.create_session(["AAPL"], START, END, 100_000)
        with pytest.raises(SessionLimitExceededError) as caught:
            await client.create_session(["MSFT"], START, END, 100_000)
        assert caught.value.details["max"] == 1
        with pytest.raises(TooManyConnectionsError, match="free plan allows 1"):
            await SessionClient(AuthClient(server.http_url, key)).connect()


async def test_protocol_errors_are_session_errors_too(client: SessionClient) -> None:
    bad_types = m.CreateSession(
        data=m.CreateSessionData(
            symbols=cast(Any, [1, 2]),
            start_date=START,
            end_date=END,
            initial_capital=Decimal(100_000),
        )
    )
    with pytest.raises(InvalidMessageError) as invalid:
        await client.request(bad_types, m.SessionCreated)
    assert invalid.value.details["path"].startswith("$.data.symbols")

    class LaunchRockets(msgspec.Struct, tag="launch_rockets", tag_field="type"):
        request_id: str | None = None

    with pytest.raises(UnknownMessageTypeError) as unknown:
        await client.request(cast(Any, LaunchRockets()), m.SessionCreated)
    assert isinstance(unknown.value, ProtocolError)
    assert isinstance(unknown.value, SessionError)
    assert unknown.value.recoverable
    assert "start_simulation" in unknown.value.details["supported_types"]

    # A simulation request is served now: without its data it is malformed, not unknown.
    class StartSimulation(msgspec.Struct, tag="start_simulation", tag_field="type"):
        request_id: str | None = None

    with pytest.raises(InvalidMessageError) as malformed:
        await client.request(cast(Any, StartSimulation()), m.SessionCreated)
    assert "data" in malformed.value.message


async def test_frame_too_large_is_matched_to_its_request(server_factory: ServerFactory) -> None:
    server = server_factory(max_message_bytes=1024)
    async with make_client(server) as client:
        assert client.ready.limits.max_message_bytes == 1024
        big, small = await asyncio.gather(
            client.create_session(["AAPL"], START, END, 100_000, {"note": "x" * 2000}),
            client.list_sessions(),
            return_exceptions=True,
        )
        # The server omits request_id on this error; the client matches it by order.
        assert isinstance(big, MessageTooLargeError)
        assert big.details["max_bytes"] == 1024
        assert small == []


async def test_rate_limit_errors_carry_retry_after(server_factory: ServerFactory) -> None:
    slow = dataclasses.replace(PLAN_DEFAULTS[Plan.PROFESSIONAL], messages_per_minute=3)
    server = server_factory(plan_limits={**PLAN_DEFAULTS, Plan.PROFESSIONAL: slow})
    async with make_client(server) as client:
        results = await asyncio.gather(
            *(client.list_sessions() for _ in range(5)), return_exceptions=True
        )
    assert results[:3] == [[], [], []]
    for refused in results[3:]:
        assert isinstance(refused, RateLimitExceededError)
        assert refused.retry_after_ms is not None
        assert refused.retry_after_ms > 0


def test_every_protocol_code_has_its_class() -> None:
    codes = {
        "MISSING_SYMBOLS",
        "INVALID_SYMBOL",
        "TOO_MANY_SYMBOLS",
        "INVALID_DATE_RANGE",
        "DATA_UNAVAILABLE",
        "INVALID_ORDER",
        "DUPLICATE_ORDER_ID",
        "ORDER_NOT_FOUND",
        "INVALID_SEQUENCE",
        "SESSION_BUSY",
        "INSUFFICIENT_CAPITAL",
        "EXCESSIVE_CAPITAL",
        "SESSION_LIMIT_EXCEEDED",
        "SESSION_NOT_FOUND",
        "ACCESS_DENIED",
        "INVALID_STATE",
        "VALIDATION_FAILED",
        "INVALID_MESSAGE",
        "UNKNOWN_MESSAGE_TYPE",
        "MESSAGE_TOO_LARGE",
        "RATE_LIMIT_EXCEEDED",
        "INTERNAL_ERROR",
    }
    assert set(ERROR_CLASSES) == codes
    for code, cls in ERROR_CLASSES.items():
        error = error_from_reply(code, "m", {"k": 1}, request_id="req_1")
        assert type(error) is cls
        assert (error.code, error.message, error.details, error.request_id) == (
            code,
            "m",
            {"k": 1},
            "req_1",
        )
    future = error_from_reply("SOMETHING_NEW", "m", protocol_level=True, recoverable=False)
    assert isinstance(future, ProtocolError)
    assert future.code == "SOMETHING_NEW"
    assert not future.recoverable


# ---------------------------------------------------------------- concurrency


async def test_hundred_concurrent_creates_share_one_connection(server: EmbeddedServer) -> None:
    async with make_client(server, "ella", Plan.ENTERPRISE) as client:
        created = await asyncio.gather(
            *(
                client.create_session(["AAPL"], START, END, 100_000 + i, {"n": i})
                for i in range(100)
            )
        )
        assert len({s.session_id for s in created}) == 100
        # Each caller got its own reply, not a neighbour's.
        assert [s.metadata["n"] for s in created] == list(range(100))
        assert [s.initial_capital for s in created] == [Decimal(100_000 + i) for i in range(100)]
        assert len(await client.list_sessions()) == 100
        deleted = await asyncio.gather(*(client.delete_session(s.session_id) for s in created))
        assert {d.session_id for d in deleted} == {s.session_id for s in created}
        assert client.connections_opened == 1


async def test_mixed_successes_and_refusals_in_flight(client: SessionClient) -> None:
    results = await asyncio.gather(
        *(
            client.create_session(["AAPL" if i % 2 else "BAD_1"], START, END, 100_000)
            for i in range(10)
        ),
        return_exceptions=True,
    )
    for i, result in enumerate(results):
        assert isinstance(result, SessionData if i % 2 else InvalidSymbolError)


# ---------------------------------------------------------------- dropped connections


async def test_drop_fails_calls_in_flight_and_next_call_reconnects(
    client: SessionClient,
) -> None:
    session = await client.create_session(["AAPL"], START, END, 100_000)
    in_flight = asyncio.create_task(client.get_session(session.session_id))
    await asyncio.sleep(0)  # sent, reply not yet read
    drop(client)
    with pytest.raises(ConnectionLostError) as caught:
        await in_flight
    assert caught.value.close_code == 1006
    assert "reconnects" in caught.value.message

    again = await client.get_session(session.session_id)
    assert again.session_id == session.session_id
    assert client.connections_opened == 2
    assert client.ready.user_id == "alice"


async def test_server_shutdown_closes_with_1001_then_calls_report_unreachable(
    server: EmbeddedServer,
) -> None:
    async with make_client(server, max_connect_attempts=2, backoff_initial=0.01) as client:
        await client.list_sessions()
        await asyncio.to_thread(server.stop)
        for _ in range(200):
            if not client.connected:
                break
            await asyncio.sleep(0.01)
        assert client.last_disconnect is not None
        assert client.last_disconnect.close_code == 1001
        assert client.last_disconnect.reason == "server shutting down"
        with pytest.raises(ServerUnreachableError, match="gave up after 2 attempts"):
            await client.list_sessions()


async def test_a_call_that_outlives_its_timeout(server: EmbeddedServer) -> None:
    async with make_client(server, timeout=0.3) as client:
        stall = asyncio.create_task(asyncio.to_thread(server.call, _block_server_loop(0.8)))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError) as caught:
            await client.list_sessions()
        assert time.monotonic() - started >= 0.25
        assert isinstance(caught.value, TimeoutError)
        await stall
        # The late reply is dropped; the connection is still good.
        assert await client.list_sessions(timeout=5) == []


async def _block_server_loop(seconds: float) -> None:
    time.sleep(seconds)  # noqa: ASYNC251 - deliberately stalls the server's event loop


# ---------------------------------------------------------------- authentication


async def test_bad_key_and_unreachable_server_are_authentication_errors(
    server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SIMUTRADOR_API_KEY", raising=False)
    with pytest.raises(AuthenticationError) as bad_key:
        await AuthClient(server.http_url, "sk_wrong").get_token()
    assert bad_key.value.code == "INVALID_API_KEY"
    assert not isinstance(bad_key.value, ServerUnreachableError)

    with pytest.raises(ServerUnreachableError, match="connection refused") as unreachable:
        await AuthClient("http://127.0.0.1:9", "sk_any").get_token()
    assert isinstance(unreachable.value, AuthenticationError)

    with pytest.raises(AuthenticationError) as no_key:
        await SessionClient(AuthClient(server.http_url)).connect()
    assert no_key.value.code == "NO_API_KEY"


async def test_token_is_cached_then_renewed_before_expiry(server_factory: ServerFactory) -> None:
    server = server_factory(token_ttl_seconds=2)
    http = CountingHttp()
    auth = AuthClient(server.http_url, server.create_api_key("tess"), http_client=http.client)
    async with SessionClient(auth) as client:
        first = auth.token
        assert first is not None
        assert await auth.get_token() is first  # cached
        assert http.posts == 1
        assert jwt_expiry(first.access_token) is not None
        assert first.seconds_left() <= 2

        await asyncio.sleep(1.1)  # past half the lifetime: due for renewal
        assert auth.needs_renewal()
        drop(client)
        await asyncio.sleep(0.05)
        assert await client.list_sessions() == []  # reconnected with a new token
        assert http.posts == 2
        assert auth.token is not None
        assert auth.token.access_token != first.access_token
        assert client.connections_opened == 2
    await http.client.aclose()


async def test_refused_token_is_replaced_once(
    server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SIMUTRADOR_API_KEY", raising=False)
    http = CountingHttp()
    stale = Token(
        access_token="not.a-valid.jwt",
        issued_at=datetime.now(UTC),
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        user_id="rita",
        plan="professional",
    )
    auth = AuthClient(
        server.http_url, server.create_api_key("rita"), token=stale, http_client=http.client
    )
    async with SessionClient(auth) as client:  # 4001, then a fresh token
        assert client.ready.user_id == "rita"
    assert http.posts == 1
    assert auth.token is not None
    assert auth.token != stale

    without_key = AuthClient(server.http_url, token=stale)
    with pytest.raises(AuthenticationError) as caught:
        await SessionClient(without_key).connect()
    assert caught.value.code == "INVALID_TOKEN"
    await http.client.aclose()


async def test_server_url_and_key_default_to_the_environment(
    server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIMUTRADOR_SERVER_URL", server.http_url)
    monkeypatch.setenv("SIMUTRADOR_API_KEY", server.create_api_key("envy"))
    auth = AuthClient()
    assert auth.server_url == server.http_url
    async with SessionClient(auth) as client:
        assert client.ready.user_id == "envy"


async def test_revoked_key_fails_the_reconnect_clearly(server: EmbeddedServer) -> None:
    async with make_client(server, "val") as client:
        await client.list_sessions()
        auth = server.container.auth_service()
        (record,) = server.call(auth.list_keys())
        server.call(auth.revoke(record.key_id))
        client.auth.invalidate()  # as if the token had expired
        drop(client)
        await asyncio.sleep(0.05)
        with pytest.raises(AuthenticationError) as caught:
            await client.list_sessions()
        assert caught.value.code == "INVALID_API_KEY"


async def test_concurrent_first_calls_share_one_token_and_connection(
    server: EmbeddedServer,
) -> None:
    http = CountingHttp()
    auth = AuthClient(server.http_url, server.create_api_key("cora"), http_client=http.client)
    client = SessionClient(auth)
    results = await asyncio.gather(*(client.list_sessions() for _ in range(20)))
    assert results == [[]] * 20
    assert http.posts == 1
    assert client.connections_opened == 1
    await client.close()
    await http.client.aclose()
