"""Per-device token buckets over whole batches."""

from __future__ import annotations

import numpy as np

from ingest.ratelimit import RateLimiter


def test_admit_new_device_gets_its_full_burst_then_the_rest_is_refused() -> None:
    """A device appearing with a backlog passes up to the burst, in the order given."""
    limiter = RateLimiter(rate=1.0, burst=3)
    ids = np.array([7, 7, 7, 7, 7])
    assert limiter.admit(ids, now=100.0).tolist() == [True, True, True, False, False]


def test_admit_refills_at_the_rate_and_never_above_the_burst() -> None:
    """Tokens come back at ``rate`` per second, capped at ``burst``."""
    limiter = RateLimiter(rate=2.0, burst=4)
    limiter.admit(np.array([1] * 4), now=0.0)
    assert limiter.admit(np.array([1] * 4), now=1.0).sum() == 2
    assert limiter.admit(np.array([1] * 10), now=1000.0).sum() == 4


def test_admit_devices_are_independent() -> None:
    """One device exhausting its bucket costs the others nothing, wherever they sit."""
    limiter = RateLimiter(rate=1.0, burst=2)
    ids = np.array([1, 2, 1, 1, 2, 1, 3])
    assert limiter.admit(ids, now=0.0).tolist() == [True, True, True, False, True, False, True]


def test_admit_rate_zero_disables_limiting() -> None:
    """rate 0 admits everything."""
    limiter = RateLimiter(rate=0.0, burst=1)
    assert limiter.admit(np.array([1] * 100), now=0.0).all()
