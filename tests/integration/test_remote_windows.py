"""What windows are for (PROTOCOL §7.14): a remote run costs a round trip per decision, not
per bar. Counted on the socket (the frames the SDK writes), never timed; and the same
results one bar at a time, in windows, in process, and through `simutrador run --server`."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from domain.limits import Plan
from entrypoints.cli.app import app
from entrypoints.protocol.messages import OrderData
from entrypoints.sdk import BacktestResults
from entrypoints.sdk.auth import AuthClient
from entrypoints.sdk.driver import Outcome
from entrypoints.sdk.loading import load_strategy
from entrypoints.sdk.remote import RemoteDriver
from entrypoints.server.embedded import EmbeddedServer
from tests.integration.test_remote_backtest import (
    CAPITAL,
    EXAMPLES,
    Run,
    assert_same,
    drive_closing,
    local_driver,
)

SMA = Run(("AAPL",), "2019-01-02", "2023-12-29", {"fast": 10, "slow": 20}, {})
STEPPING = {"start_simulation", "tick_ack", "resume_session"}


class Counted(RemoteDriver):
    """A RemoteDriver whose socket writes are counted by message type, and whose acks with
    orders or cancels (the strategy's decisions) are counted as the strategy makes them."""

    def __init__(self, auth: AuthClient, run: Run, window: int) -> None:
        super().__init__(auth, list(run.symbols), run.start, run.end, CAPITAL, window=window)
        self.frames: dict[str, int] = {}
        self.events: list[str] = []
        """"sent TYPE" / "got TYPE", in the order the socket saw them."""
        self.decided = 0
        self.ticks_run = 0
        send, deliver = self.client._send, self.client._deliver

        async def counting(ws: Any, frame: str) -> None:
            kind = json.loads(frame)["type"]
            self.frames[kind] = self.frames.get(kind, 0) + 1
            self.events.append(f"sent {kind}")
            await send(ws, frame)

        def delivering(frame: str | bytes) -> None:
            self.events.append(f"got {json.loads(frame)['type']}")
            deliver(frame)

        self.client._send = counting  # type: ignore[method-assign]
        self.client._deliver = delivering  # type: ignore[method-assign]

    async def acknowledge(
        self, sequence_id: int, orders: Sequence[OrderData], cancels: Sequence[str]
    ) -> Outcome:
        self.ticks_run += 1
        self.decided += bool(orders or cancels)
        return await super().acknowledge(sequence_id, orders, cancels)

    @property
    def stepping_frames(self) -> int:
        return sum(n for kind, n in self.frames.items() if kind in STEPPING)


async def sma_run(server: EmbeddedServer, window: int) -> tuple[BacktestResults, Counted]:
    key = server.create_api_key(f"round-trips-{window}", Plan.PROFESSIONAL)
    driver = Counted(AuthClient(server.http_url, key), SMA, window)
    results = await drive_closing(load_strategy(EXAMPLES / "sma_cross.py")(), driver, SMA.params)
    return results, driver


async def test_round_trips_follow_the_decisions_not_the_bars(
    shared_server: EmbeddedServer,
) -> None:
    window = 64  # a frame holds that many daily bars of one symbol, so none is cut short
    windowed, counted = await sma_run(shared_server, window)
    per_bar, one_at_a_time = await sma_run(shared_server, 1)
    local = await drive_closing(
        load_strategy(EXAMPLES / "sma_cross.py")(), local_driver(shared_server, SMA), SMA.params
    )
    assert_same(windowed, local)
    assert_same(per_bar, local)

    bars = windowed.total_ticks
    assert bars > 1000
    assert counted.ticks_run == bars  # the strategy ran over every bar
    decisions = counted.decided
    assert decisions == one_at_a_time.decided
    # SMA places one market order per decision, each reported (filled on the bar after,
    # or cancelled at the end of data).
    assert decisions == len({r.order_id for r in windowed.executions})
    assert 10 < decisions < bars / 10
    bound = decisions + math.ceil(bars / window) + 3
    assert counted.stepping_frames <= bound
    assert counted.stepping_frames == counted.round_trips
    # The results are asked for right behind the last ack, not a round trip after it.
    assert counted.frames["get_results"] == 1
    events = counted.events
    asked = events.index("sent get_results")
    assert events[asked - 1] == "sent tick_ack"  # the last one
    assert "sent tick_ack" not in events[asked:]
    assert asked < events.index("got simulation_complete")
    # One bar at a time: a round trip per bar, far above what windows need.
    assert one_at_a_time.stepping_frames == bars + 1
    assert one_at_a_time.stepping_frames > 5 * bound


def test_simutrador_run_server_with_and_without_windows(
    shared_server: EmbeddedServer, tmp_path: Path
) -> None:
    key = shared_server.create_api_key("cli-windows", Plan.PROFESSIONAL)
    env = {"SIMUTRADOR_HOME": str(tmp_path), "COLUMNS": "120"}
    args = [
        "run",
        str(EXAMPLES / "bracket_orders.py"),
        "--symbols",
        "AAPL,JPM",
        "--start",
        "2022-01-03",
        "--end",
        "2022-12-30",
        "--capital",
        str(CAPITAL),
        "--server",
        shared_server.http_url,
        "--api-key",
        key,
        "--json",
    ]
    outputs = []
    for window in ([], ["--window", "1"], ["--window", "3"]):
        result = CliRunner().invoke(app, [*args, *window], env=env)
        assert result.exit_code == 0, result.output
        outputs.append(json.loads(result.stdout))
    for output in outputs:
        output.pop("session_id", None)
        output.pop("wall_time_ms", None)
    assert outputs[0]["executions"], "the example must trade"
    assert outputs[1] == outputs[0]
    assert outputs[2] == outputs[0]
    bad = CliRunner().invoke(app, [*args, "--window", "0"], env=env)
    assert bad.exit_code == 2


def test_window_out_of_range_is_refused_before_connecting() -> None:
    auth = AuthClient("http://127.0.0.1:9", "sk_unused")
    for wrong in (0, 4097):
        with pytest.raises(ValueError, match="window"):
            RemoteDriver(auth, ["AAPL"], "2022-01-03", "2022-02-01", Decimal(1000), window=wrong)
