"""Growable output buffers the kernels append to: level changes and closed minutes."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


class EventBuffer:
    """Level changes written by the kernels: (slot, kind code, level, ts, value) rows.

    Kernels append at ``n[0]`` and stop early (returning where they stopped) when fewer than
    their worst case per sample is free; the caller then calls `grow` and resumes.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.n = np.zeros(1, dtype=np.int64)
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        self.slot = np.empty(capacity, dtype=np.int32)
        self.kind = np.empty(capacity, dtype=np.int8)
        self.level = np.empty(capacity, dtype=np.int8)
        self.ts = np.empty(capacity, dtype=np.int64)
        self.value = np.empty(capacity, dtype=np.float64)

    @property
    def capacity(self) -> int:
        return int(self.slot.shape[0])

    def grow(self) -> None:
        """Double the capacity, keeping what was written."""
        n = int(self.n[0])
        names = ("slot", "kind", "level", "ts", "value")
        old: dict[str, npt.NDArray[Any]] = {k: getattr(self, k) for k in names}
        self._alloc(max(2 * self.capacity, 64))
        for k in names:
            getattr(self, k)[:n] = old[k][:n]

    def clear(self) -> None:
        self.n[0] = 0

    def rows(self) -> tuple[npt.NDArray[np.int32], ...]:
        """Views of the written rows: slot, kind, level, ts, value."""
        n = int(self.n[0])
        return (self.slot[:n], self.kind[:n], self.level[:n], self.ts[:n], self.value[:n])  # type: ignore[return-value]


class MinuteBuffer:
    """Closed 1-minute aggregates: (slot, minute end ts, mean HR, good HR count), plus the
    core-temperature estimate the core-temperature detector writes for the strain detector."""

    def __init__(self, capacity: int = 1024) -> None:
        self.n = np.zeros(1, dtype=np.int64)
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        self.slot = np.empty(capacity, dtype=np.int32)
        self.end_ts = np.empty(capacity, dtype=np.int64)
        self.hr = np.empty(capacity, dtype=np.float64)
        self.count = np.empty(capacity, dtype=np.int32)
        self.ct = np.empty(capacity, dtype=np.float64)

    @property
    def capacity(self) -> int:
        return int(self.slot.shape[0])

    def grow(self) -> None:
        n = int(self.n[0])
        names = ("slot", "end_ts", "hr", "count", "ct")
        old: dict[str, npt.NDArray[Any]] = {k: getattr(self, k) for k in names}
        self._alloc(max(2 * self.capacity, 64))
        for k in names:
            getattr(self, k)[:n] = old[k][:n]

    def clear(self) -> None:
        self.n[0] = 0

    def __len__(self) -> int:
        return int(self.n[0])
