"""The latency benchmark's peers in processes of their own (benchmarks/processes.py): the
delay proxy relays both ways and counts what it relayed, `simutrador serve` serves its home
on loopback, and every process started is gone once the `with` is left, also when the
block fails."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from benchmarks.processes import ProxyProcess, ServeProcess


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A TCP echo server on loopback, in a thread."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = int(listener.getsockname()[1])

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    listener.close()


async def round_trip(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await reader.readexactly(len(payload))
    finally:
        writer.close()
        await writer.wait_closed()


def test_the_proxy_process_relays_both_ways_and_counts(echo_port: int) -> None:
    with ProxyProcess(echo_port, delay_ms=1) as proxy:
        assert proxy.port not in (0, echo_port)
        payload = bytes(range(256)) * 40
        assert asyncio.run(round_trip(proxy.port, payload)) == payload
        stats = proxy.stats()
        assert stats.chunks["up"] >= 1
        assert stats.chunks["down"] >= 1
        assert stats.mean_late_ms() >= 0
        assert stats.minus(stats).chunks == {"up": 0, "down": 0}
        process = proxy.process
    assert process is not None
    assert process.poll() is not None  # ended with the block


def test_the_proxy_delays_each_way_and_keeps_a_stream_whole(echo_port: int) -> None:
    """Each chunk waits its delay in each direction (a round trip takes at least twice
    it), and a stream larger than one read arrives whole and in order."""

    async def timed() -> tuple[float, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        try:
            started = time.perf_counter()
            writer.write(b"ping")
            await writer.drain()
            await reader.readexactly(4)
            elapsed = time.perf_counter() - started
            big = bytes(range(256)) * 2048  # 512 KiB: several chunks each way
            writer.write(big)
            await writer.drain()
            return elapsed, await reader.readexactly(len(big))
        finally:
            writer.close()
            await writer.wait_closed()

    with ProxyProcess(echo_port, delay_ms=25) as proxy:
        elapsed, echoed = asyncio.run(timed())
        stats = proxy.stats()
    assert elapsed >= 0.050
    assert echoed == bytes(range(256)) * 2048
    assert stats.chunks["up"] >= 2
    assert stats.chunks["down"] >= 2


def test_the_proxy_process_ends_when_the_block_fails(echo_port: int) -> None:
    started: list[ProxyProcess] = []

    def fail_inside() -> None:
        with ProxyProcess(echo_port, 1) as proxy:
            started.append(proxy)
            raise RuntimeError("failed")

    with pytest.raises(RuntimeError, match="failed"):
        fail_inside()
    process = started[0].process
    assert process is not None
    assert process.poll() is not None


def test_the_server_process_serves_its_home_on_loopback_until_the_block_ends(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    with ServeProcess(home) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200
        process = server.process
    assert process is not None
    assert process.poll() is not None
    assert (home / "api_keys.json").exists()  # (its first start made the demo key there)
