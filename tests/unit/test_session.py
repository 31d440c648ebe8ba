"""The session entity: every move of the life cycle against TRANSITIONS, idle expiry, engine
settings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from domain.dates import DateRange
from domain.errors import InvalidState, ValidationFailed
from domain.session import (
    TRANSITIONS,
    EngineSettings,
    SessionState,
    SimulationSession,
    can_transition,
)
from domain.symbols import AssetClass, Symbol

S = SessionState
CREATED = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
TIMEOUT = timedelta(minutes=60)

# Actions that lead from INITIALIZING to each state, using only legal moves.
PATHS: dict[SessionState, tuple[str, ...]] = {
    S.INITIALIZING: (),
    S.READY: ("mark_ready",),
    S.RUNNING: ("mark_ready", "start"),
    S.PAUSED: ("mark_ready", "start", "pause"),
    S.COMPLETED: ("mark_ready", "start", "complete"),
    S.ERROR: ("fail",),
}

# Each named action, the state it leads to, and the states it may start from on top of
# TRANSITIONS (`start` and `resume` both reach RUNNING but from one state each).
ACTIONS: dict[str, tuple[SessionState, frozenset[SessionState] | None]] = {
    "mark_ready": (S.READY, None),
    "start": (S.RUNNING, frozenset({S.READY})),
    "pause": (S.PAUSED, None),
    "resume": (S.RUNNING, frozenset({S.PAUSED})),
    "complete": (S.COMPLETED, None),
    "fail": (S.ERROR, None),
}


def new_session(session_id: str = "sess_test") -> SimulationSession:
    return SimulationSession(
        id=session_id,
        owner="user_1",
        symbols=(Symbol("AAPL", AssetClass.STOCK),),
        date_range=DateRange.parse("2023-01-03", "2023-12-29"),
        initial_capital=Decimal("10000.00"),
        created_at=CREATED,
        idle_timeout=TIMEOUT,
    )


def act(session: SimulationSession, action: str) -> None:
    method: Callable[..., None] = getattr(session, action)
    if action == "fail":
        method("test failure")
    else:
        method()


def session_in(state: SessionState) -> SimulationSession:
    session = new_session()
    for action in PATHS[state]:
        act(session, action)
    assert session.state is state
    return session


def test_new_session_starts_initializing_with_idle_clock_from_creation() -> None:
    session = new_session()
    assert session.state is S.INITIALIZING
    assert session.updated_at == CREATED
    assert session.expires_at == CREATED + TIMEOUT
    assert session.error_reason is None


def test_transition_table_covers_every_state_and_initializing_is_never_a_target() -> None:
    assert set(TRANSITIONS) == set(SessionState)
    assert all(S.INITIALIZING not in targets for targets in TRANSITIONS.values())
    assert all(state not in TRANSITIONS[state] for state in SessionState)


@pytest.mark.parametrize("current", list(SessionState))
@pytest.mark.parametrize("target", list(SessionState))
def test_transition_to_follows_the_table(current: SessionState, target: SessionState) -> None:
    session = session_in(current)
    if target in TRANSITIONS[current]:
        session.transition_to(target)
        assert session.state is target
        assert can_transition(current, target)
    else:
        with pytest.raises(InvalidState) as caught:
            session.transition_to(target)
        assert session.state is current
        assert not can_transition(current, target)
        assert caught.value.code == "INVALID_STATE"
        assert caught.value.details["state"] == current.value
        assert caught.value.details["session_id"] == session.id


@pytest.mark.parametrize("current", list(SessionState))
@pytest.mark.parametrize("action", list(ACTIONS))
def test_named_actions_follow_the_table(current: SessionState, action: str) -> None:
    target, only_from = ACTIONS[action]
    legal = target in TRANSITIONS[current] and (only_from is None or current in only_from)
    session = session_in(current)
    if legal:
        act(session, action)
        assert session.state is target
    else:
        with pytest.raises(InvalidState) as caught:
            act(session, action)
        assert session.state is current
        details = caught.value.details
        assert details["state"] == current.value
        expected_from = (
            only_from if only_from is not None else {s for s in S if target in TRANSITIONS[s]}
        )
        assert set(details["allowed_from"]) == {s.value for s in expected_from}


def test_fail_keeps_the_reason() -> None:
    session = session_in(S.RUNNING)
    session.fail("bar store unavailable")
    assert session.state is S.ERROR
    assert session.error_reason == "bar store unavailable"


def test_fail_from_a_terminal_state_keeps_the_first_reason() -> None:
    session = session_in(S.ERROR)
    with pytest.raises(InvalidState):
        session.fail("second")
    assert session.error_reason == "test failure"


@pytest.mark.parametrize("state", list(SessionState))
def test_only_terminal_states_are_inactive(state: SessionState) -> None:
    session = session_in(state)
    terminal = state in (S.COMPLETED, S.ERROR)
    assert state.is_terminal is terminal
    assert session.is_active is not terminal


def test_touch_restarts_the_idle_clock() -> None:
    session = new_session()
    later = CREATED + timedelta(minutes=45)
    session.touch(later)
    assert session.updated_at == later
    assert session.expires_at == later + TIMEOUT
    assert not session.is_expired(CREATED + timedelta(minutes=61))
    assert session.is_expired(later + TIMEOUT)


def test_touch_never_moves_the_clock_back() -> None:
    session = new_session()
    later = CREATED + timedelta(minutes=10)
    session.touch(later)
    session.touch(CREATED)
    assert session.updated_at == later
    assert session.expires_at == later + TIMEOUT


def test_is_expired_at_exactly_the_timeout() -> None:
    session = new_session()
    assert not session.is_expired(CREATED + TIMEOUT - timedelta(microseconds=1))
    assert session.is_expired(CREATED + TIMEOUT)


def test_is_expired_against_a_given_timeout() -> None:
    session = new_session()
    session.touch(CREATED + timedelta(minutes=5))
    shorter = timedelta(minutes=1)
    assert not session.is_expired(CREATED + timedelta(minutes=5, seconds=59), shorter)
    assert session.is_expired(CREATED + timedelta(minutes=6), shorter)
    assert not session.is_expired(CREATED + timedelta(minutes=6))  # its own timeout is longer


def test_identity_is_the_id() -> None:
    first, same_id, other = new_session("sess_a"), new_session("sess_a"), new_session("sess_b")
    first.mark_ready()
    assert first == same_id
    assert hash(first) == hash(same_id)
    assert first != other
    assert len({first, same_id, other}) == 2


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("slippage_bps", {"slippage_bps": Decimal("-1")}),
        ("slippage_bps", {"slippage_bps": Decimal("10000.01")}),
        ("slippage_bps", {"slippage_bps": Decimal("NaN")}),
        ("commission_per_share", {"commission_per_share": Decimal("-0.01")}),
        ("commission_per_share", {"commission_per_share": Decimal("Infinity")}),
        ("commission_per_share", {"commission_per_share": Decimal("100.01")}),
        ("commission_pct", {"commission_pct": Decimal("-0.0001")}),
        ("commission_pct", {"commission_pct": Decimal("1.0001")}),
        ("commission_min", {"commission_min": Decimal("-1")}),
        ("commission_min", {"commission_min": Decimal("10000.01")}),
        ("max_volume_pct", {"max_volume_pct": Decimal(0)}),
        ("max_volume_pct", {"max_volume_pct": Decimal("1.01")}),
        ("max_volume_pct", {"max_volume_pct": Decimal("NaN")}),
    ],
)
def test_engine_settings_out_of_bounds(field: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationFailed) as caught:
        EngineSettings(**kwargs)
    assert caught.value.code == "VALIDATION_FAILED"
    assert caught.value.details["field"] == field


def test_engine_settings_bounds_are_inclusive() -> None:
    settings = EngineSettings(
        commission_per_share=Decimal(100),
        slippage_bps=Decimal(10_000),
        commission_pct=Decimal(1),
        commission_min=Decimal(10_000),
        max_volume_pct=Decimal(1),
    )
    assert settings.slippage_bps == Decimal(10_000)
    assert settings.max_volume_pct == Decimal(1)
    defaults = EngineSettings()
    assert defaults.commission_per_share == defaults.commission_pct == defaults.commission_min == 0
    assert (defaults.max_volume_pct, defaults.allow_short) == (None, False)


def test_life_cycle_shape() -> None:
    """The moves the simulation needs, stated independently of the table's layout."""
    assert can_transition(S.INITIALIZING, S.READY)
    assert can_transition(S.READY, S.RUNNING)
    assert can_transition(S.RUNNING, S.PAUSED)
    assert can_transition(S.PAUSED, S.RUNNING)
    assert can_transition(S.RUNNING, S.COMPLETED)
    assert not can_transition(S.READY, S.COMPLETED)  # a session that never ran cannot finish
    assert not can_transition(S.INITIALIZING, S.RUNNING)
    assert {s for s in S if s.is_terminal} == {S.COMPLETED, S.ERROR}
    assert all(can_transition(s, S.ERROR) for s in S if not s.is_terminal)
