"""Thread-safe in-memory storage (SIMUTRADOR_STORAGE=memory): sessions, and the results of
completed simulations, compactly encoded."""

from __future__ import annotations

import heapq
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime

from adapters.storage.codec import decode_completed_compact, encode_completed_compact
from application.records import CompletedRun
from domain.session import SessionState, SimulationSession


class InMemorySessionRepository:
    """O(1) get; a per-owner index so a user's list and count never scan other users; a
    min-heap of expiry times so the sweep touches only what may have expired.

    One lock guards all three structures; no method awaits while holding it, so it is safe
    from threads and from tasks alike."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, SimulationSession] = {}
        self._by_owner: dict[str, dict[str, SimulationSession]] = {}
        self._expiry: list[tuple[datetime, str]] = []

    async def add_if_under_limit(
        self, session: SimulationSession, max_active: int, now: datetime
    ) -> bool:
        with self._lock:
            if max_active <= 0:
                return False
            owned = self._by_owner.get(session.owner)
            if owned is None:
                owned = self._by_owner[session.owner] = {}
            # Counting walks the owner's sessions; skip it when even counting every stored
            # one (finished and expired included) stays under the limit.
            elif len(owned) >= max_active:
                active = sum(1 for s in owned.values() if s.is_active and not s.is_expired(now))
                if active >= max_active:
                    return False
            owned[session.id] = session
            self._by_id[session.id] = session
            heapq.heappush(self._expiry, (session.expires_at, session.id))
            return True

    async def get(self, session_id: str) -> SimulationSession | None:
        return self._by_id.get(session_id)

    async def save(self, session: SimulationSession) -> bool:
        with self._lock:
            if session.id not in self._by_id:
                return False
            self._by_id[session.id] = session
            self._by_owner[session.owner][session.id] = session
            return True

    async def touch(self, session: SimulationSession) -> bool:
        return await self.save(session)  # the stored object is the session itself

    async def remove(self, session_id: str) -> SimulationSession | None:
        with self._lock:
            return self._remove_locked(session_id)

    async def list_by_owner(self, owner: str) -> Sequence[SimulationSession]:
        with self._lock:
            owned = self._by_owner.get(owner)
            return list(owned.values()) if owned else []

    async def remove_expired(self, now: datetime) -> Sequence[SimulationSession]:
        removed: list[SimulationSession] = []
        with self._lock:
            heap = self._expiry
            while heap and heap[0][0] <= now:
                _, session_id = heapq.heappop(heap)
                session = self._by_id.get(session_id)
                if session is None:
                    continue  # deleted already; its heap entry was stale
                if session.is_expired(now):
                    self._remove_locked(session_id)
                    removed.append(session)
                else:  # touched since it was queued: queue it again at its new expiry
                    heapq.heappush(heap, (session.expires_at, session_id))
            if len(heap) > 2 * len(self._by_id) + 64:
                self._compact_locked()
        return removed

    async def count(self) -> int:
        return len(self._by_id)

    async def count_by_state(self) -> Mapping[SessionState, int]:
        with self._lock:
            return Counter(s.state for s in self._by_id.values())

    def _remove_locked(self, session_id: str) -> SimulationSession | None:
        session = self._by_id.pop(session_id, None)
        if session is None:
            return None
        owned = self._by_owner.get(session.owner)
        if owned is not None:
            owned.pop(session_id, None)
            if not owned:
                del self._by_owner[session.owner]
        return session

    def _compact_locked(self) -> None:
        """Drop heap entries of deleted sessions, so deletes cannot grow the heap forever."""
        self._expiry = [(s.expires_at, s.id) for s in self._by_id.values()]
        heapq.heapify(self._expiry)


class InMemoryResultsStore:
    """`ResultsStore` for SIMUTRADOR_STORAGE=memory: each completed simulation's results as
    one compact encoded record (msgpack, deflated), decoded again when read, rather than
    the objects themselves (a hundred times the size)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, bytes] = {}

    async def put(self, run: CompletedRun) -> None:
        data = encode_completed_compact(run)
        with self._lock:
            self._records[run.session_id] = data

    async def get(self, session_id: str) -> CompletedRun | None:
        data = self._records.get(session_id)
        return decode_completed_compact(data) if data is not None else None

    async def delete(self, session_id: str) -> None:
        with self._lock:
            self._records.pop(session_id, None)

    def stored_bytes(self) -> int:
        """What the records take (their bytes), for benchmarks."""
        with self._lock:
            return sum(len(data) for data in self._records.values())
