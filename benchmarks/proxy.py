"""A TCP proxy on loopback that delays every chunk by a fixed time in each direction: a
link with latency, for measuring what round trips cost (`benchmarks/latency.py`).

It listens on 127.0.0.1 only and forwards to a 127.0.0.1 port; it runs its own event loop
in a thread, so blocking callers (`run_backtest`) and other loops can use it; it stops
itself after `lifetime` seconds at the latest, and `stop()` (or leaving the `with`) ends
it and every connection through it.

`python -m benchmarks.proxy TARGET_PORT --delay-ms D` runs one in a process of its own (see
`benchmarks.processes.ProxyProcess`, which the latency suite uses: a proxy sharing the
client's interpreter would make the client wait for the GIL on every chunk). It prints
`{"port": P}` once listening, answers each `stats` line on stdin with its `chunks` and
`late_ms` as one JSON line, and ends when its stdin closes."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import threading
from collections.abc import Sequence
from types import TracebackType

LOOPBACK = "127.0.0.1"
CHUNK = 64 * 1024


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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    def start(self) -> DelayProxy:
        self._thread = threading.Thread(target=self._run, name="delay-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._failure is not None:
            raise RuntimeError(f"the delay proxy did not start: {self._failure!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop may have ended already
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> DelayProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start()
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                await self._relay(reader, writer)
            except asyncio.CancelledError:
                pass  # stopping: ends quietly (asyncio logs a handler task that ends cancelled)
            finally:
                tasks.discard(task)

        server = await asyncio.start_server(accepted, LOOPBACK, 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.lifetime)
            server.close()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(LOOPBACK, self.target_port)
        except OSError:
            client_w.close()
            return
        try:
            await asyncio.gather(
                self._pipe(client_r, server_w, "up"), self._pipe(server_r, client_w, "down")
            )
        finally:
            for w in (client_w, server_w):
                w.close()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str
    ) -> None:
        """Read chunks as they come; a second task writes each once its delay is over."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                self.late_ms[direction] += max(0.0, loop.time() - due) * 1000
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()

        delivering = asyncio.create_task(deliver())
        try:
            while True:
                data = await reader.read(CHUNK)
                queue.put_nowait((loop.time() + self.delay, data))
                if not data:
                    break
                self.chunks[direction] += 1
            await delivering
        except (ConnectionError, OSError):
            pass
        finally:
            delivering.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await delivering


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
