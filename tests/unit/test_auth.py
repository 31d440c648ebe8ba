"""AuthService over the real JWT codec and file key store (in tmp_path): keys kept hashed in a
private, atomically written file shared by the server and the CLI; tokens that carry exactly
the claims the protocol names and nothing forged gets through."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from adapters.auth.file_store import FileApiKeyStore, StoreCorrupted, load_or_create_secret
from adapters.auth.jwt_codec import ISSUER, JwtTokenCodec
from adapters.files import write_private_file
from adapters.ids import SecureIdGenerator
from application.auth import AuthService, hash_api_key
from domain.errors import AuthenticationFailed, InvalidToken, ValidationFailed
from domain.limits import PLAN_DEFAULTS, Plan
from tests.fakes import FakeClock, FakeIds, limits_for

SECRET = "unit-test-secret-0123456789abcdefghijkl"
TTL = 900


def read_text(path: Path) -> str:
    return path.read_text()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def keys_path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "api_keys.json"


@pytest.fixture
def now_clock() -> FakeClock:
    """A fake clock at the real time, since pyjwt checks `exp` against the real clock."""
    return FakeClock(datetime.fromtimestamp(int(time.time()), UTC))


def make_auth(
    store: FileApiKeyStore, clock: FakeClock, secret: str = SECRET, **kwargs: Any
) -> AuthService:
    return AuthService(
        keys=store,
        tokens=JwtTokenCodec(secret),
        clock=clock,
        ids=kwargs.pop("ids", SecureIdGenerator()),
        plan_limits=kwargs.pop("plan_limits", PLAN_DEFAULTS),
        token_ttl_seconds=kwargs.pop("ttl", TTL),
    )


@pytest.fixture
def auth(keys_path: Path, now_clock: FakeClock) -> AuthService:
    return make_auth(FileApiKeyStore(keys_path), now_clock)


# ---------------------------------------------------------------- API keys on disk


async def test_keys_are_stored_hashed_never_in_clear(auth: AuthService, keys_path: Path) -> None:
    created = await auth.create_api_key("alice", Plan.FREE)

    assert created.secret.startswith("sk_")
    assert len(created.secret) >= 40
    text = read_text(keys_path)
    assert created.secret not in text
    assert created.secret.removeprefix("sk_") not in text
    assert hash_api_key(created.secret) in text
    assert created.record.key_hash == hash_api_key(created.secret)
    assert created.record.user_id == "alice"
    assert created.record.plan is Plan.FREE


async def test_key_file_and_directory_are_private(auth: AuthService, keys_path: Path) -> None:
    await auth.create_api_key("alice", Plan.FREE)
    assert mode(keys_path) == 0o600
    assert mode(keys_path.parent) == 0o700
    await auth.create_api_key("bob", Plan.FREE)  # a rewrite keeps the permissions
    assert mode(keys_path) == 0o600


async def test_writes_leave_no_temporary_files(auth: AuthService, keys_path: Path) -> None:
    created = [await auth.create_api_key(f"user{i}", Plan.PROFESSIONAL) for i in range(5)]
    await auth.revoke(created[0].record.key_id)
    assert [p.name for p in keys_path.parent.iterdir()] == ["api_keys.json"]


def test_failed_write_keeps_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.json"
    write_private_file(path, b"old contents")

    def crash(src: object, dst: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        write_private_file(path, b"new contents")

    assert path.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["store.json"]


async def test_a_second_store_sees_keys_added_by_the_first(
    auth: AuthService, keys_path: Path
) -> None:
    created = await auth.create_api_key("alice", Plan.ENTERPRISE)
    other_process = FileApiKeyStore(keys_path)
    record = await other_process.get(created.record.key_id)
    assert record == created.record


async def test_revocation_by_another_store_is_seen(keys_path: Path, now_clock: FakeClock) -> None:
    """The CLI revokes in its own process, with its own store over the same file; the
    server's store must notice on its next lookup."""
    server = make_auth(FileApiKeyStore(keys_path), now_clock)
    created = await server.create_api_key("alice", Plan.PROFESSIONAL)
    token = (await server.issue_token(created.secret)).access_token
    assert (await server.authenticate(token)).user_id == "alice"

    cli = make_auth(FileApiKeyStore(keys_path), now_clock)
    revoked = await cli.revoke(created.record.key_id)
    assert revoked is not None
    assert revoked.is_revoked

    with pytest.raises(InvalidToken, match="revoked"):
        await server.authenticate(token)
    with pytest.raises(AuthenticationFailed):
        await server.issue_token(created.secret)


