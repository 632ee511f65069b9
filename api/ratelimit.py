"""In-process sliding-window rate limits (login attempts, uploads).

Each API process keeps its own counters: with N processes behind a balancer the effective
limit is up to N times the configured one. Memory is bounded: at most ``max_keys`` keys are
tracked, the least recently used are forgotten first.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

from api.errors import RateLimitedError


class RateLimiter:
    """At most ``limit`` events per key in any ``window_s`` seconds."""

    def __init__(
        self,
        *,
        what: str,
        limit: int,
        window_s: float = 60.0,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or window_s <= 0 or max_keys < 1:
            raise ValueError("limit and max_keys must be >= 1 and window_s > 0")
        self.what = what
        self.limit = limit
        self.window_s = window_s
        self._max_keys = max_keys
        self._clock = clock
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str) -> float | None:
        """Seconds until ``key`` may act again, or None when it may act now."""
        events = self._prune(key)
        if events is None or len(events) < self.limit:
            return None
        return max(0.0, events[0] + self.window_s - self._clock())

    def record(self, key: str) -> None:
        """Count one event of ``key``."""
        events = self._prune(key)
        if events is None:
            events = self._events[key] = deque()
            while len(self._events) > self._max_keys:
                self._events.popitem(last=False)
        self._events.move_to_end(key)
        events.append(self._clock())

    def check(self, key: str) -> None:
        """Raise `RateLimitedError` when ``key`` has used its budget."""
        wait = self.retry_after(key)
        if wait is not None:
            raise RateLimitedError(self.what, wait)

    def hit(self, key: str) -> None:
        """`check`, then `record`: for limits that count every attempt."""
        self.check(key)
        self.record(key)

    def __len__(self) -> int:
        return len(self._events)

    def _prune(self, key: str) -> deque[float] | None:
        events = self._events.get(key)
        if events is None:
            return None
        horizon = self._clock() - self.window_s
        while events and events[0] <= horizon:
            events.popleft()
        if not events:
            del self._events[key]
            return None
        return events
