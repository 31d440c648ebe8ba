"""`SessionClient`: session management over one WebSocket, many requests in flight at once.

One reader task reads every frame and resolves the caller waiting on its `request_id`.
A dropped connection fails the calls in flight with `ConnectionLostError`; the next call
reconnects (with backoff, and with a new token when the old one expired or was refused)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from types import TracebackType
from typing import Any, TypeVar

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from entrypoints.protocol import messages as m
from entrypoints.sdk.auth import AuthClient, http_status_error
from entrypoints.sdk.errors import (
    AuthenticationError,
    ClientClosedError,
    ConnectionLostError,
    RequestTimeoutError,
    ServerUnreachableError,
    SimuTradorError,
    TooManyConnectionsError,
    UnexpectedReplyError,
    UnexpectedResponseError,
    ValidationFailedError,
    error_from_reply,
)

log = logging.getLogger("simutrador.sdk")

CLOSE_UNAUTHORIZED = 4001
CLOSE_TOO_MANY_CONNECTIONS = 4029
MAX_FRAME_BYTES = 32 * 1024 * 1024
"""Largest reply accepted (a list of a hundred sessions with full metadata is well below)."""

DateLike = date | datetime | str
AmountLike = Decimal | int | str
ReplyT = TypeVar("ReplyT", bound=m.ServerMessage)


def _raise_refusal(reply: m.ServerMessage, rid: str) -> None:
    if isinstance(reply, m.SessionError):
        data = reply.data
        raise error_from_reply(data.error_code, data.message, data.details, request_id=rid)
    if isinstance(reply, m.Error):
        error = reply.data
        raise error_from_reply(
            error.error_code,
            error.message,
            error.details,
            request_id=rid,
            protocol_level=True,
            recoverable=error.recoverable,
        )


class SessionState(StrEnum):
    """Session states as the protocol spells them (PROTOCOL.md §2)."""

    INITIALIZING = "initializing"
    READY = "ready"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    ERROR = "error"


class SessionClient:
    """Create, inspect, list and delete simulation sessions.

    ```
    async with SessionClient(AuthClient(url, api_key)) as client:
        session = await client.create_session(["AAPL"], "2023-01-03", "2023-06-30", 100_000)
    ```

    Every call takes an optional `timeout` (default: the client's `timeout`). Calls may run
    concurrently (`asyncio.gather`); they share the one connection."""

    def __init__(
        self,
        auth: AuthClient,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        max_connect_attempts: int = 5,
        backoff_initial: float = 0.25,
        backoff_max: float = 5.0,
    ) -> None:
        if max_connect_attempts < 1:
            raise ValueError("max_connect_attempts must be at least 1")
        self.auth = auth
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_connect_attempts = max_connect_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.connections_opened = 0
        """How many times this client has (re)connected (for monitoring and tests)."""
        self.last_disconnect: ConnectionLostError | None = None
        """Why the previous connection ended (close code and reason), if one has."""
        self._ws: ClientConnection | None = None
        self._ready: m.ConnectionReadyData | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[m.ServerMessage]] = {}
        # Requests answered by several messages (the simulation's): rid → their queue.
        self._streams: dict[str, asyncio.Queue[m.ServerMessage | SimuTradorError]] = {}
        self._unanswered: deque[str] = deque()
        self._ids = itertools.count(1)
        self._connect_lock = asyncio.Lock()
        self._send_lock = asyncio.Lock()
        self._closed = False

    # ------------------------------------------------------------ connection

    async def __aenter__(self) -> SessionClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        """True while a WebSocket connection is open."""
        return self._ws is not None

    @property
    def ready(self) -> m.ConnectionReadyData:
        """The server's `connection_ready` data for the current connection: user id, plan,
        limits, server version. Raises `ClientClosedError` before the first connection."""
        if self._ready is None:
            raise ClientClosedError("Not connected yet: use `async with` or call connect()")
        return self._ready

    async def connect(self) -> m.ConnectionReadyData:
        """Connect (or reconnect) now; returns the `connection_ready` data."""
        self._closed = False
        await self._connection()
        return self.ready

    async def close(self) -> None:
        """Close the connection; calls still in flight fail with `ConnectionLostError`."""
        self._closed = True
        self._fail_pending(
            ConnectionLostError("The client was closed during the request", close_code=1000)
        )
        ws, reader = self._ws, self._reader
        self._ws = None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            self._reader = None

    async def _connection(self) -> ClientConnection:
        ws = self._ws
        if ws is not None:
            return ws
        if self._closed:
            raise ClientClosedError("This SessionClient was closed; call connect() to use it again")
        async with self._connect_lock:
            if self._ws is None:
                await self._connect_with_backoff()
            assert self._ws is not None
            return self._ws

    async def _connect_with_backoff(self) -> None:
        failures = 0
        token_refused = False
        while True:
            try:
                await self._open()
                return
            except _TokenRefused as exc:
                self.auth.invalidate()
                if token_refused or not self.auth.has_api_key:
                    raise AuthenticationError(
                        f"The server refused the token: {exc.reason}", code="INVALID_TOKEN"
                    ) from None
                token_refused = True
                continue  # at once, with a fresh token (expired, or the server restarted)
            except UnexpectedResponseError:
                raise  # a definite wrong answer: asking again gets the same one
            except ServerUnreachableError as exc:
                last = exc
            except _Retryable as exc:
                last = ServerUnreachableError(str(exc), details={"reason": exc.reason})
            failures += 1
            log.debug("connect attempt %d/%d: %s", failures, self.max_connect_attempts, last)
            if failures >= self.max_connect_attempts:
                if failures > 1:
                    last.message += f" (gave up after {failures} attempts)"
                raise last
            await asyncio.sleep(self._backoff(failures))

    def _backoff(self, attempt: int) -> float:
        delay = min(self.backoff_max, self.backoff_initial * 2.0 ** (attempt - 1))
        return delay * (0.5 + random.random() / 2)  # jitter: reconnecting clients spread out

    async def _open(self) -> None:
        token = await self.auth.access_token()
        url = self.auth.ws_url
        try:
            ws = await connect(
                f"{url}?token={token}",
                open_timeout=self.connect_timeout,
                max_size=MAX_FRAME_BYTES,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise _TokenRefused(f"HTTP {status}") from None
            error = http_status_error(status, url)
            if isinstance(error, UnexpectedResponseError):
                raise error from None
            raise _Retryable(
                f"The server at {url} refused the WebSocket (HTTP {status})", "http_status"
            ) from None
        except InvalidURI as exc:
            raise ServerUnreachableError(f"Invalid WebSocket URL {url}: {exc}") from None
        except TimeoutError:
            raise _Retryable(
                f"The server at {url} did not open the WebSocket within {self.connect_timeout:g} s",
                "timeout",
            ) from None
        except (OSError, InvalidHandshake) as exc:
            raise _Retryable(
                f"Cannot open a WebSocket to {url} ({exc or type(exc).__name__})"
            ) from None
        try:
            ready = await self._await_ready(ws, url)
        except BaseException:
            ws.transport.abort()  # never leave a half-open socket behind
            raise
        self._ready = ready
        self._ws = ws
        self._unanswered.clear()
        self._reader = asyncio.create_task(self._read(ws), name="simutrador-sdk-reader")
        self.connections_opened += 1

    async def _await_ready(self, ws: ClientConnection, url: str) -> m.ConnectionReadyData:
        try:
            first = await asyncio.wait_for(ws.recv(), self.connect_timeout)
        except ConnectionClosed as exc:
            code, reason = _close_of(exc)
            if code == CLOSE_UNAUTHORIZED:
                raise _TokenRefused(reason or "token refused") from None
            if code == CLOSE_TOO_MANY_CONNECTIONS:
                raise TooManyConnectionsError(reason or "Too many connections") from None
            raise _Retryable(
                f"The server closed the connection before it was ready ({code} {reason})".strip()
            ) from None
        except TimeoutError:
            raise _Retryable(
                f"No connection_ready from {url} within {self.connect_timeout:g} s", "timeout"
            ) from None
        ready = _decode(first)
        if not isinstance(ready, m.ConnectionReady):
            raise UnexpectedReplyError(
                f"Expected connection_ready as the first message, got {type(ready).__name__}"
            )
        return ready.data

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for frame in ws:
                self._deliver(frame)
        except ConnectionClosed:
            pass
        except Exception:  # a bug here must not leave callers waiting forever
            log.exception("SimuTrador SDK reader failed")
            with contextlib.suppress(Exception):
                await ws.close()
        finally:
            if self._ws is ws:
                self._ws = None
            code, reason = ws.close_code, ws.close_reason or ""
            self.last_disconnect = ConnectionLostError(
                f"Connection to {self.auth.ws_url} lost (close code {code}"
                + (f": {reason}" if reason else "")
                + "); the next call reconnects",
                close_code=code,
                reason=reason,
            )
            self._fail_pending(self.last_disconnect)

    def _deliver(self, frame: str | bytes) -> None:
        try:
            message = _decode(frame)
        except UnexpectedReplyError as exc:
            log.warning("ignored an unreadable frame from the server: %s", exc.message)
            return
        rid = message.request_id
        stream = self._streams.get(rid) if rid is not None else None
        if stream is not None:
            stream.put_nowait(message)
            return
        if rid is None:
            # The server answers frames in order and leaves request_id off a few errors
            # (frame too large, rate limit): such a reply belongs to the oldest unanswered.
            if not isinstance(message, m.Error | m.SessionError) or not self._unanswered:
                log.debug("ignored an uncorrelated %s", type(message).__name__)
                return
            rid = self._unanswered.popleft()
        elif self._unanswered and self._unanswered[0] == rid:
            self._unanswered.popleft()
        else:
            with contextlib.suppress(ValueError):
                self._unanswered.remove(rid)
        future = self._pending.pop(rid, None)
        if future is not None and not future.done():
            future.set_result(message)

    def _fail_pending(self, error: SimuTradorError) -> None:
        for stream in self._streams.values():
            stream.put_nowait(error)
        pending, self._pending = self._pending, {}
        self._unanswered.clear()
        for future in pending.values():
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved here, so an abandoned call logs nothing

    # ------------------------------------------------------------ requests

    # Per-call `timeout` parameters (ASYNC109) are deliberate: the client has a default, each
    # call may override it, and expiry raises RequestTimeoutError naming the request.
    async def request(
        self,
        message: m.ClientMessage,
        reply_type: type[ReplyT],
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> ReplyT:
        """Send one request and wait for its reply of `reply_type`; refusals raise the
        matching `SessionError`. `message.request_id` is set by the client."""
        ws = await self._connection()
        rid = f"req_{next(self._ids)}"
        message.request_id = rid
        frame = m.encoder.encode(message).decode()
        future: asyncio.Future[m.ServerMessage] = asyncio.get_running_loop().create_future()
        wait = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(wait):
                async with self._send_lock:  # send order == registration order
                    self._pending[rid] = future
                    self._unanswered.append(rid)
                    await self._send(ws, frame)
                reply = await future
        except TimeoutError:
            raise RequestTimeoutError(
                f"No reply to {message.__struct_config__.tag} ({rid}) within {wait:g} s",
                details={"request_id": rid, "timeout": wait},
            ) from None
        finally:
            self._pending.pop(rid, None)
        _raise_refusal(reply, rid)
        if not isinstance(reply, reply_type):
            raise UnexpectedReplyError(
                f"Expected {reply_type.__struct_config__.tag} in reply to {rid}, "
                f"got {reply.__struct_config__.tag}"
            )
        return reply

    async def _send(self, ws: ClientConnection, frame: str) -> None:
        try:
            await ws.send(frame)
        except ConnectionClosed as exc:
            code, reason = _close_of(exc)
            raise ConnectionLostError(
                f"Connection to {self.auth.ws_url} lost before the request was "
                f"sent (close code {code}); the next call reconnects",
                close_code=code,
                reason=reason,
            ) from None

    async def exchange(
        self,
        message: m.ClientMessage,
        last: Callable[[m.ServerMessage], bool],
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> list[m.ServerMessage]:
        """Send one request answered by several messages (the simulation's: `tick_ack` →
        batch_ack, execution reports, account, the next tick) and collect them up to the
        first for which `last` is true, or a refusal, which raises as `request` does."""
        ws = await self._connection()
        rid = f"req_{next(self._ids)}"
        message.request_id = rid
        frame = m.encoder.encode(message).decode()
        stream: asyncio.Queue[m.ServerMessage | SimuTradorError] = asyncio.Queue()
        wait = self.timeout if timeout is None else timeout
        received: list[m.ServerMessage] = []
        self._streams[rid] = stream
        try:
            async with asyncio.timeout(wait):
                async with self._send_lock:
                    await self._send(ws, frame)
                while True:
                    item = await stream.get()
                    if isinstance(item, SimuTradorError):
                        raise item
                    _raise_refusal(item, rid)
                    received.append(item)
                    if last(item):
                        return received
        except TimeoutError:
            raise RequestTimeoutError(
                f"No complete reply to {message.__struct_config__.tag} ({rid}) within {wait:g} s",
                details={"request_id": rid, "timeout": wait, "received": len(received)},
            ) from None
        finally:
            self._streams.pop(rid, None)

    async def create_session(
        self,
        symbols: list[str] | tuple[str, ...],
        start_date: DateLike,
        end_date: DateLike,
        initial_capital: AmountLike,
        metadata: Mapping[str, Any] | None = None,
        commission_per_share: AmountLike | None = None,
        slippage_bps: AmountLike | None = None,
        *,
        timeframe: str = "1d",
        commission_pct: AmountLike | None = None,
        commission_min: AmountLike | None = None,
        max_volume_pct: AmountLike | None = None,
        allow_short: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> m.SessionData:
        """A new session in state `ready`. Dates are ISO strings, `date`s or `datetime`s (naive
        means UTC); amounts are `Decimal`, `int` or decimal strings, never floats. Engine
        settings left as None take the server's defaults (PROTOCOL §4.1)."""
        data = m.CreateSessionData(
            symbols=list(symbols),
            start_date=_iso(start_date),
            end_date=_iso(end_date),
            initial_capital=_decimal("initial_capital", initial_capital),
            metadata=dict(metadata or {}),
            timeframe=timeframe,
            allow_short=allow_short,
        )
        if commission_per_share is not None:
            data.commission_per_share = _decimal("commission_per_share", commission_per_share)
        if slippage_bps is not None:
            data.slippage_bps = _decimal("slippage_bps", slippage_bps)
        if commission_pct is not None:
            data.commission_pct = _decimal("commission_pct", commission_pct)
        if commission_min is not None:
            data.commission_min = _decimal("commission_min", commission_min)
        if max_volume_pct is not None:
            data.max_volume_pct = _decimal("max_volume_pct", max_volume_pct)
        reply = await self.request(m.CreateSession(data=data), m.SessionCreated, timeout=timeout)
        return reply.data

    async def get_results(
        self,
        session_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> m.SimulationResultsData:
        """The results of a completed simulation: metrics, daily equity, closed trades."""
        reply = await self.request(
            m.GetResults(data=m.SessionRef(session_id=session_id)),
            m.SimulationResults,
            timeout=timeout,
        )
        return reply.data

    async def get_session(
        self,
        session_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> m.SessionData:
        """One session of yours, as the server holds it now (state, progress, settings).
        Raises `SessionNotFoundError` for an unknown, deleted or expired one."""
        reply = await self.request(
            m.GetSession(data=m.SessionRef(session_id=session_id)), m.SessionInfo, timeout=timeout
        )
        return reply.data

    async def list_sessions(
        self,
        state: SessionState | str | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> list[m.SessionData]:
        """The caller's own sessions, optionally only those in `state`."""
        query = m.ListSessionsData(state=None if state is None else str(state))
        reply = await self.request(m.ListSessions(data=query), m.SessionList, timeout=timeout)
        return reply.data.sessions

    async def delete_session(
        self,
        session_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> m.SessionDeletedData:
        """Delete one session of yours, in any state: a running or paused simulation of it
        stops and is discarded, with its results. Raises `SessionNotFoundError` when there
        is no such session."""
        reply = await self.request(
            m.DeleteSession(data=m.SessionRef(session_id=session_id)),
            m.SessionDeleted,
            timeout=timeout,
        )
        return reply.data


class _TokenRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Retryable(Exception):
    """A connection attempt failed in a way a later attempt may not. `reason` as in
    `ServerUnreachableError`: connect, timeout or http_status."""

    def __init__(self, message: str, reason: str = "connect") -> None:
        super().__init__(message)
        self.reason = reason


def _decode(frame: str | bytes) -> m.ServerMessage:
    try:
        return m.server_decoder.decode(frame)
    except msgspec.DecodeError as exc:
        raise UnexpectedReplyError(f"Unreadable message from the server: {exc}") from None


def _close_of(exc: ConnectionClosed) -> tuple[int | None, str]:
    frame = exc.rcvd
    return (frame.code, frame.reason) if frame is not None else (None, "")


def _iso(value: DateLike) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _decimal(field: str, value: AmountLike) -> Decimal:
    if isinstance(value, float):  # binary floats misstate money; refuse before sending
        raise ValidationFailedError(
            f"{field} must be a Decimal, an int or a decimal string, not a float ({value!r})",
            details={"field": field},
        )
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise ValidationFailedError(
            f"{field} {value!r} is not a decimal number", details={"field": field}
        ) from None