async def test_revocation_is_idempotent_and_unknown_keys_are_none(auth: AuthService) -> None:
    created = await auth.create_api_key("alice", Plan.FREE)
    first = await auth.revoke(created.record.key_id)
    second = await auth.revoke(created.record.key_id)
    assert first is not None
    assert second is not None
    assert first.revoked_at == second.revoked_at
    assert await auth.revoke("key_missing") is None


async def test_keys_survive_a_restart_in_creation_order(
    keys_path: Path, now_clock: FakeClock
) -> None:
    auth = make_auth(FileApiKeyStore(keys_path), now_clock, ids=FakeIds())
    for user in ("a", "b", "c"):
        await auth.create_api_key(user, Plan.FREE)
        now_clock.advance(1)
    restarted = make_auth(FileApiKeyStore(keys_path), now_clock)
    assert [r.user_id for r in await restarted.list_keys()] == ["a", "b", "c"]


def test_a_corrupted_store_is_refused_not_replaced(keys_path: Path) -> None:
    keys_path.parent.mkdir(parents=True)
    keys_path.write_text("{ not json")
    with pytest.raises(StoreCorrupted):
        FileApiKeyStore(keys_path)
    assert keys_path.read_text() == "{ not json"


@pytest.mark.parametrize("user_id", ["", "   ", "x" * 65, "tab\there", "new\nline"])
async def test_bad_user_ids_are_refused(auth: AuthService, user_id: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await auth.create_api_key(user_id, Plan.FREE)
    assert refused.value.field == "user_id"


# ---------------------------------------------------------------- the JWT secret


def test_secret_file_is_created_private_and_reused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    secret = load_or_create_secret(home)

    path = home / "jwt_secret"
    assert mode(path) == 0o600
    assert len(secret.encode()) >= 32
    assert path.read_text().strip() == secret
    assert load_or_create_secret(home) == secret
    assert load_or_create_secret(tmp_path / "elsewhere") != secret


def test_an_existing_secret_is_kept(tmp_path: Path) -> None:
    (tmp_path / "jwt_secret").write_text("operator-chosen-secret-of-enough-length\n")
    assert load_or_create_secret(tmp_path) == "operator-chosen-secret-of-enough-length"


def test_an_empty_secret_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "jwt_secret").write_text("\n")
    secret = load_or_create_secret(tmp_path)
    assert len(secret) >= 32
    assert mode(tmp_path / "jwt_secret") == 0o600


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        JwtTokenCodec("too-short")


# ---------------------------------------------------------------- tokens


async def test_token_carries_the_protocol_claims(auth: AuthService, now_clock: FakeClock) -> None:
    created = await auth.create_api_key("alice", Plan.PROFESSIONAL)

    grant = await auth.issue_token(created.secret)

    assert (grant.user_id, grant.plan, grant.expires_in, grant.token_type) == (
        "alice",
        Plan.PROFESSIONAL,
        TTL,
        "Bearer",
    )
    header = jwt.get_unverified_header(grant.access_token)
    assert header["alg"] == "HS256"
    claims = jwt.decode(grant.access_token, SECRET, algorithms=["HS256"], issuer=ISSUER)
    assert set(claims) == {"sub", "plan", "iat", "exp", "jti", "kid", "iss"}
    assert claims["sub"] == "alice"
    assert claims["plan"] == "professional"
    assert claims["iat"] == int(now_clock.now().timestamp())
    assert claims["exp"] == claims["iat"] + TTL
    assert claims["kid"] == created.record.key_id
    assert claims["iss"] == ISSUER


async def test_every_token_has_its_own_jti(auth: AuthService) -> None:
    created = await auth.create_api_key("alice", Plan.FREE)
    tokens = [(await auth.issue_token(created.secret)).access_token for _ in range(3)]
    jtis = {jwt.decode(t, SECRET, algorithms=["HS256"], issuer=ISSUER)["jti"] for t in tokens}
    assert len(jtis) == 3


async def test_authenticate_gives_the_principal_with_the_plans_limits(
    keys_path: Path, now_clock: FakeClock
) -> None:
    limits = dict(PLAN_DEFAULTS)
    limits[Plan.FREE] = limits_for(Plan.FREE, max_connections=3)
    auth = make_auth(FileApiKeyStore(keys_path), now_clock, plan_limits=limits)
    created = await auth.create_api_key("alice", Plan.FREE)

    principal = await auth.authenticate((await auth.issue_token(created.secret)).access_token)

    assert principal.user_id == "alice"
    assert principal.plan is Plan.FREE
    assert principal.limits == limits[Plan.FREE]
    assert principal.key_id == created.record.key_id


