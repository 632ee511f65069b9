"""`permitpulse demo` plays demo.yaml (plus extra background devices) into the ingest."""

from __future__ import annotations

import asyncio

import pytest

from api.runtime import Runtime
from api.settings import Settings
from firmware_sim import ScenarioError
from firmware_sim.config import SimulatorSettings


async def test_runtime_demo_plays_the_demo_scenario_into_the_database(settings: Settings) -> None:
    """With simulate on, the demo's wearables and the extra background ones are stored."""
    settings = settings.model_copy(update={"simulator": SimulatorSettings(devices=3)})
    async with Runtime(settings, simulate=True) as rt:
        for _ in range(150):  # up to 30 s
            if rt.ingest.stats.samples_stored >= 3 * (11 + 6 + 3):
                break
            await asyncio.sleep(0.2)
        async with rt.pool.connection() as conn:
            rows = await (await conn.execute("SELECT DISTINCT device_id FROM telemetry")).fetchall()
    devices = {r[0] for r in rows}
    assert {"ww-dh-02", "ww-sx-01", "ww-gc-01", "op-0001", "op-0009"} <= devices
    assert len(devices) == 11 + 6 + 3
    assert rt.fleet_stats.samples >= 3 * 20


async def test_runtime_demo_refuses_an_invalid_scenario(settings: Settings) -> None:
    """A broken scenario file stops the demo from starting, naming the field."""
    bad = settings.data_dir.parent / "bad.yaml"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("name: bad\nworkers: [{id: a, device: gateway}]\n")
    settings = settings.model_copy(update={"simulator": SimulatorSettings(scenario=str(bad))})
    with pytest.raises(ScenarioError, match=r"workers\.0\.device"):
        async with Runtime(settings, simulate=True):
            pass
