"""Faults mid-stream on the real broker and database: the ingest is killed, the broker
restarts, PostgreSQL goes away for 20 s. Every sample is stored exactly once and handed to the
detector hook exactly once; the ingest recovers by itself."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import aiomqtt
import psycopg
import pytest

from api.settings import Settings
from ingest.mqtt import client
from ingest.topics import device_topic
from ingest.wire import encode_binary
from tests import services
from tests.factories import now_ms, samples
from tests.ingest.test_consumer import HookLog, running_ingest, wait_for

pytestmark = pytest.mark.slow


def stream(
    settings: Settings, devices: int, per_device: int, per_frame: int
) -> list[tuple[str, bytes]]:
    """Frames of ``per_frame`` samples, devices interleaved as they would arrive."""
    t0 = now_ms() - per_device * 1000 - 60_000
    rows = {f"k{d:03d}": samples(f"k{d:03d}", per_device, start_ms=t0) for d in range(devices)}
    out = []
    for i in range(0, per_device, per_frame):
        for device, rs in rows.items():
            topic = device_topic(settings.mqtt.topic_root, "site-f", device, "telemetry")
            out.append((topic, encode_binary(rs[i : i + per_frame])))
    return out


async def publish_all(url: str, messages: list[tuple[str, bytes]], chunk: int = 250) -> None:
    """Publish at QoS 1 until the broker has acknowledged every message, riding out broker
    restarts (a chunk cut short is sent again; the ingest de-duplicates)."""
    i = 0
    while i < len(messages):
        try:
            async with client(url) as mqtt:
                while i < len(messages):
                    part = messages[i : i + chunk]
                    await asyncio.gather(*(mqtt.publish(t, p, qos=1) for t, p in part))
                    i += len(part)
        except aiomqtt.MqttError:
            await asyncio.sleep(0.2)


def counts(url: str) -> tuple[int, int, int]:
    """Rows, distinct (device, seq) and dead letters."""
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            row = conn.execute(
                "SELECT count(*), count(DISTINCT (device_id, seq)), "
                "(SELECT count(*) FROM dead_letters) FROM telemetry"
            ).fetchone()
    except psycopg.OperationalError:
        return -1, -1, -1
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def expected_keys(devices: int, per_device: int) -> list[tuple[str, int]]:
    return sorted((f"k{d:03d}", s) for d in range(devices) for s in range(1, per_device + 1))


@pytest.fixture
def mosquitto(broker: object) -> services.Mosquitto:
    if not isinstance(broker, services.Mosquitto):
        pytest.skip("needs the private Mosquitto (persistent sessions, restartable)")
    return broker


# --------------------------------------------------------------------------- kill -9


class IngestProcess:
    """`permitpulse ingest` in a subprocess, configured only through PP_ variables."""

    def __init__(self, settings: Settings) -> None:
        assert settings.mqtt.url
        assert settings.database.url
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PP_")},
            "PP_MQTT_URL": settings.mqtt.url,
            "PP_MQTT_TOPIC_ROOT": settings.mqtt.topic_root,
            "PP_MQTT_CLIENT_ID": settings.mqtt.client_id,
            "PP_DATABASE_URL": settings.database.url,
            "PP_LOG_LEVEL": "WARNING",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api", "ingest", "--no-migrate"],
            env=self.env,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "ingest running" once subscribed
        assert b"ingest running" in line, line

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no flush, no acknowledgement, nothing graceful
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(30)


@pytest.fixture
def ingest_process(settings: Settings) -> Iterator[IngestProcess]:
    p = IngestProcess(settings)
    yield p
    if p.proc is not None and p.proc.poll() is None:
        p.proc.kill()
        p.proc.wait(10)


async def test_ingest_killed_mid_stream_and_restarted_stores_every_sample_exactly_once(
    settings: Settings, mosquitto: services.Mosquitto, ingest_process: IngestProcess
) -> None:
    """kill -9 while the ingest works through 100 000 samples (thousands of messages received
    and not yet committed), start it again: all stored, none twice."""
    assert settings.mqtt.url
    assert settings.database.url
    url = settings.database.url
    messages = stream(settings, devices=100, per_device=1000, per_frame=10)
    await asyncio.to_thread(ingest_process.start)  # creates the persistent session
    assert ingest_process.stop() == 0
    await publish_all(settings.mqtt.url, messages[:9000])  # the broker queues for the session
    await asyncio.to_thread(ingest_process.start)
    tail = asyncio.create_task(publish_all(settings.mqtt.url, messages[9000:]))
    async with asyncio.timeout(120):
        while counts(url)[0] < 20_000:
            await asyncio.sleep(0.01)
    ingest_process.kill()
    at_kill = counts(url)[0]
    await tail
    assert at_kill < 90_000
    await asyncio.to_thread(ingest_process.start)
    async with asyncio.timeout(180):
        while counts(url)[0] < 100_000:
            await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # anything doubled would show up now
    assert counts(url) == (100_000, 100_000, 0)
    assert ingest_process.stop() == 0


# --------------------------------------------------------------------------- broker restart


async def test_ingest_broker_restart_mid_stream_loses_nothing_and_doubles_nothing(
    settings: Settings, mosquitto: services.Mosquitto
) -> None:
    """The broker goes down while the ingest works through a backlog; it reconnects by
    itself, the session's messages come back, and each sample is stored and detected once."""
    assert settings.mqtt.url
    assert settings.database.url
    settings.mqtt.reconnect_max_s = 1.0
    settings.ingest.batch_max_samples = 200  # with a slow hook: the stream is still flowing
    settings.ingest.hook_queue_batches = 2
    messages = stream(settings, devices=50, per_device=1000, per_frame=10)
    first, second = messages[:3000], messages[3000:]

    class SlowHook(HookLog):
        async def __call__(self, batch):  # type: ignore[no-untyped-def]
            await asyncio.sleep(0.02)
            await super().__call__(batch)

    hook = SlowHook()
    async with running_ingest(settings, on_batch=hook) as ingest:
        await publish_all(settings.mqtt.url, first)
        await wait_for(lambda: len(hook.samples) >= 3000)
        assert len(hook.samples) < 30_000
        await asyncio.to_thread(mosquitto.restart)
        await publish_all(settings.mqtt.url, second)
        await wait_for(lambda: len(hook.samples) >= 50_000, timeout_s=180)
        await wait_for(lambda: ingest.depths().unacked == 0)
        await asyncio.sleep(0.5)
        assert ingest.stats.broker_reconnects >= 1
        assert ingest.stats.broker_connected
    assert counts(settings.database.url) == (50_000, 50_000, 0)
    assert sorted(hook.keys()) == expected_keys(50, 1000)