@pytest.mark.parametrize(
    "api_key",
    [None, "", "nope", "pk_" + "a" * 43, "sk_" + "a" * 43, " sk_x"],
)
async def test_issue_token_refuses_bad_keys(auth: AuthService, api_key: str | None) -> None:
    await auth.create_api_key("alice", Plan.FREE)
    with pytest.raises(AuthenticationFailed) as refused:
        await auth.issue_token(api_key)
    assert refused.value.code == "INVALID_API_KEY"
    assert type(refused.value) is AuthenticationFailed


async def test_a_key_hash_is_not_a_key(auth: AuthService) -> None:
    """Someone who read the key file cannot log in with what they found there."""
    created = await auth.create_api_key("alice", Plan.FREE)
    with pytest.raises(AuthenticationFailed):
        await auth.issue_token("sk_" + created.record.key_hash)
    with pytest.raises(AuthenticationFailed):
        await auth.issue_token(created.record.key_hash)


def b64url(document: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()


class TestRefusedTokens:
    """Everything except a well-formed, correctly signed, unexpired token of a live key."""

    @pytest.fixture
    async def claims(self, auth: AuthService) -> dict[str, Any]:
        created = await auth.create_api_key("alice", Plan.PROFESSIONAL)
        token = (await auth.issue_token(created.secret)).access_token
        decoded: dict[str, Any] = jwt.decode(token, SECRET, algorithms=["HS256"], issuer=ISSUER)
        return decoded

    async def test_control_the_claims_as_issued_are_accepted(
        self, auth: AuthService, claims: dict[str, Any]
    ) -> None:
        principal = await auth.authenticate(jwt.encode(claims, SECRET, algorithm="HS256"))
        assert principal.user_id == "alice"

    @pytest.mark.parametrize("token", [None, "", "garbage", "a.b.c", "..."])
    async def test_missing_or_malformed(self, auth: AuthService, token: str | None) -> None:
        with pytest.raises(InvalidToken) as refused:
            await auth.authenticate(token)
        assert refused.value.code == "INVALID_TOKEN"

    async def test_forged_signature(self, auth: AuthService, claims: dict[str, Any]) -> None:
        forged = jwt.encode(claims, "another-secret-0123456789abcdefghijkl", algorithm="HS256")
        with pytest.raises(InvalidToken, match="signature"):
            await auth.authenticate(forged)

    async def test_alg_none(self, auth: AuthService, claims: dict[str, Any]) -> None:
        unsigned = f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(claims)}."
        with pytest.raises(InvalidToken):
            await auth.authenticate(unsigned)

    @pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
    async def test_unpinned_algorithm(self, auth: AuthService, claims: dict[str, Any]) -> None:
        with pytest.raises(InvalidToken, match="algorithm"):
            await auth.authenticate(jwt.encode(claims, SECRET, algorithm="HS384"))

    async def test_expired(self, auth: AuthService, claims: dict[str, Any]) -> None:
        past = int(time.time()) - 10
        expired = jwt.encode({**claims, "exp": past}, SECRET, algorithm="HS256")
        with pytest.raises(InvalidToken, match="expired"):
            await auth.authenticate(expired)

    async def test_token_from_a_clock_an_hour_behind_is_expired(self, keys_path: Path) -> None:
        late = FakeClock(datetime.fromtimestamp(int(time.time()) - 2 * TTL, UTC))
        auth = make_auth(FileApiKeyStore(keys_path), late)
        created = await auth.create_api_key("alice", Plan.FREE)
        token = (await auth.issue_token(created.secret)).access_token
        with pytest.raises(InvalidToken, match="expired"):
            await auth.authenticate(token)

    @pytest.mark.parametrize("claim", ["sub", "plan", "iat", "exp", "jti", "kid", "iss"])
    async def test_missing_claim(
        self, auth: AuthService, claims: dict[str, Any], claim: str
    ) -> None:
        del claims[claim]
        with pytest.raises(InvalidToken, match=claim):
            await auth.authenticate(jwt.encode(claims, SECRET, algorithm="HS256"))

    @pytest.mark.parametrize(
        ("claim", "value"),
        [("plan", "platinum"), ("plan", None), ("iss", "elsewhere"), ("sub", 42), ("kid", 7)],
    )
    async def test_bad_claim_values(
        self, auth: AuthService, claims: dict[str, Any], claim: str, value: object
    ) -> None:
        token = jwt.encode({**claims, claim: value}, SECRET, algorithm="HS256")
        with pytest.raises(InvalidToken):
            await auth.authenticate(token)

    async def test_key_that_does_not_exist(self, auth: AuthService, claims: dict[str, Any]) -> None:
        token = jwt.encode({**claims, "kid": "key_ghost"}, SECRET, algorithm="HS256")
        with pytest.raises(InvalidToken):
            await auth.authenticate(token)

    async def test_subject_that_does_not_own_the_key(
        self, auth: AuthService, claims: dict[str, Any]
    ) -> None:
        token = jwt.encode({**claims, "sub": "mallory"}, SECRET, algorithm="HS256")
        with pytest.raises(InvalidToken):
            await auth.authenticate(token)

    async def test_revoked_key(self, auth: AuthService, claims: dict[str, Any]) -> None:
        await auth.revoke(claims["kid"])
        with pytest.raises(InvalidToken, match="revoked"):
            await auth.authenticate(jwt.encode(claims, SECRET, algorithm="HS256"))

    @pytest.mark.parametrize(
        ("claim", "value"),
        [("exp", "9999999999"), ("iat", "0"), ("exp", True), ("exp", None), ("iat", [1])],
    )
    async def test_times_that_are_not_json_numbers(
        self, auth: AuthService, claims: dict[str, Any], claim: str, value: object
    ) -> None:
        """pyjwt reads `exp`/`iat` with int(): a string far in the future would pass it."""
        token = jwt.encode({**claims, claim: value}, SECRET, algorithm="HS256")
        with pytest.raises(InvalidToken):
            await auth.authenticate(token)

    async def test_lifetime_beyond_the_servers_is_cut_to_it(
        self, auth: AuthService, claims: dict[str, Any], now_clock: FakeClock
    ) -> None:
        """A validly signed `exp` a year away still ends `token_ttl_seconds` after `iat`."""
        long_lived = {**claims, "exp": claims["iat"] + 365 * 86400}
        token = jwt.encode(long_lived, SECRET, algorithm="HS256")

        principal = await auth.authenticate(token)
        assert principal.expires_at == datetime.fromtimestamp(claims["iat"] + TTL, UTC)

        issued_long_ago = {**long_lived, "iat": claims["iat"] - TTL}
        with pytest.raises(InvalidToken, match="expired"):
            await auth.authenticate(jwt.encode(issued_long_ago, SECRET, algorithm="HS256"))

    async def test_fractional_times_are_numbers_too(
        self, auth: AuthService, claims: dict[str, Any]
    ) -> None:
        token = jwt.encode({**claims, "exp": claims["exp"] - 0.5}, SECRET, algorithm="HS256")
        principal = await auth.authenticate(token)
        assert principal.expires_at == datetime.fromtimestamp(claims["exp"] - 0.5, UTC)


