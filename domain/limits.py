"""Plans and the limits attached to them (PROTOCOL.md §3), plus session-wide policy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType


class Plan(StrEnum):
    FREE = "free"
    PROFESSIONAL = "professional"
    ENTERPRISE = "enterprise"


@dataclass(frozen=True, slots=True)
class Limits:
    """What one plan allows a user."""

    max_active_sessions: int
    sessions_per_hour: int
    max_symbols: int
    max_connections: int
    messages_per_minute: int
    max_running_simulations: int = 1


PLAN_DEFAULTS: Mapping[Plan, Limits] = MappingProxyType(
    {
        Plan.FREE: Limits(1, 5, 5, 1, 600, 1),
        Plan.PROFESSIONAL: Limits(10, 50, 50, 10, 6000, 5),
        Plan.ENTERPRISE: Limits(100, 500, 500, 100, 60000, 50),
    }
)


CAPITAL_CEILING = Decimal(10) ** 15
"""The largest initial capital any configuration may allow (the exactness proof's bound)."""


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """Rules that hold for every plan."""

    min_capital: Decimal = Decimal("1000.00")
    max_capital: Decimal = Decimal("10000000.00")
    max_range_days: int = 20 * 366
    max_metadata_bytes: int = 4096
    max_metadata_depth: int = 8
    session_timeout: timedelta = field(default=timedelta(minutes=60))

    def __post_init__(self) -> None:
        # docs/protocol.md §7.5 proves the engine exact for capitals up to this ceiling.
        if not Decimal(0) < self.max_capital <= CAPITAL_CEILING:
            raise ValueError(f"max_capital must be above 0 and at most {CAPITAL_CEILING:,}")
