"""The ingest end to end on the real broker and database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import orjson
import psycopg
import pytest

from api.settings import Settings
from api.storage import open_pool
from ingest.consumer import Ingest
from ingest.mqtt import client
from ingest.topics import device_topic, gateway_topic
from ingest.wire import Sample, encode_binary, encode_json
from ingest.writer import TelemetryWriter
from tests.factories import now_ms, samples


@asynccontextmanager
async def running_ingest(settings: Settings) -> AsyncIterator[Ingest]:
    assert settings.mqtt.url
    assert settings.database.url
    async with open_pool(settings.database, settings.database.url) as pool:
        ingest = Ingest(
            mqtt_url=settings.mqtt.url,
            mqtt=settings.mqtt,
            settings=settings.ingest,
            writer=TelemetryWriter(pool),
        )
        async with ingest:
            await ingest.wait_subscribed()
            yield ingest


async def publish(settings: Settings, messages: list[tuple[str, bytes]]) -> None:
    assert settings.mqtt.url
    async with client(settings.mqtt.url) as mqtt:
        for topic, payload in messages:
            await mqtt.publish(topic, payload, qos=1)


def count(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 60.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.1)


def frames(
    settings: Settings, devices: list[str], n: int, per_frame: int, binary: bool
) -> list[tuple[str, bytes]]:
    encode = encode_binary if binary else encode_json
    out = []
    for device in devices:
        rows = samples(device, n)
        topic = device_topic(settings.mqtt.topic_root, "site-a", device, "telemetry")
        out += [(topic, encode(rows[i : i + per_frame])) for i in range(0, n, per_frame)]
    return out


async def test_ingest_10000_samples_both_encodings_stores_exactly_10000_rows(
    settings: Settings,
) -> None:
    """Several devices, JSON and binary frames: every sample becomes exactly one row."""
    assert settings.database.url
    url = settings.database.url
    msgs = frames(settings, [f"bin-{i}" for i in range(5)], 1000, 10, binary=True)
    msgs += frames(settings, [f"json-{i}" for i in range(5)], 1000, 25, binary=False)
    async with running_ingest(settings) as ingest:
        await publish(settings, msgs)
        await wait_for(lambda: ingest.stats.samples_decoded >= 10_000)
    assert count(url, "SELECT count(*) FROM telemetry") == 10_000
    assert count(url, "SELECT count(DISTINCT device_id) FROM telemetry") == 10
    assert count(url, "SELECT count(*) FROM devices WHERE site_id = 'site-a'") == 10
    assert count(url, "SELECT count(*) FROM dead_letters") == 0


async def test_ingest_garbage_mixed_in_gives_one_dead_letter_each_and_same_rows(
    settings: Settings,
) -> None:
    """Bad payloads never stop the consumer; each is kept with a reason."""
    assert settings.database.url
    url = settings.database.url
    root = settings.mqtt.topic_root
    good = frames(settings, ["g-1", "g-2"], 500, 10, binary=True)
    topic = device_topic(root, "site-a", "g-1", "telemetry")
    far_future = [Sample("g-1", 99_999, now_ms() + 10 * 86_400_000, hr=70.0)]
    garbage = [
        (topic, b"\x00\x01\x02 random"),
        (topic, b'{"v":1,"device_id":"g-1","samples":[{"seq":"x"}]}'),
        (topic, b'{"v": 9}'),
        (topic, encode_binary(samples("g-1", 3))[:-5]),
        (topic, orjson.dumps({"hello": "world"})),
        (topic, encode_binary(far_future)),
        (topic, encode_binary(samples("other-device", 2))),
        (f"{root}/site-a/g-1/telemetry/extra", b"{}"),
    ]
    mixed = [m for pair in zip(good, garbage + [None] * len(good), strict=False) for m in pair if m]
    async with running_ingest(settings) as ingest:
        await publish(settings, mixed)
        await wait_for(
            lambda: ingest.stats.samples_decoded >= 1000 and ingest.stats.dead_letters >= 7
        )
    assert count(url, "SELECT count(*) FROM telemetry") == 1000
    with psycopg.connect(url) as conn:
        reasons = [r for (r,) in conn.execute("SELECT reason FROM dead_letters ORDER BY id")]
    # The last garbage topic is outside the subscriptions: the broker never delivers it.
    assert len(reasons) == 7
    assert any("unknown encoding" in r for r in reasons)
    assert any("implausible" in r and "future" in r for r in reasons)
    assert any("does not match the topic" in r for r in reasons)
    assert all(r for r in reasons)


async def test_ingest_duplicate_frames_are_stored_once(settings: Settings) -> None:
    """Replays and duplicates (same device, time and sequence) are idempotent."""
    assert settings.database.url
    msgs = frames(settings, ["dup-1"], 300, 10, binary=True)
    async with running_ingest(settings) as ingest:
        await publish(settings, msgs + msgs[:10] + msgs)
        await wait_for(lambda: ingest.stats.samples_decoded >= 700)
    assert count(settings.database.url, "SELECT count(*) FROM telemetry") == 300
    assert ingest.stats.duplicates == 400


async def test_ingest_gateway_frame_stores_every_device(settings: Settings) -> None:
    """One gateway frame carries many devices; each is registered under the gateway's site."""
    assert settings.database.url
    rows = [s for d in ("w-1", "w-2", "w-3") for s in samples(d, 50)]
    topic = gateway_topic(settings.mqtt.topic_root, "site-b", "gw-1")
    async with running_ingest(settings) as ingest:
        await publish(
            settings,
            [(topic, encode_binary(rows, gateway=True)), (topic, encode_json(rows, gateway=True))],
        )
        await wait_for(lambda: ingest.stats.samples_decoded >= 300)
    assert count(settings.database.url, "SELECT count(*) FROM telemetry") == 150
    assert count(settings.database.url, "SELECT count(*) FROM devices WHERE site_id='site-b'") == 3


@pytest.mark.parametrize("n_devices", [1])
async def test_ingest_close_flushes_pending_samples(settings: Settings, n_devices: int) -> None:
    """Closing the ingest stores what it had received, even before the batch was due."""
    assert settings.database.url
    settings.ingest.batch_max_ms = 60_000
    async with running_ingest(settings) as ingest:
        await publish(settings, frames(settings, ["f-1"], 20, 10, binary=True))
        await wait_for(lambda: ingest.stats.messages >= 2)
        assert ingest.stats.samples_decoded == 0
    assert count(settings.database.url, "SELECT count(*) FROM telemetry") == 20 * n_devices
