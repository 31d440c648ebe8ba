"""`AuthClient`: trades an API key for a bearer token (POST /auth/token), caches the token
and renews it shortly before it expires."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import httpx
import msgspec

from entrypoints.protocol.messages import ErrorResponse, TokenResponse
from entrypoints.sdk.errors import (
    AuthenticationError,
    ServerUnreachableError,
    UnexpectedResponseError,
)
from entrypoints.sdk.login import load_login
from entrypoints.sdk.tokens import Token

__all__ = [
    "DEFAULT_SERVER_URL",
    "AuthClient",
    "ServerAddress",
    "Token",
    "jwt_expiry",
]

TOKEN_PATH = "/auth/token"
WEBSOCKET_PATH = "/ws/simulate"
DEFAULT_SERVER_URL = "http://127.0.0.1:8000"
"""The server URL used when neither an argument nor SIMUTRADOR_SERVER_URL gives one."""
DEFAULT_RENEW_MARGIN_SECONDS = 60.0
SERVER_URL_ENV = "SIMUTRADOR_SERVER_URL"
API_KEY_ENV = "SIMUTRADOR_API_KEY"

_token_decoder = msgspec.json.Decoder(TokenResponse)
_error_decoder = msgspec.json.Decoder(ErrorResponse)


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """The one base URL a user gives, and the two endpoints derived from it."""

    http_url: str
    ws_url: str

    @classmethod
    def parse(cls, server_url: str) -> ServerAddress:
        """`http(s)://host:port[/prefix]`; `ws(s)://…` and a bare `host:port` are accepted too."""
        text = server_url.strip()
        if "://" not in text:
            text = "http://" + text
        parts = urlsplit(text)
        scheme = {"http": "http", "https": "https", "ws": "http", "wss": "https"}.get(
            parts.scheme.lower()
        )
        if scheme is None or not parts.hostname:
            raise ValueError(
                f"Server URL {server_url!r} must look like http://host:port or https://host"
            )
        path = parts.path.rstrip("/")
        path = path.removesuffix(WEBSOCKET_PATH)
        http_url = urlunsplit((scheme, parts.netloc, path, "", ""))
        ws_scheme = "wss" if scheme == "https" else "ws"
        ws_url = urlunsplit((ws_scheme, parts.netloc, path + WEBSOCKET_PATH, "", ""))
        return cls(http_url, ws_url)


def jwt_expiry(access_token: str) -> datetime | None:
    """The `exp` claim of a JWT, read without verifying the signature (only the server can
    verify it; the client only needs to know when to renew). None when unreadable."""
    try:
        payload = access_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = claims["exp"]
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            return None
        return datetime.fromtimestamp(exp, UTC)
    except (IndexError, KeyError, TypeError, ValueError, binascii.Error, OverflowError):
        return None


class AuthClient:
    """Gets a token for an API key, keeps it, and fetches a new one `renew_margin` seconds
    before it expires (or when told the server refused it, via `invalidate`).

    `server_url` and `api_key` default to the SIMUTRADOR_SERVER_URL (else
    http://127.0.0.1:8000) and SIMUTRADOR_API_KEY environment variables. Concurrent
    `get_token` calls share one request. `token=` seeds the cache; without it, the login
    `simutrador auth login` cached for this server (and this key, when one is given) is
    used, unless `use_cached_login=False`. Without an API key, a seeded token is used until
    it expires."""

    def __init__(
        self,
        server_url: str | None = None,
        api_key: str | None = None,
        *,
        token: Token | None = None,
        renew_margin: float = DEFAULT_RENEW_MARGIN_SECONDS,
        timeout: float = 10.0,
        http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        use_cached_login: bool = True,
    ) -> None:
        self.address = ServerAddress.parse(
            server_url or os.environ.get(SERVER_URL_ENV) or DEFAULT_SERVER_URL
        )
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self._api_key = key.strip() if key and key.strip() else None
        if token is None and use_cached_login:
            login = load_login()
            if login is not None and login.usable_with(self.address.http_url, self._api_key):
                token = login.token
        self._token = token
        self._renew_margin = max(0.0, renew_margin)
        self._timeout = timeout
        self._http = http_client
        self._clock = clock
        self._lock = asyncio.Lock()
        self.tokens_fetched = 0
        """How many tokens this client obtained from the server (for monitoring and tests)."""

    @property
    def server_url(self) -> str:
        """The server's base URL, `http(s)://host:port[/prefix]`."""
        return self.address.http_url

    @property
    def ws_url(self) -> str:
        """The WebSocket URL derived from it, `ws(s)://host:port[/prefix]/ws/simulate`."""
        return self.address.ws_url

    @property
    def token(self) -> Token | None:
        """The cached token, whether or not it is still fresh."""
        return self._token

    @property
    def has_api_key(self) -> bool:
        """True when this client holds an API key, so it can fetch new tokens by itself."""
        return self._api_key is not None

    def needs_renewal(self) -> bool:
        """True when there is no token or it is within the renewal margin of its expiry.

        The margin is `renew_margin`, but at most half the token's lifetime, so a short-lived
        token is renewed half-way through rather than on every call."""
        token = self._token
        if token is None:
            return True
        lifetime = (token.expires_at - token.issued_at).total_seconds()
        margin = min(self._renew_margin, max(lifetime, 0.0) / 2)
        return token.seconds_left(self._clock()) <= margin

    def invalidate(self) -> None:
        """Forget the cached token (e.g. the server closed the socket with 4001)."""
        self._token = None

    async def get_token(self) -> Token:
        """A token good for at least `renew_margin` more seconds when a key allows renewing."""
        if not self.needs_renewal() and self._token is not None:
            return self._token
        async with self._lock:
            if not self.needs_renewal() and self._token is not None:
                return self._token
            return await self._fetch()

    async def access_token(self) -> str:
        """The bearer string of `get_token()`'s token, as sent to the server."""
        return (await self.get_token()).access_token

    async def login(self) -> Token:
        """Fetch a new token now, proving the API key works."""
        async with self._lock:
            return await self._fetch()

    async def _fetch(self) -> Token:
        token = self._token
        if self._api_key is None:
            if token is not None and token.seconds_left(self._clock()) > 0:
                return token  # cannot renew without a key: use it while it lasts
            raise AuthenticationError(
                "The token has expired and there is no API key to get a new one"
                if token is not None
                else f"No API key: pass api_key or set {API_KEY_ENV}",
                code="TOKEN_EXPIRED" if token is not None else "NO_API_KEY",
            )
        url = self.address.http_url + TOKEN_PATH
        requested_at = self._clock()
        try:
            if self._http is not None:
                response = await self._post(self._http, url)
            else:
                async with httpx.AsyncClient(timeout=self._timeout) as http:
                    response = await self._post(http, url)
        except httpx.TimeoutException:
            raise ServerUnreachableError(
                f"The SimuTrador server at {self.address.http_url} did not answer within "
                f"{self._timeout:g} s",
                details={"reason": "timeout"},
            ) from None
        except httpx.TransportError as exc:
            raise ServerUnreachableError(
                f"Cannot reach the SimuTrador server at {self.address.http_url}: {_describe(exc)}",
                details={"reason": "connect"},
            ) from None
        self._token = self._read(response, url, requested_at)
        self.tokens_fetched += 1
        return self._token

    async def _post(self, http: httpx.AsyncClient, url: str) -> httpx.Response:
        assert self._api_key is not None
        return await http.post(url, headers={"X-API-Key": self._api_key}, timeout=self._timeout)

    def _read(self, response: httpx.Response, url: str, requested_at: float) -> Token:
        if response.status_code in (401, 403):
            try:
                refusal = _error_decoder.decode(response.content)
            except msgspec.DecodeError:
                raise AuthenticationError(
                    f"The server refused the API key (HTTP {response.status_code})",
                    code="INVALID_API_KEY",
                ) from None
            raise AuthenticationError(refusal.message, code=refusal.error_code)
        if response.status_code != 200:
            raise http_status_error(response.status_code, url)
        try:
            grant = _token_decoder.decode(response.content)
        except msgspec.DecodeError:
            raise UnexpectedResponseError(
                f"Unreadable token response from {url}; is this a SimuTrador server?",
                details={"status": response.status_code},
            ) from None
        # Local clock from when the request left: never later than the server's expiry.
        by_lifetime = datetime.fromtimestamp(requested_at + grant.expires_in, UTC)
        by_claim = jwt_expiry(grant.access_token)
        expires_at = min(by_lifetime, by_claim) if by_claim is not None else by_lifetime
        return Token(
            access_token=grant.access_token,
            issued_at=datetime.fromtimestamp(requested_at, UTC),
            expires_at=expires_at,
            user_id=grant.user_id,
            plan=grant.plan,
        )


def http_status_error(status: int, url: str) -> ServerUnreachableError:
    """A reply no SimuTrador server gives. A 5xx may pass (a proxy, a restart: retried);
    anything else is a definite wrong answer (not retried)."""
    if status >= 500:
        return ServerUnreachableError(
            f"HTTP {status} from {url}: the server failed to answer",
            details={"reason": "http_status", "status": status},
        )
    return UnexpectedResponseError(
        f"HTTP {status} from {url}; is this a SimuTrador server?",
        details={"status": status},
    )


def _describe(exc: BaseException) -> str:
    """The most specific reason in the exception chain: "connection refused", not httpx's
    "All connection attempts failed"."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            text = os.strerror(seen.errno) if seen.errno > 0 else seen.strerror
            if text:
                return text.lower()
        seen = seen.__cause__ or seen.__context__
    return str(exc) or type(exc).__name__
