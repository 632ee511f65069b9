"""Sliding-window rate limits with a controlled clock."""

from __future__ import annotations

import pytest

from api.errors import RateLimitedError
from api.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_limit_allows_n_events_per_window_then_says_when() -> None:
    """The (n+1)th event in a window is refused with the time until the oldest expires."""
    clock = Clock()
    rl = RateLimiter(what="login", limit=3, window_s=60, clock=clock)
    for _ in range(3):
        rl.hit("k")
        clock.t += 10
    with pytest.raises(RateLimitedError) as info:
        rl.hit("k")
    assert info.value.retry_after_s == pytest.approx(30.0)
    assert info.value.headers == {"Retry-After": "30"}
    clock.t += 30
    rl.hit("k")


def test_keys_are_independent() -> None:
    """One key's budget does not touch another's."""
    rl = RateLimiter(what="login", limit=1, window_s=60, clock=Clock())
    rl.hit("a")
    rl.hit("b")
    assert rl.retry_after("a") is not None
    assert rl.retry_after("c") is None


def test_check_does_not_count_and_record_does() -> None:
    """check() only reads: failures are recorded separately (login counts failures)."""
    rl = RateLimiter(what="login", limit=2, window_s=60, clock=Clock())
    for _ in range(10):
        rl.check("k")
    rl.record("k")
    rl.record("k")
    with pytest.raises(RateLimitedError):
        rl.check("k")


def test_memory_is_bounded_by_max_keys() -> None:
    """A flood of distinct keys keeps at most max_keys, forgetting the oldest."""
    rl = RateLimiter(what="login", limit=1, window_s=60, max_keys=100, clock=Clock())
    for i in range(10_000):
        rl.record(f"ip-{i}")
    assert len(rl) == 100
    assert rl.retry_after("ip-9999") is not None
    assert rl.retry_after("ip-0") is None


def test_expired_keys_are_dropped() -> None:
    """Keys whose events all left the window are forgotten when looked at."""
    clock = Clock()
    rl = RateLimiter(what="login", limit=1, window_s=60, clock=clock)
    rl.record("k")
    clock.t += 61
    assert rl.retry_after("k") is None
    assert len(rl) == 0
