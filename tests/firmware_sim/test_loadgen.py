"""Load mode against the real broker: what it reports is what a subscriber receives."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest

from firmware_sim.loadgen import LoadSpec, run_load
from ingest.wire import decode
from tests.firmware_sim.factories import Recorder


@pytest.mark.parametrize(
    ("client", "gateway_size", "encoding"),
    [("raw", 1, "binary"), ("raw", 10, "binary"), ("raw", 5, "json"), ("paho", 1, "binary")],
)
async def test_run_load_reports_what_the_broker_delivers(
    mqtt_url: str, topic_root: str, client: str, gateway_size: int, encoding: str
) -> None:
    """Every message the load generator counts reaches a subscriber, acknowledged (QoS 1),
    decodable, each device's samples numbered 1, 2, 3, … one per tick."""
    spec = LoadSpec(
        mqtt_url=mqtt_url,
        topic_root=topic_root,
        devices=40,
        rate_hz=5,
        duration_s=1.0,
        processes=2,
        gateway_size=gateway_size,
        encoding=encoding,  # type: ignore[arg-type]
        client=client,  # type: ignore[arg-type]
        cycle_ticks=3,
    )
    async with Recorder(mqtt_url, f"{topic_root}/#") as rec:
        report = await asyncio.to_thread(run_load, spec)
        await rec.wait_for(lambda: len(rec.messages) >= report["messages"])
        await asyncio.sleep(0.2)
    assert "errors" not in report
    assert report["messages"] == len(rec.messages) == report["acked"]
    assert report["messages"] == 5 * 40 // gateway_size
    assert report["samples"] == 5 * 40
    seqs: dict[str, list[int]] = defaultdict(list)
    for topic, payload, _ in rec.messages:
        device = None if "/gateway/" in topic else topic.split("/")[-2]
        for s in decode(payload, topic_device=device).samples():
            seqs[s.device_id].append(s.seq)
    assert len(seqs) == 40
    assert all(sorted(v) == [1, 2, 3, 4, 5] for v in seqs.values())
