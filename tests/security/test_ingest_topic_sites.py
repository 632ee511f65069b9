"""A frame on a topic whose site the database cannot hold must not stall the ingest
(found by fuzzing the consumer: such a site failed the sites CHECK on every retry)."""

from __future__ import annotations

import asyncio

import psycopg

from api.settings import Settings
from api.storage import open_pool
from ingest.consumer import Ingest
from ingest.mqtt import client
from ingest.wire import Sample, encode_binary
from ingest.writer import TelemetryWriter
from tests.factories import now_ms


async def test_frame_on_topic_with_invalid_site_is_dead_lettered_and_ingest_goes_on(
    settings: Settings,
) -> None:
    """The bad-site frame becomes a dead letter; the next good frame is stored."""
    assert settings.mqtt.url
    assert settings.database.url
    root = settings.mqtt.topic_root
    ts = now_ms()
    async with open_pool(settings.database, settings.database.url) as pool:
        ingest = Ingest(
            mqtt_url=settings.mqtt.url,
            mqtt=settings.mqtt,
            settings=settings.ingest,
            writer=TelemetryWriter(pool),
        )
        async with ingest:
            await ingest.wait_subscribed()
            async with client(settings.mqtt.url) as mqtt:
                bad = encode_binary([Sample("d1", 1, ts, hr=70.0)])
                good = encode_binary([Sample("d2", 1, ts, hr=71.0)])
                await mqtt.publish(f"{root}/bad site!/d1/telemetry", bad, qos=1)
                await mqtt.publish(f"{root}/s1/d2/telemetry", good, qos=1)
            async with asyncio.timeout(20):
                while ingest.stats.samples_stored < 1:
                    await asyncio.sleep(0.05)
    with psycopg.connect(settings.database.url) as conn:
        stored = conn.execute("SELECT device_id FROM telemetry").fetchall()
        dead = conn.execute("SELECT topic, reason FROM dead_letters").fetchall()
    assert stored == [("d2",)]
    assert dead == [(f"{root}/bad site!/d1/telemetry", "not a v1 telemetry topic")]


def test_ids_with_a_trailing_newline_are_refused_everywhere() -> None:
    """`$` lets "d1\\n" through re.match; topic, frame and broker account checks refuse it."""
    import numpy as np
    import pytest

    from api.broker_acl import BrokerAccount
    from api.errors import ProvisioningError
    from ingest.errors import DecodeError
    from ingest.topics import parse
    from ingest.wire import HEADER, MAGIC, RECORD_DTYPE, decode

    assert parse("pp/v1", "pp/v1/s1\n/d1/telemetry") is None
    assert parse("pp/v1", "pp/v1/s1/d1\n/telemetry") is None
    assert parse("pp/v1", "pp/v1/s1/gateway/gw\n/telemetry") is None
    frame = HEADER.pack(MAGIC, 1, 1, 1, 1) + b"\x03d1\n" + np.zeros(1, RECORD_DTYPE).tobytes()
    with pytest.raises(DecodeError, match="invalid device id"):
        decode(frame, topic_device="d1\n")
    with pytest.raises(ProvisioningError):
        BrokerAccount("d1\n", "device", "s1")
