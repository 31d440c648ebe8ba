"""Transport-agnostic request handling: one frame in, one encoded reply out.

Knows nothing of Litestar or sockets; a transport only moves frames to and from here."""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import msgspec

from application.bars import InstrumentCoverage
from application.ports import NO_METRICS, Clock, ServiceMetrics
from application.principal import Principal
from application.sessions import SessionService
from application.simulation import SimulationService
from domain.bars import Timeframe
from domain.dates import DateRange
from domain.errors import DomainError, ValidationFailed
from domain.ratelimit import TokenBucket
from domain.session import EngineSettings, SessionParams, SessionState, SimulationSession
from domain.symbols import AssetClass, common_asset_class
from domain.validation import check_symbol_count, parse_capital
from entrypoints.logs import session_context
from entrypoints.protocol import messages as m
from entrypoints.protocol.errors import (
    InternalError,
    InvalidMessage,
    MessageTooLarge,
    ProtocolError,
    RateLimitExceeded,
    UnknownMessageType,
)
from entrypoints.protocol.nesting import scan
from entrypoints.protocol.simulation import EngineConnection, Push, SimulationProtocol

log = logging.getLogger("simutrador.protocol")

SESSION_MESSAGES = (m.CreateSession, m.GetSession, m.ListSessions, m.DeleteSession)

MAX_REQUEST_ID_LENGTH = 128
_UNDECODABLE = (msgspec.DecodeError, RecursionError, UnicodeError)


@dataclass(slots=True)
class ConnectionContext:
    """Per-connection protocol state: who is connected, their message budget, and what the
    engine keeps for the connection (its id, the ack deadlines of its ticks in flight)."""

    principal: Principal
    bucket: TokenBucket
    engine: EngineConnection
    messages: int = 0

    @property
    def awaiting_ack(self) -> bool:
        """A tick sent on this connection waits for its `tick_ack` (its ack timeout runs)."""
        return bool(self.engine.deadlines)


def session_data(
    session: SimulationSession, progress: tuple[int, int, datetime | None] | None = None
) -> m.SessionData:
    return m.SessionData(
        session_id=session.id,
        state=session.state.value,
        symbols=[s.ticker for s in session.symbols],
        start_date=session.date_range.start,
        end_date=session.date_range.end,
        initial_capital=session.initial_capital,
        created_at=session.created_at,
        updated_at=session.updated_at,
        expires_at=session.expires_at,
        metadata=dict(session.metadata),
        estimated_trading_days=session.estimated_trading_days,
        total_bars=session.total_bars,
        warnings=list(session.warnings),
        timeframe=session.timeframe.value,
        commission_per_share=session.engine.commission_per_share,
        commission_pct=session.engine.commission_pct,
        commission_min=session.engine.commission_min,
        slippage_bps=session.engine.slippage_bps,
        max_volume_pct=session.engine.max_volume_pct,
        allow_short=session.engine.allow_short,
        progress=m.ProgressData(
            sequence_id=progress[0], total_ticks=progress[1], sim_time=progress[2]
        )
        if progress is not None
        else None,
        error_reason=session.error_reason,
        currency=session.currency,
        asset_class=common_asset_class(session.symbols),
    )


def session_params(data: m.CreateSessionData, principal: Principal) -> SessionParams:
    """Wire data → domain parameters; cheap checks first so the error is the obvious one."""
    check_symbol_count(data.symbols, principal.limits)
    return SessionParams(
        symbols=tuple(data.symbols),
        date_range=DateRange.parse(data.start_date, data.end_date),
        initial_capital=parse_capital(data.initial_capital),
        metadata=data.metadata,
        engine=EngineSettings(
            commission_per_share=data.commission_per_share,
            slippage_bps=data.slippage_bps,
            commission_pct=data.commission_pct,
            commission_min=data.commission_min,
            max_volume_pct=data.max_volume_pct,
            allow_short=data.allow_short,
        ),
        timeframe=Timeframe.parse(data.timeframe),
    )


