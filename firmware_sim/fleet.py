"""A seeded fleet of simulated wearables: each tick yields one sample per device.

This is the foundation's plain model (a bounded random walk around resting values); the
physiology, incidents and scenarios of the simulator issue build on the same interface.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ingest.wire import RECORD_DTYPE, SampleBatch

#: Demo site centre (a chemical park near Shanghai); devices start within ~150 m of it.
SITE_LAT = 30.7395
SITE_LON = 121.3442


@dataclass(frozen=True, slots=True)
class FleetSpec:
    devices: int
    seed: int = 1
    prefix: str = "dev"

    def device_ids(self) -> tuple[str, ...]:
        width = max(4, len(str(self.devices)))
        return tuple(f"{self.prefix}-{i:0{width}d}" for i in range(1, self.devices + 1))


class Fleet:
    """State of every simulated device; `tick` advances all of them at once (vectorised)."""

    def __init__(self, spec: FleetSpec) -> None:
        self.spec = spec
        self.devices = spec.device_ids()
        n = spec.devices
        self._rng = np.random.default_rng(spec.seed)
        rng = self._rng
        self.seq = np.zeros(n, dtype=np.uint32)
        self._hr0 = rng.uniform(60, 80, n)
        self.hr = self._hr0 + rng.normal(0, 3, n)
        self.skin = rng.uniform(32.5, 34.0, n)
        self.spo2 = rng.uniform(96.5, 98.5, n)
        self.lat = SITE_LAT + rng.normal(0, 0.0008, n)
        self.lon = SITE_LON + rng.normal(0, 0.0008, n)
        self.battery = rng.uniform(60, 100, n)

    def tick(self, ts_ms: int, dt_s: float = 1.0) -> SampleBatch:
        """One sample per device stamped ``ts_ms``; state advances by ``dt_s`` seconds."""
        n, rng = self.spec.devices, self._rng
        a = math.exp(-dt_s / 30.0)  # HR returns to its resting value with a 30 s time constant
        self.hr = self._hr0 + a * (self.hr - self._hr0) + rng.normal(0, 2.0, n)
        self.skin += rng.normal(0, 0.02, n)
        self.spo2 = np.clip(97.5 + 0.9 * (self.spo2 - 97.5) + rng.normal(0, 0.4, n), 90, 100)
        self.lat += rng.normal(0, 0.000005, n)
        self.lon += rng.normal(0, 0.000005, n)
        self.battery = np.maximum(self.battery - dt_s / 360.0, 0)
        self.seq += 1
        rec = np.empty(n, dtype=RECORD_DTYPE)
        rec["dev"] = np.arange(n)
        rec["flags"] = 0
        rec["seq"] = self.seq
        rec["ts_ms"] = ts_ms
        rec["hr"] = np.round(self.hr)
        rec["skin_temp"] = self.skin
        rec["spo2"] = np.round(self.spo2)
        rec["lat"] = self.lat
        rec["lon"] = self.lon
        rec["gps_acc"] = rng.uniform(2, 8, n)
        rec["motion"] = np.abs(rng.normal(0.3, 0.2, n))
        rec["battery"] = np.round(self.battery)
        return SampleBatch.from_records(self.devices, rec)
