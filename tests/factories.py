"""Builders for test data."""

from __future__ import annotations

import time

from ingest.wire import Sample

#: HTTP client timeout in tests: generous, because a loaded 2-core machine can take seconds
#: to hash a password (argon2 is slow on purpose); no test measures time with it.
HTTP_TIMEOUT_S = 30.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def samples(device: str, n: int, *, start_ms: int | None = None, seq0: int = 1) -> list[Sample]:
    """``n`` plausible 1 Hz samples of ``device`` ending about now."""
    t0 = start_ms if start_ms is not None else now_ms() - n * 1000
    return [
        Sample(
            device_id=device,
            seq=seq0 + i,
            ts_ms=t0 + i * 1000,
            hr=70.0 + (i % 20),
            skin_temp=33.5,
            spo2=98.0,
            lat=30.7395 + i * 1e-6,
            lon=121.3442,
            gps_acc=4.0,
            motion=0.25,
            battery=90.0,
            flags=0,
        )
        for i in range(n)
    ]