def instrument_data(listed: InstrumentCoverage) -> m.InstrumentData:
    i = listed.instrument
    return m.InstrumentData(
        symbol=i.symbol.ticker,
        name=i.name,
        exchange=i.exchange,
        asset_class=i.symbol.asset_class.value,
        currency=i.currency,
        lot_size=i.lot_size,
        tick_size=i.tick_size,
        data=[
            m.CoverageData(
                timeframe=c.timeframe.value,
                first=c.first,
                last=c.last,
                bars=c.bars,
                source=c.source.value,
            )
            for c in listed.data
        ],
    )


def parse_asset_class(value: str | None) -> AssetClass | None:
    if value is None or value == "":
        return None
    try:
        return AssetClass(value.strip().lower())
    except ValueError:
        raise ValidationFailed(
            "asset_class",
            f"Unknown asset class '{value}'",
            allowed=[a.value for a in AssetClass],
        ) from None


def parse_state(value: str | None) -> SessionState | None:
    if value is None:
        return None
    try:
        return SessionState(value.lower())
    except ValueError:
        raise ValidationFailed(
            "state",
            f"Unknown state '{value}'",
            allowed=[s.value for s in SessionState],
        ) from None


class Dispatcher:
    def __init__(
        self,
        sessions: SessionService,
        clock: Clock,
        *,
        server_version: str,
        max_message_bytes: int = 64 * 1024,
        simulations: SimulationService | None = None,
        tick_timeout_seconds: float = 300.0,
        metrics: ServiceMetrics = NO_METRICS,
    ) -> None:
        self._sessions = sessions
        self._metrics = metrics
        self._clock = clock
        self._version = server_version
        self._max_bytes = max_message_bytes
        self._engine = (
            SimulationProtocol(
                simulations,
                clock.now,
                tick_timeout_seconds,
                metrics=metrics,
                max_frame_bytes=max_message_bytes,
            )
            if simulations is not None
            else None
        )
        self._connection_ids = itertools.count(1)

    @property
    def max_message_bytes(self) -> int:
        return self._max_bytes

    def open(self, principal: Principal, push: Push | None = None) -> ConnectionContext:
        """A new connection. `push` sends it a message unasked (an ack-timeout pause)."""
        per_minute = principal.limits.messages_per_minute
        engine = EngineConnection(f"conn_{next(self._connection_ids)}", push)
        return ConnectionContext(principal, TokenBucket(float(per_minute), 60.0), engine)

    async def close(self, context: ConnectionContext) -> None:
        """The connection is gone: the simulations it drove pause, waiting for a resume."""
        if self._engine is not None:
            await self._engine.closed(context.engine)

    def connection_ready(self, context: ConnectionContext) -> bytes:
        principal, limits = context.principal, context.principal.limits
        timeout = self._sessions.policy.session_timeout
        return m.encoder.encode(
            m.ConnectionReady(
                timestamp=self._clock.now(),
                data=m.ConnectionReadyData(
                    user_id=principal.user_id,
                    plan=principal.plan.value,
                    limits=m.PlanLimitsData(
                        max_active_sessions=limits.max_active_sessions,
                        sessions_per_hour=limits.sessions_per_hour,
                        max_symbols=limits.max_symbols,
                        max_connections=limits.max_connections,
                        messages_per_minute=limits.messages_per_minute,
                        max_message_bytes=self._max_bytes,
                        max_running_simulations=limits.max_running_simulations,
                    ),
                    server_version=self._version,
                    session_timeout_minutes=timeout.total_seconds() / 60,
                ),
            )
        )

    async def handle_frame(self, context: ConnectionContext, frame: str | bytes) -> list[bytes]:
        """Answer one frame with the messages it causes, in order. Never raises: every
        failure becomes a typed error frame."""
        context.messages += 1
        request_id: str | None = None
        try:
            message = self._decode_frame(frame, context)
            request_id = message.request_id
            with session_context(getattr(message.data, "session_id", None)):
                replies = await self.dispatch_all(context, message)
        except ProtocolError as exc:
            if request_id is None and isinstance(frame, str):
                request_id = _salvage_request_id(frame)
            replies = [self._error(exc, request_id)]
        except Exception:  # a bug of ours must not cost the client its connection
            log.exception("internal error on a frame of user=%s", context.principal.user_id)
            replies = [self._error(InternalError("The server failed to handle this message"), None)]
        return [m.encoder.encode(reply) for reply in replies]

    def _decode_frame(self, frame: str | bytes, context: ConnectionContext) -> m.ClientMessage:
        """The message in `frame`, charged to the connection's budget: every frame counts
        except a well-formed `tick_ack` (one tick in flight bounds those already)."""
        try:
            if isinstance(frame, bytes):
                raise InvalidMessage(
                    "Binary frames are not supported; send each message as a JSON text frame",
                    {"frame": "binary"},
                )
            self._check_size(frame)
            message = self._decode(frame)
        except ProtocolError:
            self._charge(context)
            raise
        if not isinstance(message, m.TickAck):
            self._charge(context)
        return message

    def _charge(self, context: ConnectionContext) -> None:
        wait = context.bucket.take(self._clock.monotonic())
        if wait > 0:
            most = context.principal.limits.messages_per_minute
            raise RateLimitExceeded(
                f"More than {most} messages per minute on this connection",
                {
                    "limit": "messages_per_minute",
                    "max": most,
                    "retry_after_ms": int(wait * 1000) + 1,
                },
            )

    async def dispatch_all(
        self, context: ConnectionContext, message: m.ClientMessage
    ) -> Sequence[m.ServerMessage | m.TickOut | m.TicksOut | m.HistoryOut]:
        """One decoded request → every message it causes; each echoes its request_id."""
        if isinstance(message, SESSION_MESSAGES):
            reply = await self.dispatch(context.principal, message)
            # A running simulation stops with its session.
            if isinstance(reply, m.SessionDeleted) and self._engine is not None:
                await self._engine.forget(context.engine, reply.data.session_id)
            return [reply]
        rid = message.request_id
        if self._engine is None:
            raise UnknownMessageType(
                f"'{type(message).__name__}' needs the simulation engine, not configured here",
                {"supported_types": list(m.CLIENT_MESSAGE_TYPES)},
            )
        principal = context.principal
        try:
            replies = await self._engine.handle(principal, context.engine, message)
        except DomainError as exc:
            return [self._session_error(exc, rid)]
        except Exception:
            session_id = getattr(message.data, "session_id", "")
            log.exception("engine failure on %s of session %s", type(message).__name__, session_id)
            reason = "the engine failed on this simulation; it has been logged"
            with contextlib.suppress(DomainError):
                await self._engine.simulations.fail(principal, session_id, reason)
            return [
                self._error(
                    InternalError(
                        f"The simulation of {session_id} failed and is stopped (state error)",
                        {"session_id": session_id},
                    ),
                    rid,
                )
            ]
        for out in replies:
            out.request_id = rid
        return replies

    async def dispatch(self, principal: Principal, message: m.ClientMessage) -> m.ServerMessage:
        """One decoded request → one reply; domain rejections become `session_error`."""
        now = self._clock.now
        rid = message.request_id
        try:
            match message:
                case m.CreateSession(data=data):
                    try:
                        params = session_params(data, principal)
                    except DomainError as exc:  # refused before the service saw it
                        self._metrics.session_refused(exc.code)
                        raise
                    created = await self._sessions.create(principal, params)
                    return m.SessionCreated(
                        request_id=rid, timestamp=now(), data=session_data(created)
                    )
                case m.GetSession(data=ref):
                    found = await self._sessions.get(principal, ref.session_id)
                    view = await self._view(found)
                    return m.SessionInfo(request_id=rid, timestamp=now(), data=view)
                case m.ListSessions(data=query):
                    listed = await self._sessions.list(principal, parse_state(query.state))
                    return m.SessionList(
                        request_id=rid,
                        timestamp=now(),
                        data=m.SessionListData(sessions=[await self._view(s) for s in listed]),
                    )
                case m.DeleteSession(data=ref):
                    removed = await self._sessions.delete(principal, ref.session_id)
                    return m.SessionDeleted(
                        request_id=rid,
                        timestamp=now(),
                        data=m.SessionDeletedData(session_id=removed.id),
                    )
        except DomainError as exc:
            return self._session_error(exc, rid)
        except Exception:
            log.exception(
                "internal error handling %s request_id=%s user=%s",
                type(message).__name__,
                rid,
                principal.user_id,
            )
            return self._error(
                InternalError("The server failed to handle this request; it has been logged"),
                rid,
            )
        raise AssertionError(f"unhandled message {type(message).__name__}")  # pragma: no cover

    async def _view(self, session: SimulationSession) -> m.SessionData:
        """The session object, with its simulation's progress once started."""
        if self._engine is None:
            return session_data(session)
        return session_data(session, await self._engine.simulations.progress_of(session))

    def _session_error(self, exc: DomainError, request_id: str | None) -> m.SessionError:
        return m.SessionError(
            request_id=request_id,
            timestamp=self._clock.now(),
            data=m.SessionErrorData(error_code=exc.code, message=exc.message, details=exc.details),
        )

    def _check_size(self, frame: str) -> None:
        # A character is at most 4 bytes in UTF-8: only long frames need the exact count.
        if len(frame) * 4 <= self._max_bytes:
            return
        size = len(frame.encode("utf-8", "surrogatepass"))
        if size > self._max_bytes:
            raise MessageTooLarge(
                f"Message of {size} bytes exceeds the limit of {self._max_bytes}",
                {"size": size, "max_bytes": self._max_bytes},
            )

    def _decode(self, frame: str) -> m.ClientMessage:
        try:
            message = m.client_decoder.decode(frame)
        except _UNDECODABLE as exc:
            raise self._classify(frame, exc) from None
        if message.request_id is not None and len(message.request_id) > MAX_REQUEST_ID_LENGTH:
            raise InvalidMessage(
                f"request_id is longer than {MAX_REQUEST_ID_LENGTH} characters",
                {"path": "$.request_id"},
            )
        return message

    def _classify(self, frame: str, exc: Exception) -> ProtocolError:
        """Why the full decode failed: not JSON, not an object, unknown type, or bad fields."""
        if isinstance(exc, RecursionError):
            return _too_deep(frame)
        try:
            envelope = m.envelope_decoder.decode(frame)
        except RecursionError:
            return _too_deep(frame)
        except _UNDECODABLE:
            try:
                msgspec.json.decode(frame)
            except RecursionError:
                return _too_deep(frame)
            except _UNDECODABLE:
                return InvalidMessage("Message is not valid JSON", {"reason": str(exc)})
            return InvalidMessage("Message must be a JSON object", {"path": "$"})
        kind = envelope.type
        if not isinstance(kind, str):
            return InvalidMessage(
                "Message needs a string 'type'",
                {"path": "$.type", "supported_types": list(m.CLIENT_MESSAGE_TYPES)},
            )
        if kind not in m.CLIENT_MESSAGE_TYPES:
            return UnknownMessageType(
                f"Unknown message type '{kind[:64]}'",
                {"type": kind[:64], "supported_types": list(m.CLIENT_MESSAGE_TYPES)},
            )
        text = str(exc)
        path = text.rpartition(" - at `")[2].rstrip("`") if " - at `" in text else "$"
        return InvalidMessage(f"Invalid '{kind}' message: {text}", {"path": path})

    def _error(self, exc: ProtocolError, request_id: str | None) -> m.Error:
        return m.Error(
            request_id=request_id,
            timestamp=self._clock.now(),
            data=m.ErrorData(
                error_code=exc.code,
                message=exc.message,
                details=exc.details,
                recoverable=exc.recoverable,
            ),
        )


def _too_deep(frame: str) -> InvalidMessage:
    nesting = scan(frame)
    return InvalidMessage(
        f"Message is nested {nesting.depth} levels deep, deeper than the server decodes",
        {"path": nesting.path, "depth": nesting.depth},
    )


def _salvage_request_id(frame: str) -> str | None:
    """Echo the request_id of a request that failed to decode, when it has a usable one."""
    try:
        rid = m.envelope_decoder.decode(frame).request_id
    except RecursionError:  # read it without the decoder
        rid = scan(frame).request_id
    except _UNDECODABLE:
        return None
    return rid if isinstance(rid, str) and len(rid) <= MAX_REQUEST_ID_LENGTH else None
