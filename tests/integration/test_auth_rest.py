"""REST over real HTTP: API key → token exchange, /health load counts, the OpenAPI schema."""

from __future__ import annotations

import httpx
import jwt
import pytest

from domain.limits import Plan
from entrypoints.server.embedded import EmbeddedServer
from tests.integration.conftest import TEST_JWT_SECRET, ServerFactory, issue_token
from tests.integration.wsclient import WsClient, health, wait_for_health


def post_token(server: EmbeddedServer, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server.http_url}/auth/token", headers=headers, trust_env=False)


def test_api_key_is_exchanged_for_a_bearer_token(shared_server: EmbeddedServer) -> None:
    key = shared_server.create_api_key("rest_alice", Plan.FREE)

    response = post_token(shared_server, {"X-API-Key": key})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "user_id", "plan"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["user_id"] == "rest_alice"
    assert body["plan"] == "free"
    claims = jwt.decode(body["access_token"], TEST_JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "rest_alice"
    assert claims["plan"] == "free"
    assert claims["exp"] - claims["iat"] == 3600
    assert {"jti", "kid"} <= set(claims)


def test_token_lifetime_follows_the_settings(server_factory: ServerFactory) -> None:
    server = server_factory(token_ttl_seconds=120)
    response = post_token(server, {"X-API-Key": server.create_api_key("rest_ttl")})
    assert response.status_code == 200
    assert response.json()["expires_in"] == 120
    claims = jwt.decode(response.json()["access_token"], TEST_JWT_SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 120


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"X-API-Key": ""}, id="empty"),
        pytest.param({"X-API-Key": "not-an-api-key"}, id="malformed"),
        pytest.param({"X-API-Key": "sk_" + "A" * 43}, id="unknown-key"),
        pytest.param({"Authorization": "Bearer sk_whatever"}, id="wrong-header"),
    ],
)
def test_bad_or_missing_api_key_is_401(
    shared_server: EmbeddedServer, headers: dict[str, str]
) -> None:
    response = post_token(shared_server, headers)

    assert response.status_code == 401
    body = response.json()
    assert body["error_code"] == "INVALID_API_KEY"
    assert isinstance(body["message"], str)
    assert body["message"]
    assert "access_token" not in body


def test_revoked_api_key_is_401(shared_server: EmbeddedServer) -> None:
    auth = shared_server.container.auth_service()
    created = shared_server.call(auth.create_api_key("rest_revoked", Plan.PROFESSIONAL))
    assert post_token(shared_server, {"X-API-Key": created.secret}).status_code == 200

    shared_server.call(auth.revoke(created.record.key_id))

    response = post_token(shared_server, {"X-API-Key": created.secret})
    assert response.status_code == 401
    assert response.json()["error_code"] == "INVALID_API_KEY"


async def test_health_counts_follow_sessions_and_connections(server: EmbeddedServer) -> None:
    initial = await health(server)
    assert initial["status"] == "ok"
    assert isinstance(initial["version"], str)
    assert initial["version"]
    assert (initial["active_sessions"], initial["active_connections"]) == (0, 0)

    alice = await WsClient.connect(server, issue_token(server, "health_alice"))
    assert (await health(server))["active_connections"] == 1
    bob = await WsClient.connect(server, issue_token(server, "health_bob"))
    assert (await health(server))["active_connections"] == 2

    created = await alice.create_session()
    assert created["type"] == "session_created"
    await bob.create_session()
    await bob.create_session()
    assert (await health(server))["active_sessions"] == 3

    await bob.close()
    await wait_for_health(server, "active_connections", 1)
    # Sessions outlive the connection that created them.
    assert (await health(server))["active_sessions"] == 3

    deleted = await alice.request("delete_session", {"session_id": created["data"]["session_id"]})
    assert deleted["type"] == "session_deleted"
    assert (await health(server))["active_sessions"] == 2

    await alice.close()
    await wait_for_health(server, "active_connections", 0)


def test_openapi_schema_lists_the_rest_endpoints(shared_server: EmbeddedServer) -> None:
    response = httpx.get(f"{shared_server.http_url}/schema/openapi.json", trust_env=False)

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "post" in paths["/auth/token"]
    assert "get" in paths["/health"]