class TestRecheck:
    """An open connection's principal is held to the rules of a new one: `recheck`."""

    async def test_a_live_token_passes(self, auth: AuthService) -> None:
        created = await auth.create_api_key("alice", Plan.FREE)
        principal = await auth.authenticate((await auth.issue_token(created.secret)).access_token)
        await auth.recheck(principal)

    async def test_expiry_is_seen_on_the_services_clock(
        self, auth: AuthService, now_clock: FakeClock
    ) -> None:
        created = await auth.create_api_key("alice", Plan.FREE)
        principal = await auth.authenticate((await auth.issue_token(created.secret)).access_token)
        assert principal.expires_at == now_clock.now() + timedelta(seconds=TTL)
        now_clock.advance(TTL - 1)
        await auth.recheck(principal)
        now_clock.advance(1)
        with pytest.raises(InvalidToken, match="expired"):
            await auth.recheck(principal)

    async def test_revocation_by_another_store_on_the_same_file(
        self, auth: AuthService, keys_path: Path, now_clock: FakeClock
    ) -> None:
        """The admin CLI is another process with its own store over the same file."""
        created = await auth.create_api_key("alice", Plan.FREE)
        principal = await auth.authenticate((await auth.issue_token(created.secret)).access_token)

        admin = make_auth(FileApiKeyStore(keys_path), now_clock)
        await admin.revoke(created.record.key_id)

        with pytest.raises(InvalidToken, match="revoked"):
            await auth.recheck(principal)
