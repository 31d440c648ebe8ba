"""Who is asking: the authenticated user, their plan and the limits that come with it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.limits import Limits, Plan


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    plan: Plan
    limits: Limits
    key_id: str = ""
    expires_at: datetime | None = None
    """When the token this principal was read from stops being valid (None: never)."""
