"""Session use cases: create, inspect, list, change state, delete, expire."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from application.market_data import MarketDataValidator
from application.ports import (
    NO_METRICS,
    Clock,
    IdGenerator,
    RateLimiter,
    ServiceMetrics,
    SessionRepository,
)
from application.principal import Principal
from domain.errors import AccessDenied, DomainError, SessionLimitExceeded, SessionNotFound
from domain.limits import SessionPolicy
from domain.session import SessionParams, SessionState, SimulationSession
from domain.symbols import common_currency
from domain.validation import check_params

HOUR_SECONDS = 3600.0


class SessionService:
    """Every operation a user can do on their sessions. Ownership and per-user limits are
    enforced here; the repository makes the limit check and the insert one atomic step."""

    def __init__(
        self,
        repository: SessionRepository,
        validator: MarketDataValidator,
        clock: Clock,
        ids: IdGenerator,
        rate_limiter: RateLimiter,
        policy: SessionPolicy,
        metrics: ServiceMetrics = NO_METRICS,
    ) -> None:
        self._repository = repository
        self._metrics = metrics
        self._validator = validator
        self._clock = clock
        self._ids = ids
        self._rate_limiter = rate_limiter
        self._policy = policy

    @property
    def policy(self) -> SessionPolicy:
        return self._policy

    async def create(self, principal: Principal, params: SessionParams) -> SimulationSession:
        try:
            session = await self._create(principal, params)
        except DomainError as exc:
            self._metrics.session_refused(exc.code)
            raise
        self._metrics.session_created()
        return session

    async def _create(self, principal: Principal, params: SessionParams) -> SimulationSession:
        limits = principal.limits
        began = self._clock.monotonic()
        try:
            check_params(params, limits, self._policy)
            market = await self._validator.validate(
                params.symbols, params.date_range, params.timeframe
            )
        finally:
            self._metrics.validation_timed(self._clock.monotonic() - began)
        market.result.raise_first()

        rate_key = f"sessions-created:{principal.user_id}"
        wait = await self._rate_limiter.try_acquire(
            rate_key, limits.sessions_per_hour, HOUR_SECONDS, self._clock.monotonic()
        )
        if wait > 0:
            raise SessionLimitExceeded(
                f"You may create at most {limits.sessions_per_hour} sessions per hour",
                {
                    "limit": "sessions_per_hour",
                    "max": limits.sessions_per_hour,
                    "retry_after_ms": int(wait * 1000) + 1,
                },
            )

        now = self._clock.now()
        session = SimulationSession(
            id=self._ids.session_id(),
            owner=principal.user_id,
            symbols=market.symbols,
            date_range=params.date_range,
            initial_capital=params.initial_capital,
            created_at=now,
            idle_timeout=self._policy.session_timeout,
            metadata=params.metadata,
            engine=params.engine,
            timeframe=params.timeframe,
            estimated_trading_days=market.estimated_trading_days,
            total_bars=market.total_bars,
            warnings=market.result.warnings,
            currency=common_currency(market.instruments),
        )
        session.mark_ready()
        if not await self._repository.add_if_under_limit(session, limits.max_active_sessions, now):
            await self._rate_limiter.release(rate_key, self._clock.monotonic())
            raise SessionLimitExceeded(
                f"You already have {limits.max_active_sessions} active session"
                f"{'s' if limits.max_active_sessions != 1 else ''}, the most your plan allows; "
                "delete one first",
                {"limit": "active_sessions", "max": limits.max_active_sessions},
            )
        return session

    async def get(self, principal: Principal, session_id: str) -> SimulationSession:
        """The caller's session, touched (any request on a session counts as activity)."""
        session = await self._own(principal, session_id)
        return await self._touch(session)

    async def list(
        self, principal: Principal, state: SessionState | None = None
    ) -> list[SimulationSession]:
        now = self._clock.now()
        return [
            s
            for s in await self._repository.list_by_owner(principal.user_id)
            if not s.is_expired(now) and (state is None or s.state is state)
        ]

    async def change_state(
        self, principal: Principal, session_id: str, target: SessionState
    ) -> SimulationSession:
        session = await self._own(principal, session_id)
        session.transition_to(target)
        return await self._touch_and_save(session)

    async def fail(self, principal: Principal, session_id: str, reason: str) -> SimulationSession:
        session = await self._own(principal, session_id)
        session.fail(reason)
        return await self._touch_and_save(session)

    async def touch(self, principal: Principal, session_id: str) -> SimulationSession:
        return await self._touch(await self._own(principal, session_id))

    async def delete(self, principal: Principal, session_id: str) -> SimulationSession:
        await self._own(principal, session_id)
        removed = await self._repository.remove(session_id)
        if removed is None:  # deleted concurrently by another of the user's requests
            raise SessionNotFound(session_id)
        return removed

    async def expire_idle(self) -> Sequence[SimulationSession]:
        """Reclaim every session idle past the timeout; returns what was removed."""
        removed = await self._repository.remove_expired(self._clock.now())
        self._metrics.expiry_swept(len(removed))
        return removed

    async def stored_count(self) -> int:
        return await self._repository.count()

    async def count_by_state(self) -> Mapping[SessionState, int]:
        """Stored sessions per state, every state present (zero when none is in it)."""
        counted = await self._repository.count_by_state()
        return {state: counted.get(state, 0) for state in SessionState}

    async def _own(self, principal: Principal, session_id: str) -> SimulationSession:
        session = await self._repository.get(session_id)
        if session is None or session.is_expired(self._clock.now()):
            raise SessionNotFound(session_id)
        if session.owner != principal.user_id:
            raise AccessDenied(session_id)
        return session

    async def _touch_and_save(self, session: SimulationSession) -> SimulationSession:
        session.touch(self._clock.now())
        if not await self._repository.save(session):
            raise SessionNotFound(session.id)
        return session

    async def _touch(self, session: SimulationSession) -> SimulationSession:
        """Activity on a session whose state this request does not change."""
        session.touch(self._clock.now())
        if not await self._repository.touch(session):
            raise SessionNotFound(session.id)
        return session
