"""The benchmark's server process: the real app, built and served exactly as `simutrador
serve` builds it, plus one extra route, `/ws/echo`, the baseline every wire figure is
divided by. A small control pipe lets the benchmark ask the process for what only it can
measure (its RSS after a collection, tracemalloc); its users' tokens come back at start."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import resource
import socket
import tracemalloc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgspec
from dependency_injector import providers
from litestar import Litestar, WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from domain.limits import Limits, Plan
from entrypoints.container import Container
from entrypoints.server.runner import GracefulServer, build_server
from entrypoints.settings import Settings

ECHO_PATH = "/ws/echo"


class EchoMessage(msgspec.Struct, kw_only=True):
    """Any client frame's envelope: what the echo route decodes and sends back."""

    type: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    request_id: str | None = None


_echo_decoder = msgspec.json.Decoder(EchoMessage)
_echo_encoder = msgspec.json.Encoder()


@websocket(ECHO_PATH)
async def echo(socket: WebSocket[Any, Any, Any]) -> None:
    """The same receive → decode → encode → send loop as `/ws/simulate`, minus the work."""
    await socket.accept()
    with contextlib.suppress(WebSocketDisconnect, OSError):
        while True:
            event = await socket.receive()
            if event["type"] != "websocket.receive":
                break
            text = event.get("text")
            if text is not None:
                await socket.send_text(_echo_encoder.encode(_echo_decoder.decode(text)))


def with_echo_route(server: GracefulServer) -> GracefulServer:
    """Register `/ws/echo` on the app a `build_server` server will serve (same stack)."""
    app = server.config.app
    if not isinstance(app, Litestar):
        raise TypeError(f"expected the Litestar app, got {type(app).__name__}")
    app.register(echo)
    return server


def raise_fd_limit() -> int:
    """Raise the soft open-files limit to the hard one (1,000 sockets need it); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_bytes() -> int:
    """Resident set size of this process, from /proc (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ServerSpec:
    """What the server process needs to build its settings (picklable for `spawn`)."""

    home: Path
    jwt_secret: str
    plan_limits: Mapping[Plan, Limits]
    users: tuple[tuple[str, Plan], ...] = ()
    storage: str = "sqlite"

    def settings(self) -> Settings:
        return Settings(
            home=self.home,
            jwt_secret=self.jwt_secret,
            plan_limits=dict(self.plan_limits),
            log_level="warning",
            storage=self.storage,
        )


def serve_in_process(control: Connection, spec: ServerSpec) -> None:
    """Entry point of the server process: serve until the control pipe says stop."""
    raise_fd_limit()
    container = Container()
    container.settings.override(providers.Object(spec.settings()))
    server = with_echo_route(build_server(container, "127.0.0.1", 0, "warning"))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))

    async def main() -> None:
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started:
            if serving.done():
                serving.result()  # startup failed: raise why
                return
            await asyncio.sleep(0.01)
        auth = container.auth_service()
        tokens = {}
        for user, plan in spec.users:
            key = await auth.create_api_key(user, plan)
            tokens[user] = (await auth.issue_token(key.secret)).access_token
        control.send((listener.getsockname()[1], os.getpid(), tokens))
        await obey(control, container)
        server.should_exit = True
        await serving

    asyncio.run(main())


async def obey(control: Connection, container: Container) -> None:
    """Answer control commands until `stop` (or the benchmark going away)."""
    loop = asyncio.get_running_loop()
    traced_from = 0
    while True:
        try:
            command = await loop.run_in_executor(None, control.recv)
        except (EOFError, OSError):
            return
        if command == "stop":
            control.send(None)
            return
        if command == "rss":
            gc.collect()
            control.send(rss_bytes())
        elif command == "trace-start":
            gc.collect()
            tracemalloc.start()
            traced_from = tracemalloc.get_traced_memory()[0]
            control.send(None)
        elif command == "trace-stop":
            gc.collect()
            traced = tracemalloc.get_traced_memory()[0] - traced_from
            tracemalloc.stop()
            control.send(traced)
        elif command == "stored":
            control.send(await container.session_service().stored_count())
        elif isinstance(command, tuple) and command[0] == "results-as-objects":
            control.send(await results_as_objects(container, command[1]))
        else:
            control.send(ValueError(f"unknown command {command!r}"))


async def results_as_objects(container: Container, session_ids: Sequence[str]) -> int:
    """Bytes the results of these completed sessions take as the objects a server held
    until results left memory (read back from the store, traced, then dropped)."""
    store = container.results_store()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    held = [await store.get(session_id) for session_id in session_ids]
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    if any(run is None for run in held):
        raise RuntimeError("a completed session has no stored results")
    del held
    return traced
