"""Fuzz of the numbers in §7 order messages against a real server (issue 15): values at and
beyond their bounds (domain.money), written as JSON numbers and as strings, in
`order_batch` and inline in `tick_ack`. Every order is accepted exactly when an independent
rational judge says it is within its bounds, refused otherwise with INVALID_ORDER naming the
field and the bound; the simulation never fails and the server logs no traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from domain.limits import Plan
from entrypoints.server.embedded import EmbeddedServer
from tests.integration.conftest import Records, server_log
from tests.reliability.conftest import ServerFactory, create_data, issue_token, raised_limits

__all__ = ["server_log"]  # the fixture, shared with the integration suite

RECV_TIMEOUT = 20.0
REFUSALS = frozenset({"session_error", "error"})
ENDS = frozenset({"batch_ack"})
STEP_ENDS = frozenset({"tick", "simulation_complete"})

# The bounds as docs/protocol.md states them, written down here independently of the code.
PLACES = 8
MAXIMUM = {
    "quantity": Fraction(10**10),
    "notional": Fraction(10**12),
    "limit_price": Fraction(10**10),
    "stop_price": Fraction(10**10),
    "stop_loss": Fraction(10**10),
    "take_profit": Fraction(10**10),
}
STEP = {"quantity": ("lot_size", Fraction(1))} | {
    name: ("tick_size", Fraction(1, 100))
    for name in ("limit_price", "stop_price", "stop_loss", "take_profit")
}
"""AAPL in the shipped catalog: lot 1, tick 0.01."""


# ---------------------------------------------------------------- the judge


def value_of(text: str) -> Fraction | None:
    """The exact value a decimal text denotes; None for NaN and the infinities."""
    try:
        return Fraction(text.strip())
    except (ValueError, OverflowError):
        return None


def bound_broken(name: str, text: str) -> str | None:
    value = value_of(text)
    if value is None:
        return "finite"
    if value <= 0:
        return "min"
    if value > MAXIMUM[name]:
        return "max"
    if (value * 10**PLACES).denominator != 1:
        return "max_places"
    return None


def expected_refusal(fields: dict[str, str]) -> tuple[str, str] | None:
    """(field, bound) of the first broken rule, in the order the server checks them: every
    number's bounds first, then lot and tick multiples; None when the order is fine."""
    for name in MAXIMUM:
        if name in fields and (broken := bound_broken(name, fields[name])) is not None:
            return name, broken
    for name, (bound, step) in STEP.items():
        if name in fields:
            value = value_of(fields[name])
            assert value is not None
            if (value / step).denominator != 1:
                return name, bound
    return None


# ---------------------------------------------------------------- numbers as text

EDGES = [
    "10000000000",
    "10000000000.00000000",
    "10000000000.00000001",
    "9999999999.99999999",
    "1000000000000",
    "1000000000000.01",
    "0.00000001",
    "0.000000001",
    "1e10",
    "1E+10",
    "1e-8",
    "1e308",
    "1e9999",
    "1e-9999",
    "-0",
    "0",
    "1e28",
    "1e27",
    "9" * 50,
    "0." + "1" * 50,
    "600.12345678901234567890123456789012345678901234567",
]
SPECIALS = ["NaN", "-NaN", "sNaN", "Infinity", "-Infinity", "inf", "nan"]


@st.composite
def number_texts(draw: st.DrawFn) -> str:
    """Decimal text: a sign, up to 60 digits with a point anywhere, maybe an exponent."""
    digits = draw(st.text("0123456789", min_size=1, max_size=60))
    point = draw(st.integers(0, len(digits)))
    text = digits if point == len(digits) else digits[:point] + "." + digits[point:]
    if text.startswith("."):
        text = "0" + text
    if draw(st.booleans()):
        text += draw(st.sampled_from(["e", "E"])) + str(draw(st.integers(-12_000, 12_000)))
    return draw(st.sampled_from(["", "", "-"])) + text


@st.composite
def plain_decimals(draw: st.DrawFn) -> str:
    """A positive decimal near the bounds' scale: 0 to 10 places, up to 13 integer digits
    (often within every bound, often on the tick and the lot, sometimes just beyond)."""
    places = draw(st.sampled_from([0, 0, 2, 2, 8, 9, 10]))
    units = draw(st.integers(1, 10**13) | st.integers(1, 10**5))
    if not places:
        return str(units)
    whole, fraction = divmod(units, 10**places)
    return f"{whole}.{fraction:0{places}d}"


@dataclass(frozen=True)
class Written:
    text: str
    as_number: bool

    def json(self) -> str:
        return self.text if self.as_number else json.dumps(self.text)


@st.composite
def written_numbers(draw: st.DrawFn) -> Written:
    text = draw(
        plain_decimals()
        | plain_decimals()
        | number_texts()
        | st.sampled_from(EDGES)
        | st.sampled_from(SPECIALS)
    )
    as_number = _valid_json_number(text) and draw(st.booleans())
    return Written(text, as_number)


