"""Benchmarked peers in processes of their own: `simutrador serve` over a prepared home, and
the delay proxy (`python -m benchmarks.proxy`).

A server or proxy running as a thread of the benchmark's own interpreter shares its GIL with
the client being measured: a message may then wait for the interpreter to switch threads
(up to `sys.getswitchinterval()`, 5 ms), which would measure the benchmark, not the client.
A deployed server runs in its own process, and a network's latency is not inside the
client's interpreter; so here too.

Both listen on 127.0.0.1 only; leaving the `with` (also on failure) stops them, a process
that does not end when asked is killed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

LOOPBACK = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[1]
SIMUTRADOR = Path(sys.executable).parent / "simutrador"
START_SECONDS = 30.0
STOP_SECONDS = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _stop(process: subprocess.Popen[bytes] | subprocess.Popen[str] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class ServeProcess:
    """`with ServeProcess(home) as server:` → `simutrador serve` on `server.port`, over
    `home` (its bars, keys and secret), other settings from the SIMUTRADOR_* environment.
    Its log (warnings and worse) goes to a file beside the home, shown if it fails to start."""

    def __init__(self, home: Path, **settings: str) -> None:
        self.home = home
        self.port = free_port()
        self.log = home.parent / f"{home.name}-serve.log"
        self.env = {
            **os.environ,
            "SIMUTRADOR_HOME": str(home),
            "SIMUTRADOR_LOG_LEVEL": "warning",
            **settings,
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> ServeProcess:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [SIMUTRADOR, "serve", "--host", LOOPBACK, "--port", str(self.port), "--no-sample"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"simutrador serve ended: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"simutrador serve did not come up: {self.log.read_text()}")

    def stop(self) -> None:
        _stop(self.process)

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class ProxyStats:
    chunks: dict[str, int]
    """Chunks relayed per direction (`up`, `down`)."""
    late_ms: dict[str, float]
    """Per direction, how much later than their delay they went out, summed (ms)."""

    def minus(self, earlier: ProxyStats) -> ProxyStats:
        """What happened since `earlier`."""
        return ProxyStats(
            {k: v - earlier.chunks.get(k, 0) for k, v in self.chunks.items()},
            {k: v - earlier.late_ms.get(k, 0.0) for k, v in self.late_ms.items()},
        )

    def mean_late_ms(self) -> float:
        return sum(self.late_ms.values()) / max(1, sum(self.chunks.values()))


class ProxyProcess:
    """`with ProxyProcess(target_port, delay_ms) as proxy:` → connect to `proxy.port`: a
    `DelayProxy` in a child process (`python -m benchmarks.proxy`), driven over its stdin:
    `stats()` asks it for its counts; closing its stdin ends it."""

    def __init__(self, target_port: int, delay_ms: float) -> None:
        self.target_port = target_port
        self.delay_ms = delay_ms
        self.port = 0
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> ProxyProcess:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.proxy",
                str(self.target_port),
                "--delay-ms",
                str(self.delay_ms),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        try:
            self.port = int(self._line()["port"])
        except BaseException:
            self.stop()
            raise
        return self

    def stats(self) -> ProxyStats:
        """The chunks relayed so far and how late they went out, per direction."""
        assert self.process is not None
        assert self.process.stdin is not None
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        answer = self._line()
        return ProxyStats(
            {k: int(v) for k, v in answer["chunks"].items()},
            {k: float(v) for k, v in answer["late_ms"].items()},
        )

    def _line(self) -> dict[str, Any]:
        assert self.process is not None
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the delay proxy ended (exit code {self.process.poll()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.stdin is not None and not self.process.stdin.closed:
            try:
                self.process.stdin.close()  # the proxy's signal to stop
                self.process.wait(timeout=STOP_SECONDS)
            except (OSError, subprocess.TimeoutExpired):
                pass
        _stop(self.process)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> ProxyProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
