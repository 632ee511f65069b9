"""Builders of small scenarios for the simulator tests."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from typing import Any

import aiomqtt
import numpy as np

from firmware_sim.scenario import Scenario, parse_scenario
from firmware_sim.simulation import Simulation
from ingest.mqtt import client as mqtt_client
from ingest.wire import SampleBatch

#: One work area (a circle of 20 m) and a three-person crew with a watcher.
BASE: dict[str, Any] = {
    "name": "unit",
    "seed": 3,
    "duration": 600,
    "site": {
        "id": "unit-site",
        "wbgt_c": 26,
        "ambient_c": 30,
        "muster": {"lat": 30.7383, "lon": 121.3433},
        "areas": [
            {"id": "work", "circle": {"lat": 30.7399, "lon": 121.3434, "radius_m": 20}},
            {
                "id": "tank",
                "circle": {"lat": 30.7388, "lon": 121.3450, "radius_m": 15},
                "entry": {"lat": 30.738926, "lon": 121.3450},
                "exit": {"lat": 30.738926, "lon": 121.3450},
                "confined": True,
            },
        ],
    },
    "permits": [
        {
            "id": "DH-U",
            "type": "DH",
            "level": "2",
            "area": "work",
            "workers": ["w1", "w2", "w3"],
            "watcher": "ww",
        },
        {"id": "SX-U", "type": "SX", "area": "tank", "workers": ["t1", "t2"], "watcher": "tw"},
    ],
    "workers": [
        {"id": "w1", "device": "u-w1", "age": 45, "resting_hr": 68},
        {"id": "w2", "device": "u-w2", "age": 30, "resting_hr": 60},
        {"id": "w3", "device": "u-w3", "age": 38, "resting_hr": 64},
        {"id": "ww", "device": "u-ww", "age": 50},
        {"id": "t1", "device": "u-t1", "age": 33},
        {"id": "t2", "device": "u-t2", "age": 41},
        {"id": "tw", "device": "u-tw", "age": 47},
    ],
}


def scenario_dict(**changes: Any) -> dict[str, Any]:
    """The base scenario with top-level fields replaced."""
    data = copy.deepcopy(BASE)
    data.update(copy.deepcopy(changes))
    return data


def scenario(**changes: Any) -> Scenario:
    return parse_scenario(scenario_dict(**changes))


def run(sim: Simulation, seconds: int) -> list[SampleBatch]:
    """Step ``sim`` for ``seconds`` ticks (1 Hz) and keep every tick's samples."""
    return [sim.step().samples for _ in range(seconds)]


def series(batches: list[SampleBatch], device: str, field: str) -> np.ndarray:
    """One device's values of ``field`` per tick (NaN where it sent nothing)."""
    out = np.full(len(batches), np.nan)
    for k, b in enumerate(batches):
        if device in b.devices:
            idx = b.devices.index(device)
            hit = np.flatnonzero(b.dev == idx)
            if len(hit):
                out[k] = float(getattr(b, field)[hit[0]])
    return out


def flags(batches: list[SampleBatch], device: str) -> np.ndarray:
    out = np.zeros(len(batches), dtype=np.int64)
    for k, b in enumerate(batches):
        hit = np.flatnonzero(b.dev == b.devices.index(device))
        if len(hit):
            out[k] = int(b.flags[hit[0]])
    return out


def minute_means(values: np.ndarray) -> np.ndarray:
    usable = len(values) // 60 * 60
    return np.nanmean(values[:usable].reshape(-1, 60), axis=1)


class Recorder:
    """A plain aiomqtt subscriber (independent of the simulator's own MQTT code) that keeps
    every message under a topic filter, in arrival order."""

    def __init__(self, mqtt_url: str, topic_filter: str, *, client_id: str | None = None) -> None:
        self.url = mqtt_url
        self.filter = topic_filter
        self.client_id = client_id
        self.messages: list[tuple[str, bytes, bool]] = []
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> Recorder:
        self._task = asyncio.create_task(self._run())
        async with asyncio.timeout(10):
            await self._ready.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        """Keeps a persistent session when given a client id, reconnecting after a loss."""
        while True:
            try:
                async with mqtt_client(
                    self.url,
                    identifier=self.client_id,
                    clean_session=self.client_id is None,
                ) as client:
                    await client.subscribe(self.filter, qos=1)
                    self._ready.set()
                    async for m in client.messages:
                        payload = m.payload if isinstance(m.payload, bytes) else b""
                        self.messages.append((str(m.topic), payload, bool(m.retain)))
                        self._arrived.set()
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    def on(self, suffix: str) -> list[tuple[str, bytes]]:
        return [(t, p) for t, p, _ in self.messages if t.endswith(suffix)]

    async def wait_for(self, predicate: Any, timeout_s: float = 20.0) -> None:
        """Return once ``predicate()`` holds, re-checking as messages arrive."""
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), 0.5)
