"""Hypothesis strategies and seeded generators of awkward one-device series."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from tests.detectors.naive import Series

T0 = 1_717_200_000_000
STEPS = (0, 250, 1000, 1000, 1000, 3000, 15_000, 70_000)


@st.composite
def series(draw: st.DrawFn, max_size: int = 120) -> Series:
    """A series with NaN, duplicates, gaps, constant runs and out-of-range values."""
    n = draw(st.integers(1, max_size))
    steps = draw(st.lists(st.sampled_from(STEPS), min_size=n, max_size=n))
    ts = T0 + np.cumsum(steps)

    def channel(lo: float, hi: float, wild: tuple[float, ...]) -> np.ndarray:
        kinds = draw(st.lists(st.sampled_from("vvvvvcnw"), min_size=n, max_size=n))
        vals = draw(st.lists(st.floats(lo, hi), min_size=n, max_size=n))
        out = np.empty(n)
        for i, k in enumerate(kinds):
            if k == "n":
                out[i] = np.nan
            elif k == "c" and i:
                out[i] = out[i - 1]
            elif k == "w":
                out[i] = draw(st.sampled_from(wild))
            else:
                out[i] = vals[i]
        return out

    flags = draw(st.lists(st.sampled_from((0, 0, 0, 0, 1, 2, 3, 4)), min_size=n, max_size=n))
    return Series.make(
        ts,
        hr=channel(40, 200, (0.0, 25.0, 250.0)),
        spo2=channel(80, 100, (0.0, 40.0)),
        skin=channel(30, 40, (10.0, 45.0)),
        motion=channel(0, 0.05, (0.0, 1.0, 0.005)),
        lat=channel(30.7390, 30.7400, (31.0,)),
        lon=np.full(n, 121.3442),
        gps_acc=channel(1, 50, (5.0,)),
        flags=flags,
    )


def seeded(seed: int, n: int = 1500) -> Series:
    """A longer 1 Hz series with episodes: desaturation, still period, flags, dropouts."""
    rng = np.random.default_rng(seed)
    ts = T0 + np.cumsum(
        rng.choice([1000, 1000, 1000, 2000, 12_000], size=n, p=[0.9, 0.05, 0.03, 0.015, 0.005])
    )
    hr = np.round(90 + 40 * np.sin(np.arange(n) / 200) + rng.normal(0, 4, n))
    spo2 = np.round(np.clip(97 + rng.normal(0, 1, n), 50, 100))
    a = int(rng.integers(100, n - 200))
    spo2[a : a + 90] = np.round(np.linspace(96, 82, 90))
    motion = np.abs(rng.normal(0.2, 0.1, n))
    b = int(rng.integers(100, n - 300))
    motion[b : b + 200] = 0.003
    flags = np.zeros(n, dtype=np.int64)
    flags[rng.integers(0, n, 3)] |= 1
    flags[b] |= 2
    c = int(rng.integers(200, n - 700))
    hr[c : c + 400] = np.round(165 + rng.normal(0, 3, 400))  # effort: sustained, CT, PSI
    motion[c : c + 400] = 0.4
    hr[c + 400 : c + 520] = np.round(135 + rng.normal(0, 2, 120))  # poor recovery
    motion[c + 400 : c + 520] = 0.01
    hr[c + 600 :] += 25  # drift
    e = int(rng.integers(50, n - 100))
    hr[e : e + 80] = 77.0  # stuck sensor
    skin = 33 + np.cumsum(rng.normal(0, 0.02, n))
    skin[c : c + 500] += np.linspace(0, 4, 500)
    hr[rng.random(n) < 0.03] = np.nan
    spo2[rng.random(n) < 0.03] = np.nan
    hr[rng.integers(0, n, 5)] = 0.0
    lat = 30.7395 + np.cumsum(rng.normal(0, 0.00002, n))
    return Series.make(
        ts, hr=hr, spo2=spo2, skin=skin, motion=motion, flags=flags,
        lat=lat, lon=np.full(n, 121.3442), gps_acc=rng.uniform(2, 40, n),
    )  # fmt: skip
