"""The ingest end to end on the real broker and database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import orjson
import psycopg
import pytest
from prometheus_client import generate_latest

from api.settings import Settings
from api.storage import open_pool
from ingest.consumer import BatchHook, Ingest
from ingest.metrics import IngestMetrics
from ingest.mqtt import client
from ingest.topics import device_topic, gateway_topic
from ingest.wire import MAGIC, Sample, SampleBatch, encode_binary, encode_json
from ingest.writer import TelemetryWriter
from tests.factories import now_ms, samples


@asynccontextmanager
async def running_ingest(
    settings: Settings, on_batch: BatchHook | None = None, metrics: IngestMetrics | None = None
) -> AsyncIterator[Ingest]:
    assert settings.mqtt.url
    assert settings.database.url
    async with open_pool(settings.database, settings.database.url) as pool:
        ingest = Ingest(
            mqtt_url=settings.mqtt.url,
            mqtt=settings.mqtt,
            settings=settings.ingest,
            writer=TelemetryWriter(pool),
            on_batch=on_batch,
            metrics=metrics,
        )
        async with ingest:
            await ingest.wait_subscribed()
            yield ingest


class HookLog:
    """An on_batch hook that remembers every sample it was given."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []

    async def __call__(self, batch: SampleBatch) -> None:
        self.samples.extend(batch.samples())

    def keys(self) -> list[tuple[str, int]]:
        return [(s.device_id, s.seq) for s in self.samples]


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


async def test_ingest_hostile_stream_stores_every_valid_sample_and_dead_letters_the_rest(
    settings: Settings,
) -> None:
    """Truncated, huge, wrong version, random bytes, JSON of the wrong shape, NaN and
    infinities, far-future timestamps, foreign devices — mixed into valid traffic: every valid
    sample is stored, every hostile frame is kept with its reason, the consumer never stops."""
    assert settings.database.url
    url = settings.database.url
    root = settings.mqtt.topic_root
    good = frames(settings, ["g-1", "g-2"], 500, 10, binary=True)
    good += frames(settings, ["g-3"], 100, 20, binary=False)
    topic = device_topic(root, "site-a", "g-1", "telemetry")
    gw = gateway_topic(root, "site-a", "gw-1")
    t = now_ms()
    hostile: dict[bytes, tuple[str, str]] = {
        encode_binary(samples("g-1", 3))[:-5]: ("structure", "truncated"),
        b"\x00" * 1_500_000: ("oversize", "1500000 bytes"),
        MAGIC + b"\x02" + encode_binary(samples("g-1", 1))[3:]: (
            "version",
            "unsupported version 2",
        ),
        b"\x8f\x13random\xff bytes": ("encoding", "unknown encoding"),
        orjson.dumps({"hello": "world"}): ("version", "unsupported version None"),
        orjson.dumps({"v": 1, "device_id": "g-1", "samples": {"seq": 1}}): (
            "structure",
            "'samples' must be a non-empty list",
        ),
        b'{"v":1,"device_id":"g-1","samples":[{"seq":1,"ts_ms":1,"hr":NaN}]}': (
            "json",
            "invalid JSON",
        ),
        b'{"v":1,"device_id":"g-1","samples":[{"seq":1,"ts_ms":1,"hr":-1e999}]}': (
            "json",
            "invalid JSON",
        ),
        encode_binary([Sample("g-1", 90_001, t, hr=float("inf"))]): (
            "implausible",
            "hr is infinite",
        ),
        encode_binary([Sample("g-1", 90_002, t, spo2=float("-inf"))]): (
            "implausible",
            "spo2 is infinite",
        ),
        encode_binary([Sample("g-1", 90_003, t + 10 * 86_400_000, hr=70.0)]): (
            "implausible",
            "too far in the future",
        ),
        encode_binary(samples("other-device", 2)): ("device", "does not match the topic"),
    }
    messages = [(topic, p) for p in hostile]
    messages.append((gw, encode_binary(samples("g-1", 2))))  # device frame on a gateway topic
    mixed = [
        m for pair in zip(good, messages + [None] * len(good), strict=False) for m in pair if m
    ]
    async with running_ingest(settings) as ingest:
        await publish(settings, mixed)
        await wait_for(lambda: ingest.stats.messages >= len(mixed) and ingest.stats.batches > 0)
        await wait_for(lambda: ingest.depths().unacked == 0)
    assert count(url, "SELECT count(*) FROM telemetry") == 1100
    with psycopg.connect(url) as conn:
        letters = list(conn.execute("SELECT topic, payload, reason FROM dead_letters"))
    assert len(letters) == len(hostile) + 1
    by_payload = {bytes(p): (tp, r) for tp, p, r in letters}
    for payload, (kind, reason) in hostile.items():
        kept = payload[:1024] if kind == "oversize" else payload
        assert reason in by_payload[kept][1], (kind, by_payload[kept])
    assert any(tp == gw and "device frame on a gateway topic" in r for tp, _, r in letters)
    assert ingest.stats.dead_letters_by_reason == {
        "structure": 2, "oversize": 1, "version": 2, "encoding": 1, "json": 2,
        "implausible": 3, "device": 2,
    }  # fmt: skip


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


