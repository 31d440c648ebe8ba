"""The CLI's login: the last token `simutrador auth login` obtained, kept in
`SIMUTRADOR_HOME/token.json` (0600, written atomically). The API key itself is never stored;
only a short fingerprint of it, so a different key in the environment is not mixed up with
the cached login. The SDK reads the same file (`entrypoints.sdk.login`)."""

from __future__ import annotations

from pathlib import Path

import msgspec

from adapters.files import write_private_file
from entrypoints.sdk.login import (
    TOKEN_FILE,
    CachedLogin,
    default_home,
    key_fingerprint,
    load_login,
)

__all__ = ["TOKEN_FILE", "CachedLogin", "TokenCache", "default_home", "key_fingerprint"]


class TokenCache:
    def __init__(self, home: Path | None = None) -> None:
        self.path = (home or default_home()) / TOKEN_FILE

    def load(self) -> CachedLogin | None:
        """The cached login; None when absent or unreadable (a bad file is just no login)."""
        return load_login(self.path)

    def save(self, login: CachedLogin) -> None:
        write_private_file(self.path, msgspec.json.encode(login))

    def delete(self) -> bool:
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True
