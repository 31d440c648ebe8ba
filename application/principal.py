"""Who is asking: the authenticated user, their plan and the limits that come with it."""

from __future__ import annotations

from dataclasses import dataclass

from domain.limits import Limits, Plan


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    plan: Plan
    limits: Limits
    key_id: str = ""
