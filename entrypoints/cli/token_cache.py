"""The CLI's login: the last token `simutrador auth login` obtained, kept in
`SIMUTRADOR_HOME/token.json` (0600, written atomically). The API key itself is never stored;
only a short fingerprint of it, so a different key in the environment is not mixed up with
the cached login."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import msgspec

from adapters.files import write_private_file
from entrypoints.sdk import Token

TOKEN_FILE = "token.json"


def default_home() -> Path:
    """`SIMUTRADOR_HOME`, or `~/.simutrador` (the same directory the server uses)."""
    raw = os.environ.get("SIMUTRADOR_HOME", "")
    return Path(raw).expanduser() if raw else Path.home() / ".simutrador"


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


class TokenCache:
    def __init__(self, home: Path | None = None) -> None:
        self.path = (home or default_home()) / TOKEN_FILE

    def load(self) -> CachedLogin | None:
        """The cached login; None when absent or unreadable (a bad file is just no login)."""
        try:
            return msgspec.json.decode(self.path.read_bytes(), type=CachedLogin)
        except (OSError, msgspec.DecodeError):
            return None

    def save(self, login: CachedLogin) -> None:
        write_private_file(self.path, msgspec.json.encode(login))

    def delete(self) -> bool:
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True
