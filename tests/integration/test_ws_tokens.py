"""Token attacks on the WebSocket: each ends with close code 4001 and a reason, before any
message is processed. Every crafted token differs from an accepted one by the attack only
(see `test_crafted_token_control_is_accepted`)."""

from __future__ import annotations

import base64
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from websockets.asyncio.client import connect

from adapters.auth.jwt_codec import ISSUER
from domain.limits import Plan
from entrypoints.server.embedded import EmbeddedServer
from tests.integration.conftest import TEST_JWT_SECRET, issue_token
from tests.integration.wsclient import (
    WsClient,
    expect_refused,
    frame,
    health,
    session_request,
    token_url,
    wait_for_health,
)

CLOSE_UNAUTHORIZED = 4001
OTHER_SECRET = "not-the-servers-secret-0123456789abcdef"
_users = itertools.count(1)


@dataclass(frozen=True)
class Key:
    user_id: str
    key_id: str
    secret: str


def new_key(server: EmbeddedServer, plan: Plan = Plan.PROFESSIONAL) -> Key:
    user_id = f"tok{next(_users)}"
    created = server.call(server.container.auth_service().create_api_key(user_id, plan))
    return Key(user_id, created.record.key_id, created.secret)


def claims_for(key: Key, **changes: Any) -> dict[str, Any]:
    """The claims the server itself would sign for `key`, with `changes` applied."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": key.user_id,
        "plan": "professional",
        "iat": now,
        "exp": now + 3600,
        "jti": f"jti-{key.key_id}",
        "kid": key.key_id,
        "iss": ISSUER,
    }
    claims.update(changes)
    return claims


def sign(claims: dict[str, Any], secret: str = TEST_JWT_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def b64url(document: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()


async def assert_refused(server: EmbeddedServer, url: str, reason_contains: str = "") -> None:
    """The server closes with 4001 and a reason, and the request sent straight after the
    handshake is never processed."""
    close = await expect_refused(
        url, send_first=json.dumps(frame("create_session", session_request(), "sneaky"))
    )
    assert close.code == CLOSE_UNAUTHORIZED
    assert close.reason
    assert reason_contains.lower() in close.reason.lower()
    assert (await health(server))["active_sessions"] == 0
    await wait_for_health(server, "active_connections", 0)


async def test_crafted_token_control_is_accepted(shared_server: EmbeddedServer) -> None:
    key = new_key(shared_server)
    token = sign(claims_for(key))
    async with await WsClient.connect(shared_server, token) as client:
        assert client.ready["data"]["user_id"] == key.user_id
        assert (await client.request("list_sessions"))["type"] == "session_list"


async def test_bearer_header_is_accepted_too(shared_server: EmbeddedServer) -> None:
    key = new_key(shared_server)
    headers = {"Authorization": f"Bearer {sign(claims_for(key))}"}
    async with connect(shared_server.ws_url, proxy=None, additional_headers=headers) as ws:
        ready = json.loads(await ws.recv())
    assert ready["type"] == "connection_ready"


async def test_missing_token(shared_server: EmbeddedServer) -> None:
    await assert_refused(shared_server, shared_server.ws_url, "missing")


async def test_empty_token(shared_server: EmbeddedServer) -> None:
    await assert_refused(shared_server, f"{shared_server.ws_url}?token=", "missing")


@pytest.mark.parametrize("garbage", ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9..", "sk_notatoken"])
async def test_garbage_token(shared_server: EmbeddedServer, garbage: str) -> None:
    await assert_refused(shared_server, token_url(shared_server, garbage))


async def test_bad_bearer_header(shared_server: EmbeddedServer) -> None:
    close = await expect_refused(
        shared_server.ws_url, headers={"Authorization": "Bearer not-a-token"}
    )
    assert close.code == CLOSE_UNAUTHORIZED


async def test_forged_signature(shared_server: EmbeddedServer) -> None:
    token = sign(claims_for(new_key(shared_server)), secret=OTHER_SECRET)
    await assert_refused(shared_server, token_url(shared_server, token), "signature")


async def test_tampered_payload(shared_server: EmbeddedServer) -> None:
    """A genuine token whose payload was edited (free → enterprise) after signing."""
    key = new_key(shared_server, Plan.FREE)
    header, _, signature = sign(claims_for(key, plan="free")).split(".")
    tampered = f"{header}.{b64url(claims_for(key, plan='enterprise'))}.{signature}"
    await assert_refused(shared_server, token_url(shared_server, tampered), "signature")


async def test_alg_none(shared_server: EmbeddedServer) -> None:
    claims = claims_for(new_key(shared_server))
    token = f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(claims)}."
    await assert_refused(shared_server, token_url(shared_server, token))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_other_algorithm_with_the_right_secret(shared_server: EmbeddedServer) -> None:
    """The algorithm is pinned by the server, never taken from the token's header."""
    token = sign(claims_for(new_key(shared_server)), algorithm="HS512")
    await assert_refused(shared_server, token_url(shared_server, token), "algorithm")