async def test_ingest_hook_gets_each_stored_sample_once_never_a_duplicate(
    settings: Settings,
) -> None:
    """Replays reach the database and are skipped; the detectors see every sample once."""
    msgs = frames(settings, ["h-1", "h-2"], 200, 10, binary=True)
    hook = HookLog()
    async with running_ingest(settings, on_batch=hook) as ingest:
        await publish(settings, msgs)
        await wait_for(lambda: len(hook.samples) >= 400)
        await publish(settings, msgs[::3] + msgs[:5])
        await wait_for(lambda: ingest.stats.samples_decoded >= 400 + 10 * (len(msgs[::3]) + 5))
        await wait_for(lambda: ingest.depths().unacked == 0)
    assert sorted(hook.keys()) == sorted({(d, s) for d in ("h-1", "h-2") for s in range(1, 201)})
    assert ingest.stats.duplicates == 10 * (len(msgs[::3]) + 5)


async def test_ingest_message_the_database_refuses_is_isolated_and_dead_lettered(
    settings: Settings,
) -> None:
    """A value passing the ingest's checks but refused by the database costs one message, not
    the batch and not the stream."""
    assert settings.database.url
    url = settings.database.url
    with psycopg.connect(url) as conn:
        conn.execute(
            "ALTER TABLE telemetry ADD CONSTRAINT site_policy CHECK (hr IS NULL OR hr < 250)"
        )
    settings.ingest.batch_max_ms = 300  # let the bad message share a batch with good ones
    good = frames(settings, ["r-1", "r-2", "r-3"], 40, 10, binary=True)
    bad_rows = [Sample("r-9", 1, now_ms() - 1000, hr=260.0)]
    bad = (
        device_topic(settings.mqtt.topic_root, "site-a", "r-9", "telemetry"),
        encode_binary(bad_rows),
    )
    async with running_ingest(settings) as ingest:
        await publish(settings, [*good[:6], bad, *good[6:]])
        await wait_for(lambda: ingest.stats.messages >= 13 and ingest.depths().unacked == 0)
    assert count(url, "SELECT count(*) FROM telemetry") == 120
    with psycopg.connect(url) as conn:
        (reason,) = conn.execute("SELECT reason FROM dead_letters").fetchone() or ("",)
    assert "database refused it" in reason
    assert "site_policy" in reason
    assert ingest.stats.refused_messages == 1
    assert ingest.stats.dead_letters_by_reason == {"database": 1}


async def test_ingest_metrics_count_messages_samples_and_dead_letters(settings: Settings) -> None:
    """The Prometheus text says what happened: messages, outcomes, reasons, batches, status."""
    metrics = IngestMetrics()
    msgs = frames(settings, ["m-1"], 50, 10, binary=True)
    topic = device_topic(settings.mqtt.topic_root, "site-a", "m-1", "telemetry")
    async with running_ingest(settings, metrics=metrics) as ingest:
        await publish(settings, msgs + msgs[:2] + [(topic, b"\x01junk")])
        await wait_for(lambda: ingest.stats.messages >= 8 and ingest.depths().unacked == 0)
        text = generate_latest(metrics.registry).decode()
    assert "pp_ingest_messages_total 8.0" in text
    assert 'pp_ingest_samples_total{outcome="stored"} 50.0' in text
    assert 'pp_ingest_samples_total{outcome="duplicate"} 20.0' in text
    assert 'pp_ingest_dead_letters_total{reason="encoding"} 1.0' in text
    assert "pp_ingest_broker_connected 1.0" in text
    assert "pp_ingest_database_up 1.0" in text
    assert "pp_ingest_unacked_messages 0.0" in text
    assert 'pp_ingest_queue_depth{queue="batch"} 0.0' in text
    assert "pp_ingest_commit_seconds_count" in text
    assert "pp_ingest_batch_samples_bucket" in text
