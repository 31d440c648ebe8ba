"""A TCP proxy on loopback that delays every chunk by a fixed time in each direction: a
link with latency, for measuring what round trips cost (`benchmarks/latency.py`).

It listens on 127.0.0.1 only and forwards to a 127.0.0.1 port; it runs in threads of its
own, so blocking callers (`run_backtest`) and event loops can use it; it stops itself after
`lifetime` seconds at the latest, and `stop()` (or leaving the `with`) ends it and every
connection through it.

Each direction of a connection is a reader thread and a writer thread: the writer sleeps
until a chunk's time is due with `time.sleep` (a deadline in nanoseconds) rather than an
event loop's timer, which waits in whole milliseconds (epoll) and so sends each chunk up to
a millisecond late: ~0.7 ms a chunk measured, 7 % on top of a 10 ms delay.

`python -m benchmarks.proxy TARGET_PORT --delay-ms D` runs one in a process of its own (see
`benchmarks.processes.ProxyProcess`, which the latency suite uses: a proxy sharing the
client's interpreter would make the client wait for the GIL on every chunk). It prints
`{"port": P}` once listening, answers each `stats` line on stdin with its `chunks` and
`late_ms` as one JSON line, and ends when its stdin closes."""

from __future__ import annotations

import argparse
import contextlib
import json
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType

LOOPBACK = "127.0.0.1"
CHUNK = 64 * 1024
POLL_SECONDS = 0.2
"""How often the listener looks whether it was stopped."""


class DelayProxy:
    """`with DelayProxy(target_port, delay_ms=10) as proxy:` → connect to `proxy.port`.

    Each chunk read from one side is written to the other `delay_ms` after it arrived (the
    chunks of one direction keep their order and do not wait for each other: a latency, not
    a bandwidth limit). `chunks` counts them per direction."""

    def __init__(self, target_port: int, delay_ms: float, lifetime: float = 900.0) -> None:
        self.target_port = target_port
        self.delay = delay_ms / 1000
        self.lifetime = lifetime
        self.port = 0
        self.chunks = {"up": 0, "down": 0}
        self.late_ms = {"up": 0.0, "down": 0.0}
        """Per direction, the milliseconds by which the chunks went out later than their
        delay, summed: the proxy's own timer and scheduling lag (on a loaded machine its
        process may not run the moment a delay ends)."""
        self._listener: socket.socket | None = None
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> DelayProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, 0))
        listener.listen()
        listener.settimeout(POLL_SECONDS)
        self._listener = listener
        self.port = int(listener.getsockname()[1])
        self._spawn(self._accept, "delay-proxy")
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._shut_all()  # wakes the threads blocked on them
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(10)
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()
            self._threads.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> DelayProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ the threads

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        listener = self._listener
        assert listener is not None
        ends = time.monotonic() + self.lifetime
        while not self._stopped.is_set() and time.monotonic() < ends:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection((LOOPBACK, self.target_port))
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._direction(client, upstream, "up")
            self._direction(upstream, client, "down")
        self._stopped.set()
        self._shut_all()

    def _shut_all(self) -> None:
        """Shut every connection both ways: its threads see the end and finish."""
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _direction(self, source: socket.socket, target: socket.socket, direction: str) -> None:
        chunks: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()
        self._spawn(self._read, f"delay-proxy-{direction}-in", source, chunks, direction)
        self._spawn(self._write, f"delay-proxy-{direction}-out", target, chunks, direction)

    def _read(
        self, source: socket.socket, chunks: queue.SimpleQueue[tuple[float, bytes]], direction: str
    ) -> None:
        """Take chunks as they come, each stamped with the time it is due (b"" at the end)."""
        data = b""
        try:
            while data := source.recv(CHUNK):
                chunks.put((time.monotonic() + self.delay, data))
                self.chunks[direction] += 1
        except OSError:
            data = b""
        chunks.put((time.monotonic() + self.delay, data))

    def _write(
        self, target: socket.socket, chunks: queue.SimpleQueue[tuple[float, bytes]], direction: str
    ) -> None:
        """Send each chunk once it is due; at the end, pass the end of the stream on."""
        while True:
            due, data = chunks.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                if not data:
                    target.shutdown(socket.SHUT_WR)
                    return
                late = time.monotonic() - due
                target.sendall(data)
            except OSError:
                return
            self.late_ms[direction] += max(0.0, late) * 1000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.proxy", description=__doc__)
    parser.add_argument("target_port", type=int, help="the 127.0.0.1 port to forward to")
    parser.add_argument("--delay-ms", type=float, default=10.0, help="delay each way")
    parser.add_argument("--lifetime", type=float, default=900.0, help="end after (seconds)")
    args = parser.parse_args(argv)
    with DelayProxy(args.target_port, args.delay_ms, args.lifetime) as proxy:
        print(json.dumps({"port": proxy.port}), flush=True)
        for line in sys.stdin:  # the main thread waits here, holding no lock
            if line.strip() == "stats":
                print(json.dumps({"chunks": proxy.chunks, "late_ms": proxy.late_ms}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
