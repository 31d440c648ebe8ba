"""Unguessable identifiers and secrets from the operating system's CSPRNG."""

from __future__ import annotations

import secrets


class SecureIdGenerator:
    def session_id(self) -> str:
        return "sess_" + secrets.token_urlsafe(16)  # 128 random bits

    def token_id(self) -> str:
        return secrets.token_urlsafe(16)

    def api_key(self) -> tuple[str, str]:
        return "key_" + secrets.token_hex(6), "sk_" + secrets.token_urlsafe(32)  # 256 bits
