"""Open connections per user, counted in the server process (memory and sqlite storage)."""

from __future__ import annotations

import threading


class InMemoryConnectionRegistry:
    """`ConnectionRegistry` of one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_user: dict[str, int] = {}
        self._total = 0

    async def try_open(self, user_id: str, max_connections: int) -> bool:
        with self._lock:
            current = self._by_user.get(user_id, 0)
            if current >= max_connections:
                return False
            self._by_user[user_id] = current + 1
            self._total += 1
            return True

    async def close(self, user_id: str) -> None:
        with self._lock:
            current = self._by_user.get(user_id, 0)
            if current <= 0:
                return
            if current == 1:
                del self._by_user[user_id]
            else:
                self._by_user[user_id] = current - 1
            self._total -= 1

    async def count(self, user_id: str | None = None) -> int:
        with self._lock:
            return self._total if user_id is None else self._by_user.get(user_id, 0)
