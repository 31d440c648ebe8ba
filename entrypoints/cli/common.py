"""What the client-side commands (`auth …`, `session …`) share: connection options,
running one SDK call, turning SDK errors into `CODE: message` + exit 1, and output helpers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Annotated, Any, NoReturn, TypeVar

import msgspec
import typer
from rich.console import Console
from rich.markup import escape

from entrypoints.cli.token_cache import CachedLogin, TokenCache
from entrypoints.protocol.messages import encoder
from entrypoints.sdk import (
    DEFAULT_SERVER_URL,
    AuthClient,
    ServerAddress,
    SessionClient,
    SimuTradorError,
    Token,
)

T = TypeVar("T")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _server_url(value: str) -> str:
    try:
        return ServerAddress.parse(value).http_url
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


ServerUrlOption = Annotated[
    str,
    typer.Option(
        "--server-url",
        envvar="SIMUTRADOR_SERVER_URL",
        callback=_server_url,
        help="Server base URL.",
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="SIMUTRADOR_API_KEY",
        show_default=False,
        help="API key (sk_…); without it, the token cached by `simutrador auth login`.",
    ),
]
TimeoutOption = Annotated[
    float,
    typer.Option(
        "--timeout", envvar="SIMUTRADOR_TIMEOUT", min=0.1, help="Seconds to wait for a reply."
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")
]

DEFAULT_URL = DEFAULT_SERVER_URL
DEFAULT_TIMEOUT = 30.0


def fail(code: str, message: str, details: Mapping[str, Any] | None = None) -> NoReturn:
    """`CODE: message` on stderr (details indented below it), then exit 1."""
    err.print(f"[bold red]{escape(code)}[/bold red]: {escape(message)}", soft_wrap=True)
    for key, value in (details or {}).items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        err.print(f"  [dim]{escape(key)}:[/dim] {escape(shown)}", soft_wrap=True)
    raise typer.Exit(1)


def fail_with(error: SimuTradorError) -> NoReturn:
    if error.code == "SERVER_UNREACHABLE":
        fail(
            error.code,
            error.message + ". Is it running? Start one with `simutrador serve`, or point "
            "SIMUTRADOR_SERVER_URL (--server-url) at it.",
        )
    if error.code in ("NO_API_KEY", "TOKEN_EXPIRED"):
        fail(
            error.code,
            error.message
            + ": set SIMUTRADOR_API_KEY (or pass --api-key), or run `simutrador auth login`.",
        )
    details = {} if error.code == "CONNECTION_LOST" else error.details
    fail(error.code, error.message, details)


def print_json(value: Any) -> None:
    """As the protocol encodes it (decimals as strings, instants in UTC), indented."""
    typer.echo(msgspec.json.format(encoder.encode(value), indent=2).decode())


def auth_client(server_url: str, api_key: str | None, cache: TokenCache) -> AuthClient:
    """An AuthClient for the key given, seeded with the cached login when it fits."""
    login = cache.load()
    token = login.token if login and login.usable_with(server_url, api_key) else None
    if api_key is None and token is None:
        raise SimuTradorError(
            f"No API key for {server_url} and no login cached"
            if login is None or login.server_url == server_url
            else f"No API key, and the cached login is for {login.server_url}, not {server_url}",
            code="NO_API_KEY",
        )
    return AuthClient(server_url, api_key, token=token)


def with_auth(
    server_url: str, api_key: str | None, action: Callable[[AuthClient], Coroutine[Any, Any, T]]
) -> T:
    """Run `action` with an authenticated client (REST calls). SDK errors exit 1."""
    cache = TokenCache()
    try:
        auth = auth_client(server_url, api_key, cache)
    except SimuTradorError as exc:
        fail_with(exc)
    seeded = auth.token
    try:
        return asyncio.run(action(auth))
    except SimuTradorError as exc:
        fail_with(exc)
    finally:
        _refresh_login(cache, auth, seeded)


def with_sessions(
    server_url: str,
    api_key: str | None,
    timeout: float,
    action: Callable[[SessionClient], Awaitable[T]],
) -> T:
    """Connect, run `action` on the client, disconnect. Any SDK error exits 1, tracebackless.

    A renewed token is written back to the cached login it replaced."""
    cache = TokenCache()
    try:
        auth = auth_client(server_url, api_key, cache)
    except SimuTradorError as exc:
        fail_with(exc)
    seeded = auth.token
    try:
        return asyncio.run(_run(auth, timeout, action))
    except SimuTradorError as exc:
        fail_with(exc)
    finally:
        _refresh_login(cache, auth, seeded)


def _refresh_login(cache: TokenCache, auth: AuthClient, seeded: Token | None) -> None:
    renewed = auth.token
    if seeded is None or renewed is None or renewed == seeded:
        return
    login = cache.load()
    if login is not None and login.token == seeded:
        # Best effort: the command itself succeeded; an unwritable cache only costs a renewal.
        with contextlib.suppress(OSError):
            cache.save(CachedLogin(login.server_url, login.key_fingerprint, renewed))


async def _run(
    auth: AuthClient, reply_timeout: float, action: Callable[[SessionClient], Awaitable[T]]
) -> T:
    # A one-shot command retries a refused connection briefly, then reports it.
    async with SessionClient(
        auth,
        timeout=reply_timeout,
        connect_timeout=min(reply_timeout, 10.0),
        max_connect_attempts=3,
    ) as client:
        return await action(client)
