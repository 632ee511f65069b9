"""Publishes a fleet's samples over MQTT at a fixed rate, one frame per device per tick."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from firmware_sim.fleet import Fleet
from ingest import topics
from ingest.mqtt import client
from ingest.wire import encode_binary, encode_json

log = logging.getLogger(__name__)


@dataclass
class PublishStats:
    """What a publisher has sent so far."""

    messages: int = 0
    samples: int = 0
    started: float = 0.0

    def rates(self) -> dict[str, float]:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return {
            "messages": self.messages,
            "samples": self.samples,
            "elapsed_s": round(elapsed, 3),
            "messages_per_s": round(self.messages / elapsed, 1),
            "samples_per_s": round(self.samples / elapsed, 1),
        }


async def publish_fleet(
    fleet: Fleet,
    *,
    mqtt_url: str,
    topic_root: str,
    site: str,
    rate_hz: float,
    encoding: str = "binary",
    duration_s: float | None = None,
    qos: int = 1,
    stats: PublishStats | None = None,
) -> PublishStats:
    """Publish until ``duration_s`` has passed (forever when None) or the task is cancelled."""
    stats = stats or PublishStats()
    stats.started = time.monotonic()
    encode = encode_binary if encoding == "binary" else encode_json
    period = 1.0 / rate_hz
    names = {d: topics.device_topic(topic_root, site, d, "telemetry") for d in fleet.devices}
    async with client(mqtt_url, max_queued_outgoing_messages=0) as mqtt:
        next_tick = time.monotonic()
        while duration_s is None or time.monotonic() - stats.started < duration_s:
            batch = fleet.tick(time.time_ns() // 1_000_000, period)
            for part in batch.by_device():
                await mqtt.publish(names[part.devices[0]], encode(part), qos=qos)
                stats.messages += 1
                stats.samples += len(part)
            next_tick += period
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
    return stats