def _valid_json_number(text: str) -> bool:
    """Whether `text` is a JSON number as RFC 8259 writes them (no leading zeros)."""
    body = text[1:] if text.startswith("-") else text
    mantissa = body.split("e")[0].split("E")[0]
    whole = mantissa.split(".")[0]
    if not whole.isdigit() or (len(whole) > 1 and whole.startswith("0")):
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@st.composite
def orders(draw: st.DrawFn, order_id: str) -> tuple[str, dict[str, str]]:
    """One order's JSON text and the text of each number in it (for the judge)."""
    size = draw(st.sampled_from(["quantity", "notional"]))
    order_type = draw(st.sampled_from(["market", "limit", "stop", "stop_limit"]))
    names = [size]
    if order_type in ("limit", "stop_limit"):
        names.append("limit_price")
    if order_type in ("stop", "stop_limit"):
        names.append("stop_price")
    names += [leg for leg in ("stop_loss", "take_profit") if draw(st.booleans())][:1]
    numbers = {name: draw(written_numbers()) for name in names}
    body = ", ".join(f'"{name}": {number.json()}' for name, number in numbers.items())
    text = (
        f'{{"order_id": "{order_id}", "symbol": "AAPL", "side": "buy", "type": "{order_type}", '
        f"{body}}}"
    )
    return text, {name: number.text for name, number in numbers.items()}


# ---------------------------------------------------------------- the connection


class SimulationSocket:
    def __init__(self, server: EmbeddedServer, token: str) -> None:
        self._ws: ClientConnection = connect(
            f"{server.ws_url}?token={token}", max_size=None, open_timeout=20, legacy=True
        )
        assert json.loads(self._ws.recv(timeout=RECV_TIMEOUT))["type"] == "connection_ready"
        self.sequence = 0

    def request(self, text: str, ends: frozenset[str] = ENDS) -> list[dict[str, Any]]:
        """Every message `text` causes, up to the first of a type in `ends`."""
        self._ws.send(text)
        replies: list[dict[str, Any]] = []
        while not replies or replies[-1]["type"] not in ends | REFUSALS:
            replies.append(json.loads(self._ws.recv(timeout=RECV_TIMEOUT)))
        return replies

    def close(self) -> None:
        self._ws.close()


@pytest.fixture
def simulation(
    server_factory: ServerFactory, server_log: Records
) -> Iterator[tuple[SimulationSocket, str]]:
    server = server_factory(plan_limits=raised_limits(messages_per_minute=1_000_000))
    client = SimulationSocket(server, issue_token(server, "number-fuzzer", Plan.ENTERPRISE))
    data = create_data(("AAPL",), start_date="2005-01-03", end_date="2023-12-29")
    (created,) = client.request(
        json.dumps({"type": "create_session", "data": data}), frozenset({"session_created"})
    )
    sid = created["data"]["session_id"]
    started = client.request(
        json.dumps({"type": "start_simulation", "data": {"session_id": sid}}), STEP_ENDS
    )
    assert started[-1]["type"] == "tick", started
    client.sequence = 1
    yield client, sid
    # The simulation survived every order: it still answers, and nothing was a traceback.
    (positions,) = client.request(
        json.dumps({"type": "query_positions", "data": {"session_id": sid}}),
        frozenset({"current_positions"}),
    )
    assert positions["type"] == "current_positions", positions
    client.close()
    assert not [r for r in server_log.records if r.exc_info or r.exc_text]


def fuzz_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


def check(replies: list[dict[str, Any]], judged: dict[str, tuple[str, str] | None]) -> None:
    ack = replies[0]
    assert ack["type"] == "batch_ack", replies
    accepted, rejected = ack["data"]["accepted"], ack["data"]["rejected"]
    assert sorted(accepted) == sorted(k for k, v in judged.items() if v is None), ack
    for order_id, expected in judged.items():
        if expected is None:
            continue
        refusal = rejected[order_id]
        assert refusal["error_code"] == "INVALID_ORDER", refusal
        assert (refusal["details"]["field"], refusal["details"]["bound"]) == expected, refusal
    assert not [m for m in replies if m["type"] in ("error", "session_error")], replies


def test_order_numbers_at_and_beyond_their_bounds(
    simulation: tuple[SimulationSocket, str],
) -> None:
    client, sid = simulation
    counter = iter(range(10**9))

    @fuzz_settings(150)
    @given(st.data(), st.booleans())
    def run(data: st.DataObject, inline: bool) -> None:
        drawn = [
            data.draw(orders(f"f{next(counter)}")) for _ in range(data.draw(st.integers(1, 4)))
        ]
        judged = {}
        for text, fields in drawn:
            order_id = json.loads(text.split(",")[0] + "}")["order_id"]
            judged[order_id] = expected_refusal(fields)
            event(f"{judged[order_id] or 'accepted'}")
        orders_text = "[" + ", ".join(text for text, _ in drawn) + "]"
        if inline:
            frame = (
                f'{{"type": "tick_ack", "data": {{"session_id": "{sid}", '
                f'"sequence_id": {client.sequence}, "orders": {orders_text}}}}}'
            )
        else:
            frame = (
                f'{{"type": "order_batch", "data": {{"session_id": "{sid}", '
                f'"batch_id": "b", "orders": {orders_text}}}}}'
            )
        replies = client.request(frame, STEP_ENDS if inline else ENDS)
        if replies[-1]["type"] == "tick":  # first, so a failed example leaves a usable state
            client.sequence = replies[-1]["data"]["sequence_id"]
        check(replies, judged)
        if inline:
            assert replies[-1]["type"] == "tick", replies

    run()
