"""The login `simutrador auth login` caches: the token it obtained, in
`SIMUTRADOR_HOME/token.json`, with a short fingerprint of the API key (never the key).
The SDK only reads it, so `AuthClient()` works for a user who logged in; the CLI writes it."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import msgspec

from entrypoints.sdk.tokens import Token

TOKEN_FILE = "token.json"
HOME_ENV = "SIMUTRADOR_HOME"


def default_home() -> Path:
    """`SIMUTRADOR_HOME`, or `~/.simutrador` (the same directory the server uses)."""
    raw = os.environ.get(HOME_ENV, "")
    return Path(raw).expanduser() if raw else Path.home() / ".simutrador"


def login_path(home: Path | None = None) -> Path:
    return (home or default_home()) / TOKEN_FILE


def key_fingerprint(api_key: str) -> str:
    return hashlib.sha256(api_key.strip().encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class CachedLogin:
    server_url: str
    key_fingerprint: str
    token: Token

    def usable_with(self, server_url: str, api_key: str | None) -> bool:
        """For this server, and for this key when one is given."""
        return self.server_url == server_url and (
            api_key is None or key_fingerprint(api_key) == self.key_fingerprint
        )


def load_login(path: Path | None = None) -> CachedLogin | None:
    """The cached login; None when absent or unreadable (a bad file is just no login)."""
    try:
        return msgspec.json.decode((path or login_path()).read_bytes(), type=CachedLogin)
    except (OSError, msgspec.DecodeError):
        return None
