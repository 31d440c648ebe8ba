"""API keys → short-lived bearer tokens → principals."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

from application.ports import ApiKeyRecord, ApiKeyStore, Clock, IdGenerator, TokenCodec
from application.principal import Principal
from domain.errors import AuthenticationFailed, InvalidToken, ValidationFailed
from domain.limits import Limits, Plan

API_KEY_PREFIX = "sk_"
MAX_USER_ID_LENGTH = 64


def hash_api_key(api_key: str) -> str:
    """Keys carry 256 random bits, so an unsalted SHA-256 is enough to make a leaked store
    useless, and it lets a key be found by its hash in O(1)."""
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenGrant:
    access_token: str
    expires_in: int
    user_id: str
    plan: Plan
    token_type: str = "Bearer"


@dataclass(frozen=True, slots=True)
class NewApiKey:
    record: ApiKeyRecord
    secret: str


@dataclass(frozen=True, slots=True)
class Revocation:
    """A revoked key, and whether it already was before this request."""

    record: ApiKeyRecord
    already_revoked: bool


class AuthService:
    def __init__(
        self,
        keys: ApiKeyStore,
        tokens: TokenCodec,
        clock: Clock,
        ids: IdGenerator,
        plan_limits: Mapping[Plan, Limits],
        token_ttl_seconds: int,
    ) -> None:
        self._keys = keys
        self._tokens = tokens
        self._clock = clock
        self._ids = ids
        self._plan_limits = plan_limits
        self._ttl = token_ttl_seconds

    async def create_api_key(self, user_id: str, plan: Plan) -> NewApiKey:
        user_id = user_id.strip()
        if not user_id or len(user_id) > MAX_USER_ID_LENGTH or not user_id.isprintable():
            raise ValidationFailed(
                "user_id", f"user_id must be 1..{MAX_USER_ID_LENGTH} printable characters"
            )
        key_id, secret = self._ids.api_key()
        record = ApiKeyRecord(key_id, hash_api_key(secret), user_id, plan, self._clock.now())
        await self._keys.add(record)
        return NewApiKey(record, secret)

    async def list_keys(self) -> Sequence[ApiKeyRecord]:
        return await self._keys.list()

    async def revoke(self, key_id: str) -> ApiKeyRecord | None:
        revocation = await self.revoke_key(key_id)
        return revocation.record if revocation is not None else None

    async def revoke_key(self, key_id: str) -> Revocation | None:
        """Revoke `key_id` (idempotent); None when no such key exists."""
        now = self._clock.now()
        record = await self._keys.revoke(key_id, now)
        if record is None:
            return None
        return Revocation(record, already_revoked=record.revoked_at != now)

    async def issue_token(self, api_key: str | None) -> TokenGrant:
        if not api_key or not api_key.startswith(API_KEY_PREFIX):
            raise AuthenticationFailed("Missing or malformed API key (expected X-API-Key: sk_…)")
        record = await self._keys.find_by_hash(hash_api_key(api_key))
        if record is None or record.is_revoked:
            raise AuthenticationFailed("Invalid or revoked API key")
        now = int(self._clock.now().timestamp())
        token = self._tokens.encode(
            {
                "sub": record.user_id,
                "plan": record.plan.value,
                "iat": now,
                "exp": now + self._ttl,
                "jti": self._ids.token_id(),
                "kid": record.key_id,
            }
        )
        return TokenGrant(token, self._ttl, record.user_id, record.plan)

    async def authenticate(self, token: str | None) -> Principal:
        """The principal a token speaks for; `InvalidToken` for anything else."""
        if not token:
            raise InvalidToken("Missing token")
        claims = self._tokens.decode(token)
        expires_at = self._expiry(claims)
        try:
            plan = Plan(claims["plan"])
        except (ValueError, KeyError):
            raise InvalidToken("Token names an unknown plan") from None
        record = await self._keys.get(str(claims.get("kid", "")))
        if record is None or record.is_revoked or record.user_id != claims.get("sub"):
            raise InvalidToken("Token's API key has been revoked")
        return Principal(record.user_id, plan, self._plan_limits[plan], record.key_id, expires_at)

    async def recheck(self, principal: Principal) -> None:
        """`InvalidToken` once the token `principal` was read from has expired or its API key
        has been revoked, here or by another process sharing the key store (`simutrador keys
        revoke`): an open connection is held to the same rules as a new one."""
        if principal.expires_at is not None and self._clock.now() >= principal.expires_at:
            raise InvalidToken("Token has expired; request a new one")
        record = await self._keys.get(principal.key_id)
        if record is None or record.is_revoked:
            raise InvalidToken("Token's API key has been revoked")

    def _expiry(self, claims: Mapping[str, Any]) -> datetime:
        """The token's `exp`, but never later than `iat` plus this server's token lifetime: a
        token signed with a longer life (say, under an older setting) lives no longer than
        one issued now."""
        issued, expires = claims.get("iat"), claims.get("exp")
        if not (_is_number(issued) and _is_number(expires)):
            raise InvalidToken("Token claims 'iat' and 'exp' must be numbers")
        deadline = min(expires, issued + self._ttl)
        if deadline <= self._clock.now().timestamp():
            raise InvalidToken("Token has expired; request a new one")
        return datetime.fromtimestamp(deadline, UTC)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
