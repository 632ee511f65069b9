"""Per-device token buckets, applied to a whole batch at once."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


class RateLimiter:
    """A token bucket per device id (small integers): ``rate`` samples per second sustained,
    ``burst`` at once. ``rate == 0`` disables limiting.

    Buckets start full, so a device that appears with a buffered backlog is not punished.
    """

    def __init__(self, *, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._tokens = np.zeros(0)
        self._last = np.zeros(0)

    def admit(self, ids: npt.NDArray[np.integer], now: float) -> npt.NDArray[np.bool_]:
        """Which samples of devices ``ids`` (in the order given) fit their buckets; the earliest
        samples of a device are admitted first. Spends the tokens of the admitted ones."""
        n = len(ids)
        if self.rate <= 0 or n == 0:
            return np.ones(n, dtype=bool)
        self._grow(int(ids.max()) + 1, now)
        devs, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
        tokens = np.minimum(self.burst, self._tokens[devs] + (now - self._last[devs]) * self.rate)
        allowed = np.minimum(counts, np.floor(tokens)).astype(np.int64)
        self._tokens[devs] = tokens - allowed
        self._last[devs] = now
        if (allowed == counts).all():
            return np.ones(n, dtype=bool)
        # Rank of each sample among its device's samples, in the given order.
        order = np.argsort(inverse, kind="stable")
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
        admitted: npt.NDArray[np.bool_] = rank < allowed[inverse]
        return admitted

    def _grow(self, size: int, now: float) -> None:
        old = len(self._tokens)
        if size <= old:
            return
        size = max(size, 2 * old, 1024)
        self._tokens = np.concatenate([self._tokens, np.full(size - old, self.burst)])
        self._last = np.concatenate([self._last, np.full(size - old, now)])