async def test_expired_token(shared_server: EmbeddedServer) -> None:
    past = int(time.time()) - 7200
    token = sign(claims_for(new_key(shared_server), iat=past, exp=past + 3600))
    await assert_refused(shared_server, token_url(shared_server, token), "expired")


@pytest.mark.parametrize(
    ("claim", "value"), [("exp", "9999999999"), ("iat", str(int(time.time()))), ("exp", True)]
)
async def test_times_that_are_not_json_numbers(
    shared_server: EmbeddedServer, claim: str, value: object
) -> None:
    token = sign(claims_for(new_key(shared_server), **{claim: value}))
    await assert_refused(shared_server, token_url(shared_server, token))


async def test_lifetime_is_capped_by_the_servers_token_ttl(shared_server: EmbeddedServer) -> None:
    """Signed two hours ago with a day to live: expired, as the server issues 1 h tokens."""
    issued = int(time.time()) - 7200
    token = sign(claims_for(new_key(shared_server), iat=issued, exp=issued + 86400))
    await assert_refused(shared_server, token_url(shared_server, token), "expired")


@pytest.mark.parametrize("claim", ["sub", "plan", "iat", "exp", "jti", "kid", "iss"])
async def test_missing_claim(shared_server: EmbeddedServer, claim: str) -> None:
    claims = claims_for(new_key(shared_server))
    del claims[claim]
    await assert_refused(shared_server, token_url(shared_server, sign(claims)), claim)


async def test_wrong_issuer(shared_server: EmbeddedServer) -> None:
    token = sign(claims_for(new_key(shared_server), iss="someone-else"))
    await assert_refused(shared_server, token_url(shared_server, token))


async def test_unknown_plan(shared_server: EmbeddedServer) -> None:
    token = sign(claims_for(new_key(shared_server), plan="platinum"))
    await assert_refused(shared_server, token_url(shared_server, token), "plan")


async def test_revoked_key(shared_server: EmbeddedServer) -> None:
    key = new_key(shared_server)
    # A token issued the normal way, over HTTP, while the key was valid.
    token = issue_token_for(shared_server, key)
    async with await WsClient.connect(shared_server, token):
        pass
    await wait_for_health(shared_server, "active_connections", 0)

    shared_server.call(shared_server.container.auth_service().revoke(key.key_id))

    await assert_refused(shared_server, token_url(shared_server, token), "revoked")


async def test_key_id_that_does_not_exist(shared_server: EmbeddedServer) -> None:
    token = sign(claims_for(new_key(shared_server), kid="key_000000000000"))
    await assert_refused(shared_server, token_url(shared_server, token))


async def test_subject_that_does_not_own_the_key(shared_server: EmbeddedServer) -> None:
    victim = new_key(shared_server)
    attacker = new_key(shared_server)
    token = sign(claims_for(attacker, sub=victim.user_id))
    await assert_refused(shared_server, token_url(shared_server, token))


async def test_token_for_a_real_user_works_after_attacks(shared_server: EmbeddedServer) -> None:
    """The refusals above leave the server healthy for legitimate clients."""
    token = issue_token(shared_server, "tok_after")
    async with await WsClient.connect(shared_server, token) as client:
        assert (await client.request("list_sessions"))["type"] == "session_list"


def issue_token_for(server: EmbeddedServer, key: Key) -> str:
    response = httpx.post(
        f"{server.http_url}/auth/token", headers={"X-API-Key": key.secret}, trust_env=False
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token
