"""What the commands share: connection options, running one SDK call within the command's
time limit, turning errors into `CODE: message` (or JSON with `--json`) and an exit code
(1 at run time, 2 for usage and configuration), and output helpers."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, NoReturn, TypeVar

import msgspec
import typer
from rich.console import Console
from rich.markup import escape
from typer._click import Context as ClickContext  # typer vendors click (pinned: <0.27)
from typer._click.exceptions import UsageError
from typer.core import TyperGroup

from entrypoints.cli.token_cache import CachedLogin, TokenCache
from entrypoints.protocol.messages import encoder
from entrypoints.sdk import (
    DEFAULT_SERVER_URL,
    AuthClient,
    RequestTimeoutError,
    ServerAddress,
    ServerUnreachableError,
    SessionClient,
    SimuTradorError,
    Token,
)
from entrypoints.settings import SettingsError

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
        "--timeout",
        envvar="SIMUTRADOR_TIMEOUT",
        min=0.1,
        help="Seconds the whole command may take (connecting included).",
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")
]

DEFAULT_URL = DEFAULT_SERVER_URL
DEFAULT_TIMEOUT = 30.0


USAGE_EXIT = 2
"""Exit code of a usage or configuration error (a run-time failure is 1)."""

_json_errors: contextvars.ContextVar[bool] = contextvars.ContextVar("json_errors", default=False)


class SimuTradorGroup(TyperGroup):
    """The root command: a command run with `--json` reports every error as JSON on stderr,
    and a bad SIMUTRADOR_* setting is one line and exit 2, whatever the command."""

    def main(self, args: Sequence[str] | None = None, *pos: Any, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        token = _json_errors.set("--json" in argv)
        try:
            return super().main(argv, *pos, **extra)
        finally:
            _json_errors.reset(token)

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except SettingsError as exc:
            fail("CONFIGURATION_ERROR", str(exc), exit_code=USAGE_EXIT)
        except UsageError as exc:
            if not _json_errors.get():
                raise
            _print_json_error("USAGE_ERROR", exc.format_message(), {})
            raise typer.Exit(USAGE_EXIT) from None


HINTS = {
    "DATA_UNAVAILABLE": "Import bars with `simutrador data import`, or download them with "
    "`simutrador data fetch`.",
}
"""What to do next, added to the message of an error with this code (not under --json)."""


def fail(
    code: str, message: str, details: Mapping[str, Any] | None = None, *, exit_code: int = 1
) -> NoReturn:
    """`CODE: message` on stderr (details indented below it), then exit 1 (or `exit_code`).
    With `--json`, `{"error_code", "message", "details"}` on stderr instead."""
    if _json_errors.get():
        _print_json_error(code, message, details or {})
        raise typer.Exit(exit_code)
    shown = dict(details or {})
    retry_ms = shown.pop("retry_after_ms", None)
    if isinstance(retry_ms, int | float) and not isinstance(retry_ms, bool):
        message = f"{message.rstrip('.')}; try again in {human_duration(retry_ms / 1000)}"
    if "fields" in shown:
        shown.pop("field", None)  # `fields` names every wrong one
    hint = HINTS.get(code)
    if hint and hint not in message:
        message = f"{message.rstrip('.')}. {hint}"
    err.print(f"[bold red]{escape(code)}[/bold red]: {escape(message)}", soft_wrap=True)
    for key, value in shown.items():
        text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        err.print(f"  [dim]{escape(key)}:[/dim] {escape(text)}", soft_wrap=True)
    raise typer.Exit(exit_code)


def _print_json_error(code: str, message: str, details: Mapping[str, Any]) -> None:
    document = {"error_code": code, "message": message, "details": dict(details)}
    sys.stderr.write(encoder.encode(document).decode() + "\n")
    sys.stderr.flush()


def human_duration(seconds: float) -> str:
    """`45 s`, `56 min`, `2 h 5 min`: how long to wait, for a person."""
    if seconds < 60:
        return f"{max(1, math.ceil(seconds))} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


SERVER_URL_SETTING = "SIMUTRADOR_SERVER_URL (--server-url)"


def fail_with(error: SimuTradorError, server_option: str = SERVER_URL_SETTING) -> NoReturn:
    """Exit with the error; advice about the server's address names `server_option`, the
    way the command at hand takes it."""
    if isinstance(error, ServerUnreachableError) and error.code == "SERVER_UNREACHABLE":
        advice = {
            "connect": "Is it running? Start one with `simutrador serve`, or point "
            f"{server_option} at it.",
            "timeout": "Something accepted the connection but did not answer: is the server "
            f"overloaded, or is {server_option} another service?",
            "http_status": "The server failed; try again shortly.",
        }.get(error.reason, "")
        # `reason` (and `status`) are for scripts; the message already says it to a person.
        fail(error.code, f"{error.message.rstrip('.')}. {advice}".strip(), _for_scripts(error))
    if error.code == "UNEXPECTED_RESPONSE":
        fail(
            error.code,
            error.message + f" Check {server_option}.",
            _for_scripts(error),
        )
    if error.code in ("NO_API_KEY", "TOKEN_EXPIRED"):
        fail(
            error.code,
            error.message
            + ": set SIMUTRADOR_API_KEY (or pass --api-key), or run `simutrador auth login`.",
        )
    details = {} if error.code == "CONNECTION_LOST" else error.details
    fail(error.code, error.message, details)


def _for_scripts(error: SimuTradorError) -> Mapping[str, Any]:
    return error.details if _json_errors.get() else {}


def confirm_or_keep(question: str, kept: str) -> bool:
    """Ask `question` on stderr; a "no" prints `kept` and is a normal end (exit 0)."""
    if typer.confirm(question, default=False, err=True):
        return True
    out.print(kept)
    return False


def print_json(value: Any) -> None:
    """As the protocol encodes it (decimals as strings, instants in UTC), indented."""
    typer.echo(msgspec.json.format(encoder.encode(value), indent=2).decode())


def auth_client(
    server_url: str, api_key: str | None, cache: TokenCache, timeout: float = 10.0
) -> AuthClient:
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
    return AuthClient(server_url, api_key, token=token, timeout=timeout, use_cached_login=False)


def with_auth(
    server_url: str,
    api_key: str | None,
    action: Callable[[AuthClient], Coroutine[Any, Any, T]],
    timeout: float = DEFAULT_TIMEOUT,
) -> T:
    """Run `action` with an authenticated client (REST calls), all of it within `timeout`
    seconds. SDK errors exit 1."""
    cache = TokenCache()
    try:
        auth = auth_client(server_url, api_key, cache, timeout)
    except SimuTradorError as exc:
        fail_with(exc)
    seeded = auth.token
    try:
        return asyncio.run(_within(timeout, server_url, lambda: action(auth), lambda: False))
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
    """Connect, run `action` on the client, disconnect, all within `timeout` seconds. Any SDK
    error exits 1, tracebackless. A renewed token is written back to the cached login it
    replaced."""
    cache = TokenCache()
    try:
        auth = auth_client(server_url, api_key, cache, timeout)
    except SimuTradorError as exc:
        fail_with(exc)
    seeded = auth.token
    # A one-shot command retries a refused connection briefly, then reports it.
    client = SessionClient(auth, timeout=timeout, connect_timeout=timeout, max_connect_attempts=3)

    async def run() -> T:
        async with client:
            return await action(client)

    try:
        return asyncio.run(_within(timeout, server_url, run, lambda: client.connected))
    except SimuTradorError as exc:
        fail_with(exc)
    finally:
        _refresh_login(cache, auth, seeded)


async def _within(
    seconds: float,
    server_url: str,
    action: Callable[[], Awaitable[T]],
    connected: Callable[[], bool],
) -> T:
    """`action()`, cut at `seconds`: the command's whole time limit, retries included."""
    try:
        async with asyncio.timeout(seconds):
            return await action()
    except SimuTradorError:
        raise
    except TimeoutError:
        if connected():
            raise RequestTimeoutError(
                f"No reply from the server within {seconds:g} s", details={"timeout": seconds}
            ) from None
        raise ServerUnreachableError(
            f"The SimuTrador server at {server_url} did not answer within {seconds:g} s",
            details={"reason": "timeout"},
        ) from None


def _refresh_login(cache: TokenCache, auth: AuthClient, seeded: Token | None) -> None:
    renewed = auth.token
    if seeded is None or renewed is None or renewed == seeded:
        return
    login = cache.load()
    if login is not None and login.token == seeded:
        # Best effort: the command itself succeeded; an unwritable cache only costs a renewal.
        with contextlib.suppress(OSError):
            cache.save(CachedLogin(login.server_url, login.key_fingerprint, renewed))


def parse_amount(value: str) -> Decimal:
    """A number option (`--capital 100_000`): exact, finite, or a usage error."""
    try:
        amount = Decimal(value.replace("_", "").strip())
    except InvalidOperation:
        raise typer.BadParameter(f"{value!r} is not a number") from None
    if not amount.is_finite():
        raise typer.BadParameter(f"{value!r} is not a finite number")
    return amount


def key_values(pairs: list[str], option: str) -> dict[str, str]:
    """`KEY=VALUE` options (repeatable) as a dict, or a usage error naming the option."""
    found: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint=option)
        found[key.strip()] = value
    return found
