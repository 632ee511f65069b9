"""A seeded fleet of generic wearables (no scenario): each tick yields one sample per device.

The workers are the background workers of the simulation — varied profiles, task changes and
rounds across the site — so the load generator and quick experiments get realistic values.
"""

from __future__ import annotations

from dataclasses import dataclass

from firmware_sim.scenario import BackgroundSpec, Scenario
from firmware_sim.simulation import Simulation
from ingest.wire import SampleBatch

#: Demo site centre (a chemical park near Shanghai).
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
    """Every device of the fleet, advanced at once (vectorised)."""

    def __init__(self, spec: FleetSpec) -> None:
        self.spec = spec
        scenario = Scenario(
            name="fleet",
            seed=spec.seed,
            background=BackgroundSpec(devices=spec.devices, prefix=spec.prefix),
        )
        self.sim = Simulation(scenario, record_truth=False)
        self.devices = self.sim.devices

    def tick(self, ts_ms: int, dt_s: float = 1.0) -> SampleBatch:
        """One sample per live device stamped ``ts_ms``; state advances by ``dt_s`` seconds."""
        batch = self.sim.step(dt_s).samples
        batch.ts_ms[:] = ts_ms
        return batch
