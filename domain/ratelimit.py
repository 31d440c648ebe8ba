"""A token bucket: the per-connection message budget, pure and driven by a given clock."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class TokenBucket:
    """`capacity` messages at once, refilled continuously at `capacity / period` per second."""

    capacity: float
    period_seconds: float
    tokens: float = field(init=False)
    updated: float | None = None

    def __post_init__(self) -> None:
        self.tokens = self.capacity

    def take(self, now: float) -> float:
        """Spend one token: 0.0 when allowed, otherwise seconds until one is available."""
        if self.updated is not None:
            elapsed = max(0.0, now - self.updated)
            self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    @property
    def rate(self) -> float:
        return self.capacity / self.period_seconds