# --------------------------------------------------------------------------- database outage


async def test_ingest_database_down_20s_mid_stream_waits_and_resumes_losing_nothing(
    settings: Settings, postgres: object
) -> None:
    """PostgreSQL stops for 20 s while telemetry keeps coming: the ingest holds its batch,
    stops taking more (the broker keeps the rest), and catches up once the database is back."""
    if not isinstance(postgres, services.PrivatePostgres):
        pytest.skip("needs the private PostgreSQL (stoppable)")
    assert settings.mqtt.url
    assert settings.database.url
    settings.ingest.write_retry_max_s = 1.0
    settings.database.connect_timeout_s = 2.0
    window = 5000  # max_inflight_messages of deploy/mosquitto.conf
    messages = stream(settings, devices=80, per_device=1000, per_frame=10)
    hook = HookLog()
    async with running_ingest(settings, on_batch=hook) as ingest:
        await publish_all(settings.mqtt.url, messages[:1500])
        await wait_for(lambda: len(hook.samples) >= 5000)
        await asyncio.to_thread(postgres.stop)
        down_at = time.monotonic()
        await publish_all(settings.mqtt.url, messages[1500:])
        await wait_for(lambda: not ingest.stats.database_ok)
        frozen = len(hook.samples)
        await asyncio.sleep(max(0.0, 20 - (time.monotonic() - down_at)))
        # Nothing stored while down; held in memory at most the broker's in-flight window.
        assert len(hook.samples) == frozen
        assert ingest.depths().mqtt + ingest.depths().unacked <= window < len(messages)
        assert ingest.stats.broker_connected
        await asyncio.to_thread(postgres.start)
        await wait_for(lambda: len(hook.samples) >= 80_000, timeout_s=180)
        await wait_for(lambda: ingest.depths().unacked == 0)
        assert ingest.stats.database_ok
        assert ingest.stats.write_errors > 0
        assert ingest.stats.broker_reconnects == 0
    assert counts(settings.database.url) == (80_000, 80_000, 0)
    assert sorted(hook.keys()) == expected_keys(80, 1000)
