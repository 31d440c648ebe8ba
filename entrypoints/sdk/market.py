"""Market data over REST: the instruments a server offers, with the bars it holds."""

from __future__ import annotations

import httpx
import msgspec

from entrypoints.protocol.messages import ErrorResponse, InstrumentData, SymbolsResponse
from entrypoints.sdk.auth import AuthClient, http_status_error
from entrypoints.sdk.errors import (
    AuthenticationError,
    ServerUnreachableError,
    SimuTradorError,
    UnexpectedResponseError,
)

SYMBOLS_PATH = "/symbols"
_symbols_decoder = msgspec.json.Decoder(SymbolsResponse)
_error_decoder = msgspec.json.Decoder(ErrorResponse)

__all__ = ["InstrumentData", "list_symbols"]


async def list_symbols(
    auth: AuthClient,
    asset_class: str | None = None,
    *,
    timeout: float = 10.0,  # noqa: ASYNC109
) -> list[InstrumentData]:
    """`GET /symbols`: every instrument (of one asset class, when given) and its coverage."""
    url = auth.server_url + SYMBOLS_PATH
    token = await auth.access_token()
    params = {"asset_class": asset_class} if asset_class else None
    try:
        async with httpx.AsyncClient(timeout=timeout) as http:
            response = await http.get(
                url, params=params, headers={"Authorization": f"Bearer {token}"}
            )
    except httpx.TimeoutException:
        raise ServerUnreachableError(
            f"The SimuTrador server at {auth.server_url} did not answer within {timeout:g} s",
            details={"reason": "timeout"},
        ) from None
    except httpx.TransportError as exc:
        raise ServerUnreachableError(
            f"Cannot reach the SimuTrador server at {auth.server_url}: {exc}",
            details={"reason": "connect"},
        ) from None
    if response.status_code == 200:
        try:
            return _symbols_decoder.decode(response.content).symbols
        except msgspec.DecodeError:
            raise UnexpectedResponseError(
                f"Unreadable reply from {url}; is this a SimuTrador server?",
                details={"status": 200},
            ) from None
    try:
        refusal = _error_decoder.decode(response.content)
    except msgspec.DecodeError:
        raise http_status_error(response.status_code, url) from None
    if response.status_code == 401:
        auth.invalidate()
        raise AuthenticationError(refusal.message, code=refusal.error_code)
    raise SimuTradorError(refusal.message, code=refusal.error_code)
