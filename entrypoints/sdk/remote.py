"""The WebSocket driver: the strategy loop runs here, the engine on a server. The strategy
never leaves this process; the server sends closed bars and fills, the client sends orders.

A dropped connection is survived: the driver reconnects (with backoff) and sends
`resume_session` with the last tick it saw; the server replays the executions it missed
and the tick in flight, and the run goes on as if nothing happened (an execution is never
delivered twice: they are recognised by id)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from decimal import Decimal

from domain.bars import Bar
from entrypoints.protocol import messages as m
from entrypoints.sdk.auth import AuthClient
from entrypoints.sdk.client import SessionClient
from entrypoints.sdk.driver import (
    EngineSettingValue,
    Outcome,
    Started,
    TickView,
    session_request,
)
from entrypoints.sdk.errors import (
    ConnectionLostError,
    InvalidStateError,
    RequestTimeoutError,
    SessionError,
    SimuTradorError,
)

RESUME_ATTEMPTS = 8
SESSION_BUSY_BACKOFF = 0.2


def _ends_a_step(message: m.ServerMessage) -> bool:
    return isinstance(message, m.Tick | m.SimulationComplete)


class RemoteDriver:
    """`SimulationDriver` over one SessionClient: creates the session, starts it, and
    acknowledges ticks with the strategy's orders."""

    def __init__(
        self,
        auth: AuthClient,
        symbols: Sequence[str],
        start: str,
        end: str,
        capital: Decimal,
        timeframe: str = "1d",
        *,
        warmup_bars: int = 0,
        engine_settings: Mapping[str, EngineSettingValue] | None = None,
        timeout: float = 60.0,
        max_connect_attempts: int = 8,
        first_connect_attempts: int = 3,
    ) -> None:
        self._request = session_request(symbols, start, end, capital, timeframe, engine_settings)
        self._client = SessionClient(
            auth, timeout=timeout, max_connect_attempts=max_connect_attempts
        )
        self._warmup = warmup_bars
        # A server that is not there at the start is reported as fast as `session list`
        # does; once running, a dropped connection gets more tries.
        self._attempts = (first_connect_attempts, max_connect_attempts)
        self._session_id = ""
        self._last_tick = 0
        self._seen: set[str] = set()
        self._refused: set[str] = set()
        self.resumes = 0
        """How many times the run reconnected and resumed (for monitoring and tests)."""

    @property
    def client(self) -> SessionClient:
        return self._client

    async def start(self) -> tuple[Started, Outcome]:
        self._client.max_connect_attempts = self._attempts[0]
        try:
            created = await self._client.request(
                m.CreateSession(data=self._request), m.SessionCreated
            )
        finally:
            self._client.max_connect_attempts = self._attempts[1]
        session = created.data
        self._session_id = session.session_id
        messages = await self._client.exchange(
            m.StartSimulation(
                data=m.StartSimulationData(session_id=session.session_id, warmup_bars=self._warmup)
            ),
            _ends_a_step,
        )
        total = 0
        history: dict[str, list[Bar]] = {s: [] for s in session.symbols}
        for message in messages:
            if isinstance(message, m.SimulationStarted):
                total = message.data.total_ticks
            elif isinstance(message, m.History):
                for symbol, rows in message.data.bars.items():
                    history[symbol] = [Bar(*row) for row in rows]
        started = Started(
            session.session_id,
            tuple(session.symbols),
            total,
            history,
            tuple(session.warnings),
            session.currency,
        )
        return started, self._outcome(messages)

    async def acknowledge(
        self, sequence_id: int, orders: Sequence[m.OrderData], cancels: Sequence[str]
    ) -> Outcome:
        ack = m.TickAck(
            data=m.TickAckData(
                session_id=self._session_id,
                sequence_id=sequence_id,
                orders=list(orders),
                cancels=list(cancels),
            )
        )
        carried: list[m.ServerMessage] = []
        while True:
            try:
                return self._outcome(carried + await self._client.exchange(ack, _ends_a_step))
            except (ConnectionLostError, RequestTimeoutError):
                resumed = await self._resume()
            except InvalidStateError as exc:
                if exc.details.get("state") != "paused":
                    raise
                resumed = await self._resume()  # paused (e.g. our ack came too late)

            sync = next(x for x in resumed if isinstance(x, m.StateSync))
            if sync.data.next_sequence_id == sequence_id:
                # The ack never arrived: the server waits for it still. Send it again.
                carried += [x for x in resumed if not isinstance(x, m.Tick)]
                continue
            return self._outcome(carried + resumed)

    async def results(self) -> m.SimulationResultsData:
        reply = await self._client.request(
            m.GetResults(data=m.SessionRef(session_id=self._session_id)), m.SimulationResults
        )
        return reply.data

    async def close(self) -> None:
        await self._client.close()

    # ------------------------------------------------------------------ internals

    async def _resume(self) -> list[m.ServerMessage]:
        """Reconnect and resume where the server is; the executions this client missed come
        back in `state_sync`, then the tick in flight."""
        last_error: SimuTradorError | None = None
        for attempt in range(RESUME_ATTEMPTS):
            try:
                messages = await self._client.exchange(
                    m.ResumeSession(
                        data=m.ResumeSessionData(
                            session_id=self._session_id, last_sequence_id=self._last_tick
                        )
                    ),
                    _ends_a_step,
                )
            except SessionError as exc:
                if exc.code != "SESSION_BUSY":  # the server has not seen the old socket close
                    raise
                last_error = exc
            except ConnectionLostError as exc:
                last_error = exc
            else:
                self.resumes += 1
                return messages
            await asyncio.sleep(SESSION_BUSY_BACKOFF * (attempt + 1))
        assert last_error is not None
        raise last_error

    def _outcome(self, messages: Sequence[m.ServerMessage]) -> Outcome:
        reports: list[m.ExecutionReportData] = []
        rejected: dict[str, tuple[str, str]] = {}
        tick: TickView | None = None
        for message in messages:
            if isinstance(message, m.ExecutionReport):
                self._collect(message.data, reports)
            elif isinstance(message, m.StateSync):
                for missed in message.data.missed_executions:
                    self._collect(missed, reports)
                for order_id, refusal in message.data.missed_rejections.items():
                    if order_id not in self._refused:
                        rejected[order_id] = (refusal.error_code, refusal.message)
            elif isinstance(message, m.BatchAck):
                rejected.update(
                    (oid, (r.error_code, r.message)) for oid, r in message.data.rejected.items()
                )
            elif isinstance(message, m.Tick):
                data = message.data
                self._last_tick = data.sequence_id
                when = data.sim_time
                tick = TickView(
                    data.sequence_id,
                    int(when.timestamp()),
                    when,
                    {
                        s: Bar(when, b.open, b.high, b.low, b.close, b.volume)
                        for s, b in data.bars.items()
                    },
                    data.equity,
                    data.cash,
                    data.is_last,
                )
        self._refused.update(rejected)
        return Outcome(reports, tick, rejected)

    def _collect(self, report: m.ExecutionReportData, into: list[m.ExecutionReportData]) -> None:
        if report.execution_id not in self._seen:
            self._seen.add(report.execution_id)
            into.append(report)
