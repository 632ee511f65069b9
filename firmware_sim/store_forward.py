"""Store and forward: samples a device could not send wait in a bounded buffer and go out
later, oldest first, flagged as replayed (``FLAG_REPLAY``)."""

from __future__ import annotations

from collections import deque

import numpy as np

from ingest.wire import FLAG_REPLAY, RECORD_DTYPE


class StoreAndForward:
    """A link's outbox. Records are ``RECORD_DTYPE`` rows (``dev`` indexes the simulation's
    device table), each remembered with the tick that measured it.

    Args:
        capacity: most samples kept; when full the oldest are dropped (counted in
            ``dropped``), as a device with a full flash buffer would.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._chunks: deque[tuple[np.ndarray, int]] = deque()
        self._size = 0
        self.dropped = 0

    def __len__(self) -> int:
        return self._size

    def push(self, rec: np.ndarray, tick: int) -> None:
        """Queue the samples measured at ``tick`` (after everything already queued)."""
        if len(rec):
            self._chunks.append((rec, tick))
            self._size += len(rec)
            self._trim()

    def requeue(self, rec: np.ndarray, tick: int) -> None:
        """Put samples that could not be sent back in front (they are the oldest)."""
        if len(rec):
            self._chunks.appendleft((rec, tick))
            self._size += len(rec)
            self._trim()

    def take(self, now_tick: int) -> np.ndarray:
        """Everything queued, oldest first; samples measured before ``now_tick`` carry
        ``FLAG_REPLAY``. The outbox is empty afterwards."""
        if not self._chunks:
            return np.empty(0, dtype=RECORD_DTYPE)
        parts = []
        for rec, tick in self._chunks:
            if tick < now_tick:
                rec = rec.copy()
                rec["flags"] |= FLAG_REPLAY
            parts.append(rec)
        self._chunks.clear()
        self._size = 0
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def _trim(self) -> None:
        while self._size > self.capacity:
            rec, tick = self._chunks.popleft()
            excess = self._size - self.capacity
            if len(rec) > excess:
                self._chunks.appendleft((rec[excess:], tick))
                self._size -= excess
                self.dropped += excess
            else:
                self._size -= len(rec)
                self.dropped += len(rec)
