"""In-process sliding-window rate limiter, shared by all connections of one server."""

from __future__ import annotations

import threading
from collections import deque


class InMemoryRateLimiter:
    def __init__(self) -> None:
        self._windows: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    async def try_acquire(self, key: str, limit: int, window_seconds: float, now: float) -> float:
        with self._lock:
            window = self._windows.setdefault(key, deque())
            horizon = now - window_seconds
            while window and window[0] <= horizon:
                window.popleft()
            if len(window) < limit:
                window.append(now)
                return 0.0
            return window[0] - horizon if window else window_seconds

    async def release(self, key: str, now: float) -> None:
        with self._lock:
            window = self._windows.get(key)
            if window:
                window.pop()
            if not window:
                self._windows.pop(key, None)
