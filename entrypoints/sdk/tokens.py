"""A bearer token as the client keeps it (shared by `AuthClient` and the cached login)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Token:
    """A bearer token and what the server said about it. `expires_at` is aware UTC."""

    access_token: str = field(repr=False)
    issued_at: datetime
    expires_at: datetime
    user_id: str
    plan: str

    def seconds_left(self, now: float | None = None) -> float:
        """Seconds until expiry by the local wall clock (negative once expired)."""
        return self.expires_at.timestamp() - (time.time() if now is None else now)
