"""Issue 15 over a real WebSocket on loopback, one probe per finding: numbers beyond their
bounds are refused per order and never stop a simulation (1), inline orders share the batch
cap (2), prices off their bounds or tick are refused and the account stays exact past 28
digits (3, 4), a frame nested too deeply gets its own message, path and request_id (5), and
an engine fault on one order costs that order only. No traceback reaches the server log."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

import domain.broker
from domain.fills import commission as real_commission
from domain.limits import Plan
from domain.session import EngineSettings
from entrypoints.server.embedded import EmbeddedServer
from tests.integration.conftest import Records, ServerFactory, issue_token
from tests.integration.wsclient import (
    SIM_STEP_END,
    Message,
    WsClient,
    recv_until,
    sim_request,
)

D = Decimal
JANUARY = {"start_date": "2023-01-03", "end_date": "2023-01-31"}
_users = itertools.count(1)


async def connect(server: EmbeddedServer) -> WsClient:
    token = await asyncio.to_thread(issue_token, server, f"money{next(_users)}", Plan.PROFESSIONAL)
    return await WsClient.connect(server, token)


async def started_session(ws: WsClient, **settings: Any) -> str:
    reply = await ws.create_session(symbols=["AAPL"], **JANUARY, **settings)
    assert reply["type"] == "session_created", reply
    sid: str = reply["data"]["session_id"]
    messages = await sim_request(ws, "start_simulation", {"session_id": sid})
    assert messages[-1]["type"] == "tick", messages
    return sid


async def ack(ws: WsClient, sid: str, sequence_id: int, **extra: Any) -> list[Message]:
    data = {"session_id": sid, "sequence_id": sequence_id, **extra}
    return await sim_request(ws, "tick_ack", data, SIM_STEP_END)


async def raw_request(ws: WsClient, text: str, last: frozenset[str]) -> list[Message]:
    """Send a frame written by hand (JSON numbers no encoder writes), read its answer."""
    await ws.send_raw(text)
    return [message for _, message in await recv_until(ws, last)]


def order(order_id: str, quantity: object = 1, **extra: Any) -> dict[str, Any]:
    return {"order_id": order_id, "symbol": "AAPL", "side": "buy", "quantity": quantity, **extra}


def no_traceback(server_log: Records) -> None:
    assert not [r for r in server_log.records if r.exc_info or r.exc_text], [
        r.getMessage() for r in server_log.records
    ]


@pytest.fixture
async def ws(shared_server: EmbeddedServer) -> AsyncIterator[WsClient]:
    client = await connect(shared_server)
    yield client
    await client.close()


# ---------------------------------------------------------------- 1. numbers out of bounds

OUT_OF_BOUNDS: dict[str, tuple[str, str, str]] = {
    # order id: (the field as written in the JSON text, field, bound)
    "q-1e308": ('"quantity": 1e308', "quantity", "max"),
    "q-1e9999-number": ('"quantity": 1e9999', "quantity", "max"),
    "q-1e9999-string": ('"quantity": "1e9999"', "quantity", "max"),
    "q-50-digits": ('"quantity": "' + "9" * 50 + '"', "quantity", "max"),
    "q-1e28": ('"quantity": "1e28"', "quantity", "max"),
    "q-1e27": ('"quantity": "1e27"', "quantity", "max"),
    "q-tiny": ('"quantity": 1e-9999', "quantity", "max_places"),
    "q-nan": ('"quantity": "NaN"', "quantity", "finite"),
    "q-inf": ('"quantity": "Infinity"', "quantity", "finite"),
    "q-negative": ('"quantity": -5', "quantity", "min"),
    "n-1e30": ('"notional": "1e30"', "notional", "max"),
    "n-1e308": ('"notional": 1e308', "notional", "max"),
    "n-places": ('"notional": 1000.000000001', "notional", "max_places"),
}


def _hand_written_orders() -> str:
    return ", ".join(
        f'{{"order_id": "{oid}", "symbol": "AAPL", "side": "buy", {text}}}'
        for oid, (text, _, _) in OUT_OF_BOUNDS.items()
    )


def _check_refusals(batch_ack: Message) -> None:
    assert batch_ack["type"] == "batch_ack", batch_ack
    rejected = batch_ack["data"]["rejected"]
    assert batch_ack["data"]["accepted"] == ["fine"]
    assert set(rejected) == set(OUT_OF_BOUNDS)
    for oid, (_, field, bound) in OUT_OF_BOUNDS.items():
        refusal = rejected[oid]
        assert refusal["error_code"] == "INVALID_ORDER", (oid, refusal)
        assert refusal["details"]["field"] == field, (oid, refusal)
        assert refusal["details"]["bound"] == bound, (oid, refusal)
        assert field in refusal["message"]


async def test_numbers_beyond_their_bounds_are_refused_per_order_in_a_batch(
    ws: WsClient, server_log: Records
) -> None:
    sid = await started_session(ws)
    text = (
        '{"type": "order_batch", "request_id": "b1", "data": {"session_id": "' + sid + '", '
        '"batch_id": "b1", "orders": [' + _hand_written_orders() + ", "
        '{"order_id": "fine", "symbol": "AAPL", "side": "buy", "quantity": 1}]}}'
    )
    (batch_ack,) = await raw_request(ws, text, frozenset({"batch_ack"}))
    _check_refusals(batch_ack)
    # The simulation runs on: the accepted order fills on the next bar.
    step = await ack(ws, sid, 1)
    assert [m["type"] for m in step] == ["execution_report", "account_snapshot", "tick"], step
    assert step[0]["data"]["order_id"] == "fine"
    no_traceback(server_log)


async def test_numbers_beyond_their_bounds_are_refused_per_order_inline(
    ws: WsClient, server_log: Records
) -> None:
    sid = await started_session(ws)
    text = (
        '{"type": "tick_ack", "request_id": "a1", "data": {"session_id": "' + sid + '", '
        '"sequence_id": 1, "orders": [' + _hand_written_orders() + ", "
        '{"order_id": "fine", "symbol": "AAPL", "side": "buy", "quantity": 1}]}}'
    )
    messages = await raw_request(ws, text, SIM_STEP_END)
    _check_refusals(messages[0])
    assert messages[-1]["type"] == "tick"
    assert messages[-1]["data"]["sequence_id"] == 2
    step = await ack(ws, sid, 2)
    assert step[-1]["type"] == "tick"
    no_traceback(server_log)


# ---------------------------------------------------------------- 2. inline cap


async def test_inline_orders_share_the_batch_cap(ws: WsClient) -> None:
    sid = await started_session(ws)
    orders = [order(f"o{i}") for i in range(501)]
    batch = await sim_request(
        ws,
        "order_batch",
        {"session_id": sid, "batch_id": "big", "orders": orders},
        {"batch_ack"},
    )
    inline = await ack(ws, sid, 1, orders=orders)
    for reply in (batch, inline):
        assert [m["type"] for m in reply] == ["session_error"], reply
    assert inline[0]["data"]["error_code"] == batch[0]["data"]["error_code"] == "VALIDATION_FAILED"
    assert inline[0]["data"]["details"] == batch[0]["data"]["details"]
    assert inline[0]["data"]["details"] == {"field": "orders", "max": 500, "count": 501}
    # Nothing moved: tick 1 is still the one in flight, and 500 inline orders are taken.
    step = await ack(ws, sid, 1, orders=orders[:500])
    assert step[0]["type"] == "batch_ack"
    assert len(step[0]["data"]["accepted"]) == 500


# ---------------------------------------------------------------- 3 and 4. exact at any size


async def test_prices_beyond_their_places_or_off_the_tick_are_refused(ws: WsClient) -> None:
    sid = await started_session(ws)
    long_price = "600.12345678901234567890123456789012345678901234567"
    orders = [
        order("long", type="limit", limit_price=long_price),
        order("off-tick", type="limit", limit_price="600.005"),
        order("huge-stop", type="stop", stop_price="1e12"),
        order("sl-off-tick", stop_loss="99.999", take_profit="200"),
        order("on-tick", type="limit", limit_price="1.01"),
    ]
    (reply,) = await sim_request(
        ws, "order_batch", {"session_id": sid, "batch_id": "p", "orders": orders}, {"batch_ack"}
    )
    rejected = reply["data"]["rejected"]
    assert reply["data"]["accepted"] == ["on-tick"]
    expected = {
        "long": ("limit_price", "max_places"),
        "off-tick": ("limit_price", "tick_size"),
        "huge-stop": ("stop_price", "max"),
        "sl-off-tick": ("stop_loss", "tick_size"),
    }
    assert {k: (v["details"]["field"], v["details"]["bound"]) for k, v in rejected.items()} == (
        expected
    )
    assert rejected["off-tick"]["details"]["tick_size"] == "0.01"
    assert rejected["long"]["details"]["max_places"] == 8


def _fraction(value: str) -> Fraction:
    return Fraction(D(value))


async def test_the_account_identity_holds_exactly_through_partial_closes(
    ws: WsClient, server_log: Records
) -> None:
    """Finding 4: settings with 8 places and closes of a third and a half of a position
    (an average cost that never ends) keep cash and equity = initial + realized -
    commission + unrealized exact at every snapshot, past any 28-digit context."""
    settings = {
        "commission_pct": "0.00012345",
        "commission_per_share": "0.00123457",
        "slippage_bps": "1.23456789",
    }
    reply = await ws.create_session(symbols=["AAPL"], **JANUARY, **settings)
    sid = reply["data"]["session_id"]
    start = await sim_request(
        ws, "start_simulation", {"session_id": sid, "account_updates": "every_tick"}
    )
    assert start[-1]["type"] == "tick"
    initial = _fraction("100000")
    cash = initial
    plan = {1: ("buy", 3), 2: ("buy", 4), 3: ("sell", 3), 4: ("sell", 2), 6: ("sell", 1)}
    snapshots = 0
    for sequence in range(1, 10):
        orders = []
        if sequence in plan:
            side, quantity = plan[sequence]
            orders = [{**order(f"t{sequence}", quantity), "side": side}]
        step = await ack(ws, sid, sequence, orders=orders)
        for message in step:
            data = message["data"]
            if message["type"] == "execution_report" and D(data["fill_quantity"]):
                sign = 1 if data["side"] == "buy" else -1
                value = sign * _fraction(data["fill_quantity"]) * _fraction(data["price"])
                cash -= value + _fraction(data["commission"])
            if message["type"] == "account_snapshot":
                snapshots += 1
                assert _fraction(data["cash"]) == cash
                identity = (
                    initial
                    + _fraction(data["realized_pnl"])
                    - _fraction(data["total_commission"])
                    + _fraction(data["unrealized_pnl"])
                )
                assert identity == _fraction(data["equity"]), data
                for position in data["positions"]:
                    exponent = D(position["avg_price"]).as_tuple().exponent
                    assert isinstance(exponent, int)
                    assert -exponent <= 12  # avg_price is rounded for display
    assert snapshots == 9
    no_traceback(server_log)


# ---------------------------------------------------------------- 5. nesting


def _deep(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize(
    ("frame", "request_id", "path", "depth"),
    [
        (
            '{"type": "create_session", "request_id": "deep-1", "data": {"symbols": ["AAPL"],'
            ' "start_date": "2023-01-03", "end_date": "2023-01-31", "initial_capital": 1000,'
            ' "metadata": ' + _deep(3000) + "}}",
            "deep-1",
            "$.data.metadata" + ".a" * 30,  # the branch, down to its 33rd level
            3002,
        ),
        (  # the request_id after the deep part, the deep part in an unknown key
            '{"type": "tick_ack", "x": [' + "[" * 3000 + "]" * 3000 + '], "request_id": "deep-2"}',
            "deep-2",
            "$.x" + "[0]" * 31,
            3002,
        ),
        (  # the typed decode fails first on data; the deep part was once called "not JSON"
            '{"type": "tick_ack", "request_id": "deep-3", "data": {"session_id": 1}, "x": '
            + "[" * 3000
            + "]" * 3000
            + "}",
            "deep-3",
            "$.x" + "[0]" * 31,
            3001,
        ),
        (  # too deep and not even closed: no request_id to read
            "[" * 5000,
            None,
            "$" + "[0]" * 32,
            5000,
        ),
    ],
)
async def test_too_deep_json_has_its_own_message_path_and_request_id(
    ws: WsClient, frame: str, request_id: str | None, path: str, depth: int
) -> None:
    (reply,) = await raw_request(ws, frame, frozenset())
    assert reply["type"] == "error"
    assert reply["request_id"] == request_id
    assert reply["data"]["error_code"] == "INVALID_MESSAGE"
    assert "nested" in reply["data"]["message"]
    assert "not valid JSON" not in reply["data"]["message"]
    assert reply["data"]["details"] == {"path": path, "depth": depth}


# ---------------------------------------------------------------- the defensive net


async def test_an_engine_fault_on_one_order_rejects_that_order_only(
    server_factory: ServerFactory, server_log: Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault of ours (here: commission raising for a quantity of 7) rejects the order
    with INTERNAL_ERROR, is logged once with the session id, and the simulation goes on."""

    def faulty(quantity: Decimal, price: Decimal, settings: EngineSettings) -> Decimal:
        if quantity == 7:
            raise RuntimeError("injected fault")
        return real_commission(quantity, price, settings)

    server = server_factory()
    monkeypatch.setattr(domain.broker, "commission", faulty)
    async with await connect(server) as ws:
        sid = await started_session(ws)
        step = await ack(ws, sid, 1, orders=[order("boom", 7), order("fine", 5)])
        reports = {
            m["data"]["order_id"]: m["data"] for m in step if m["type"] == "execution_report"
        }
        assert reports["boom"]["status"] == "rejected"
        assert reports["boom"]["reason"] == "INTERNAL_ERROR"
        assert reports["fine"]["status"] == "filled"
        assert step[-1]["type"] == "tick"
        step = await ack(ws, sid, 2)
        assert step[-1]["type"] == "tick"
        info = await ws.request("get_session", {"session_id": sid})
        assert info["data"]["state"] == "running"
    faults = [r for r in server_log.records if "boom" in r.getMessage()]
    assert len(faults) == 1
    assert sid in faults[0].getMessage()
    assert faults[0].exc_info is not None
