"""Random walks through the session life cycle: every observed move is in TRANSITIONS, and a
refused action raises InvalidState and changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from domain.dates import DateRange
from domain.errors import InvalidState
from domain.session import TRANSITIONS, SessionState, SimulationSession
from domain.symbols import AssetClass, Symbol

S = SessionState
CREATED = datetime(2024, 1, 1, tzinfo=UTC)
ACTIONS = ("mark_ready", "start", "pause", "resume", "complete", "fail")
# Beyond TRANSITIONS, `start` only leaves READY and `resume` only leaves PAUSED.
ONLY_FROM = {"start": S.READY, "resume": S.PAUSED}
TARGETS = {
    "mark_ready": S.READY,
    "start": S.RUNNING,
    "pause": S.PAUSED,
    "resume": S.RUNNING,
    "complete": S.COMPLETED,
    "fail": S.ERROR,
}


def new_session() -> SimulationSession:
    return SimulationSession(
        id="sess_prop",
        owner="user",
        symbols=(Symbol("AAPL", AssetClass.STOCK),),
        date_range=DateRange.parse("2023-01-03", "2023-12-29"),
        initial_capital=Decimal("10000.00"),
        created_at=CREATED,
        idle_timeout=timedelta(minutes=60),
    )


def apply(session: SimulationSession, step: str | SessionState) -> None:
    if isinstance(step, SessionState):
        session.transition_to(step)
    elif step == "fail":
        session.fail("random failure")
    else:
        getattr(session, step)()


def expected_legal(state: SessionState, step: str | SessionState) -> bool:
    if isinstance(step, SessionState):
        return step in TRANSITIONS[state]
    return TARGETS[step] in TRANSITIONS[state] and ONLY_FROM.get(step, state) is state


steps = st.one_of(st.sampled_from(ACTIONS), st.sampled_from(list(SessionState)))


@given(st.lists(steps, max_size=30))
def test_random_action_sequences(sequence: list[str | SessionState]) -> None:
    session = new_session()
    for step in sequence:
        before = session.state
        if expected_legal(before, step):
            apply(session, step)
            assert session.state in TRANSITIONS[before]
        else:
            with pytest.raises(InvalidState) as refused:
                apply(session, step)
            assert session.state is before
            assert refused.value.details["state"] == before.value


class SessionLifeCycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.session = new_session()
        self.seen: list[SessionState] = [self.session.state]
        self.now = CREATED

    @rule(step=steps)
    def act(self, step: str | SessionState) -> None:
        before = self.session.state
        if expected_legal(before, step):
            apply(self.session, step)
            assert self.session.state in TRANSITIONS[before]
            self.seen.append(self.session.state)
        else:
            with pytest.raises(InvalidState):
                apply(self.session, step)
            assert self.session.state is before

    @rule(minutes=st.integers(min_value=0, max_value=90))
    def idle_then_touch(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)
        expired = self.session.is_expired(self.now)
        assert expired is (self.now >= self.session.updated_at + timedelta(minutes=60))
        self.session.touch(self.now)
        assert not self.session.is_expired(self.now)

    @invariant()
    def history_follows_the_table(self) -> None:
        for before, after in zip(self.seen, self.seen[1:], strict=False):
            assert after in TRANSITIONS[before]
        assert self.session.is_active is not self.session.state.is_terminal

    @invariant()
    def error_reason_only_in_error(self) -> None:
        assert (self.session.error_reason is not None) is (self.session.state is S.ERROR)


SessionLifeCycle.TestCase.settings = settings(max_examples=100, stateful_step_count=20)
TestSessionLifeCycle = SessionLifeCycle.TestCase
